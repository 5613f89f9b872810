"""Agent function calls answered by programs on the device (the ``[tools]`` section).

``get_temperature = /usr/local/lib/edgevoice/tools/temperature`` means: when the agent
calls ``get_temperature``, run that program with the call's arguments as JSON on stdin;
its stdout (trimmed) is the result. A non-zero exit, a timeout or an unknown name gives
the agent an error result instead: every call is answered. Programs run on their own
threads, a few at a time, so neither the audio path nor the session ever waits for them.

Each program runs in its own process group. When it exits, anything it left running in
that group is killed; on its timeout, and when the daemon stops (:meth:`ToolRunner.close`),
the whole group is killed at once. Its stdout is read up to :data:`MAX_OUTPUT_BYTES` and
the rest discarded (still read, so the program never blocks on a full pipe).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from typing import Any, Callable

from edgevoice.flow import Tally
from edgevoice.threads import start_thread

log = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 16_000
MAX_OUTPUT_BYTES = 4 * MAX_OUTPUT_CHARS  # UTF-8: at most 4 bytes a character
MAX_STDERR_BYTES = 4096  # the end of stderr is kept for the log line
MAX_ARGUMENT_BYTES = 256 * 1024
MAX_PARALLEL = 4
#: how a call ended (the metrics' ``result`` label, docs/metrics.md)
RESULTS = ("ok", "error", "timeout", "unknown", "busy", "too_large", "cancelled")
UNKNOWN_TOOL = "_unknown"  #: the ``tool`` label of a name not in [tools]
EXIT_GRACE_S = 0.1  # after the program exits, output still in the pipe is read this long


class ToolRunner:
    """Runs the [tools] programs; each call is counted in ``tally`` (when given) by
    ``(tool, result)``: the name as configured or :data:`UNKNOWN_TOOL`, and one of
    :data:`RESULTS`."""

    def __init__(self, tools: dict[str, str], timeout: float, tally: Tally | None = None,
                 on_running: Callable[[int], None] | None = None) -> None:
        self.tools = dict(tools)
        self.timeout = timeout
        self.tally = tally
        self.on_running = on_running  # told how many submitted calls run, on their threads
        self._busy = 0
        self._slots = threading.BoundedSemaphore(MAX_PARALLEL)
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._closed = False

    def run(self, name: str, arguments: Any) -> tuple[str, bool]:
        """Run the tool now (blocking); returns (output, is_error)."""
        output, result = self._run(name, arguments)
        self._count(name, result)
        return output, result != "ok"

    def _count(self, name: str, result: str) -> None:
        if self.tally is not None:
            self.tally.add((name if name in self.tools else UNKNOWN_TOOL, result))

    def _run(self, name: str, arguments: Any) -> tuple[str, str]:
        """(output, one of :data:`RESULTS`)."""
        program = self.tools.get(name)
        if program is None:
            known = ", ".join(sorted(self.tools)) or "none"
            log.warning("the agent called %r, which is not in [tools] (known: %s)", name, known)
            return f"this device has no tool named {name}", "unknown"
        try:
            payload = json.dumps(arguments).encode("utf-8", "replace")
        except (TypeError, ValueError, RecursionError) as exc:
            log.warning("the agent called %s with arguments that cannot be encoded as JSON "
                        "(%s); not run", name, type(exc).__name__)
            return (f"{name} not run: its arguments are not JSON ({type(exc).__name__})",
                    "error")
        if len(payload) > MAX_ARGUMENT_BYTES:
            log.warning("the agent called %s with %d bytes of arguments (limit %d); not run",
                        name, len(payload), MAX_ARGUMENT_BYTES)
            return (f"{name} not run: its arguments are {len(payload)} bytes, over the "
                    f"{MAX_ARGUMENT_BYTES}-byte limit"), "too_large"
        started = time.monotonic()
        try:
            proc = self._start(program)
        except OSError as exc:
            log.warning("tool %s could not start: %s", name, exc.strerror or exc)
            return f"{name} could not start", "cancelled" if self._closed else "error"
        try:
            out, err, finished = _exchange(proc, payload, started + self.timeout)
        finally:
            _kill_group(proc)  # on a timeout, or whatever it left running
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()
            with self._lock:
                self._running.discard(proc)
        took = time.monotonic() - started
        if self._closed and (not finished or proc.returncode != 0):
            return f"{name} cancelled: the daemon is stopping", "cancelled"
        if not finished:
            log.warning("tool %s did not answer within %g s; killed, the agent gets an error",
                        name, self.timeout)
            return f"{name} timed out after {self.timeout:g} s", "timeout"
        if proc.returncode != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1][:200] if lines else ""
            log.warning("tool %s failed with exit status %d in %.2f s: %s", name,
                        proc.returncode, took, detail)
            return f"{name} failed (exit status {proc.returncode}) {detail}".strip(), "error"
        log.info("tool %s answered in %.2f s", name, took)
        return out.decode("utf-8", "replace").strip()[:MAX_OUTPUT_CHARS], "ok"

    def _start(self, program: str) -> subprocess.Popen:
        with self._lock:
            if self._closed:
                raise OSError("the daemon is stopping")
            proc = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
            self._running.add(proc)
        return proc

    def submit(self, name: str, arguments: Any, reply: Callable[[str, bool], None]) -> None:
        """Run the tool on a thread and hand the result to ``reply``."""
        if not self._slots.acquire(blocking=False):
            self._count(name, "busy")
            reply(f"{name} not run: {MAX_PARALLEL} tools are already running", True)
            return

        def work() -> None:
            self._running_changed(+1)
            try:
                try:
                    output, is_error = self.run(name, arguments)
                except Exception as exc:  # the agent still gets an answer
                    log.exception("tool %s failed unexpectedly", name)
                    self._count(name, "error")
                    output, is_error = f"{name} failed ({type(exc).__name__})", True
                reply(output, is_error)
            except Exception:  # a failing reply must not kill anything else
                log.exception("tool %s: answering the agent failed", name)
            finally:
                self._running_changed(-1)
                self._slots.release()

        start_thread("tool", work)

    def _running_changed(self, delta: int) -> None:
        """Tell ``on_running`` the new count, under the lock: two tools ending together
        report in order (the listener must not block: the daemon's puts on its inbox)."""
        with self._lock:
            self._busy += delta
            if self.on_running is not None:
                try:
                    self.on_running(self._busy)
                except Exception:  # a listener must not break the tool call
                    log.exception("tool listener failed")

    def close(self) -> None:
        """Kill every running tool's process group (the daemon is stopping); tools
        submitted afterwards do not start."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for proc in running:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def _exchange(proc: subprocess.Popen, payload: bytes, deadline: float
              ) -> tuple[bytes, bytes, bool]:
    """Write ``payload`` to the program's stdin while reading its stdout (up to
    :data:`MAX_OUTPUT_BYTES`, the rest read and dropped) and stderr (the last
    :data:`MAX_STDERR_BYTES`), until it has exited and its pipes are drained, or a child it
    left holds them open past :data:`EXIT_GRACE_S`. Returns (stdout, stderr, finished);
    finished is False when ``deadline`` passed first."""
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as sel:
        if payload:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        sent = 0
        exited_at: float | None = None
        while sel.get_map():
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                break  # a child it started still holds the pipes: not our answer
            if now >= deadline:
                return bytes(out), bytes(err), False
            for key, _ in sel.select(min(deadline - now, 0.05)):
                if key.fileobj is proc.stdin:
                    try:
                        sent += os.write(proc.stdin.fileno(), payload[sent:sent + 65536])
                    except BrokenPipeError:  # it does not read its arguments: fine
                        sent = len(payload)
                    if sent >= len(payload):
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = key.data
                if buf is out:
                    room = MAX_OUTPUT_BYTES - len(out)
                    if room > 0:
                        out += chunk[:room]
                else:
                    err += chunk
                    del err[:-MAX_STDERR_BYTES]
    try:  # its pipes are closed; it may still be running
        proc.wait(max(0.001, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(out), bytes(err), False
    return bytes(out), bytes(err), True
