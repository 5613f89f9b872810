"""``systemctl reload edgevoice`` that tells the truth.

A plain ``ExecReload=kill -HUP $MAINPID`` returns as soon as the signal is sent, so a
rejected config looks like success to the person editing it over SSH. Instead the unit runs
``edgevoice reload --pid $MAINPID``, which sends SIGHUP and waits for the daemon's answer:

- the daemon notes *when* each SIGHUP arrived (:meth:`ReloadResults.requested`, on the
  signal handler) and, once it has applied or rejected the config, writes the outcome with
  that time to ``$RUNTIME_DIRECTORY/reload-result.json`` (:meth:`ReloadResults.write`);
- the helper (:func:`request_reload`) takes the monotonic time before it signals and waits
  for an outcome stamped at or after it, so an older answer is never taken for its own;
  it exits 0 when the config was applied and 1, printing the problems, when it was
  rejected, the daemon died, or no answer came in time.

``CLOCK_MONOTONIC`` is system-wide, so the two processes' stamps compare directly.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

RESULT_FILE = "reload-result.json"
APPLIED, REJECTED = "applied", "rejected"
EX_OK, EX_FAILED, EX_USAGE = 0, 1, 2
POLL_S = 0.05


def runtime_dir(environ=None) -> Path | None:
    """systemd's ``$RUNTIME_DIRECTORY`` (``RuntimeDirectory=edgevoice``: /run/edgevoice);
    the first one when the unit lists several."""
    env = os.environ if environ is None else environ
    value = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(value) if value else None


class ReloadResults:
    """The daemon's side: when the reloads were asked for, and how each ended."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / RESULT_FILE if directory else None
        self.latest_request = 0.0

    def requested(self) -> None:
        """Note a SIGHUP (async-signal safe enough: one float assignment)."""
        self.latest_request = time.monotonic()

    def write(self, request: float, result: str, detail: str, problems=()) -> None:
        """Publish the outcome of the reload that served ``request``. Never raises."""
        if self.path is None:
            return
        body = {"pid": os.getpid(), "request": request, "result": result, "detail": detail,
                "problems": [str(problem) for problem in problems]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(body), encoding="utf-8")
            os.replace(tmp, self.path)
        except (OSError, ValueError) as exc:
            log.warning("cannot write the reload result to %s: %s (systemctl reload will "
                        "time out)", self.path, exc)


def read_answer(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def signal_and_wait(pid: int, signum: int, path: Path, timeout: float, command: str,
                    err) -> dict | int:
    """Send ``signum`` to the daemon ``pid`` and wait up to ``timeout`` s for an answer in
    ``path`` stamped (``request``) at or after the signal: the answer, or the exit status
    after saying on ``err`` why none came (no such process, it died, too slow)."""
    asked = time.monotonic()
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        print(f"edgevoice {command}: no process {pid}: is edgevoice running?", file=err)
        return EX_FAILED
    except PermissionError:
        print(f"edgevoice {command}: not allowed to signal process {pid}", file=err)
        return EX_FAILED
    deadline = asked + timeout
    while True:
        answer = read_answer(path)
        if answer and answer.get("pid") == pid and \
                isinstance(answer.get("request"), (int, float)) and answer["request"] >= asked:
            return answer
        if not process_alive(pid):
            print(f"edgevoice {command}: the daemon (pid {pid}) exited before it answered; "
                  "see journalctl -u edgevoice", file=err)
            return EX_FAILED
        if time.monotonic() >= deadline:
            print(f"edgevoice {command}: no answer from the daemon within {timeout:g} s; see "
                  "journalctl -u edgevoice", file=err)
            return EX_FAILED
        time.sleep(POLL_S)


def request_reload(pid: int, directory: Path | None, timeout: float, out=None,
                   err=None) -> int:
    """Send SIGHUP to the daemon ``pid`` and wait up to ``timeout`` s for its answer in
    ``directory``. Returns the exit status for ``ExecReload=``."""
    out = out or sys.stdout
    err = err or sys.stderr
    if directory is None:
        print("edgevoice reload: no runtime directory: run it from the unit (ExecReload=, "
              "which sets $RUNTIME_DIRECTORY) or give --runtime-dir", file=err)
        return EX_USAGE
    answer = signal_and_wait(pid, signal.SIGHUP, directory / RESULT_FILE, timeout, "reload",
                             err)
    if isinstance(answer, int):
        return answer
    detail = str(answer.get("detail", ""))
    if answer.get("result") == APPLIED:
        print(f"edgevoice: configuration reloaded: {detail}", file=out)
        return EX_OK
    print(f"edgevoice: reload rejected, still running the previous configuration: {detail}",
          file=err)
    for problem in answer.get("problems") or ():
        print(f"  {problem}", file=err)
    return EX_FAILED
