"""`systemctl reload edgevoice` fails when the new config is rejected: the unit's
``ExecReload=edgevoice reload --pid $MAINPID`` helper against the real daemon (both
installed entry points, in processes, as systemd runs them) and against processes that
never answer."""

from __future__ import annotations

import contextlib
import configparser
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import LineReader, file_audio_config, ini

BIN = Path(sys.executable).parent
EDGEVOICE = str(BIN / "edgevoice")


def reload(pid: int, runtime: Path | None, *extra: str, timeout: float = 30):
    env = dict(os.environ)
    env.pop("RUNTIME_DIRECTORY", None)
    if runtime is not None:
        env["RUNTIME_DIRECTORY"] = str(runtime)
    return subprocess.run([EDGEVOICE, "reload", "--pid", str(pid), *extra], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def parse_ini(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return {name: dict(parser[name]) for name in parser.sections()}


def test_reload_reports_applied_rejected_and_unchanged(make_agent, tmp_path, notify):  # noqa: F811
    agent = make_agent("xuna")
    conf = file_audio_config(agent, tmp_path)
    sections = parse_ini(conf)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o750)
    env = dict(os.environ, RUNTIME_DIRECTORY=str(runtime), NOTIFY_SOCKET=notify.path)
    proc = subprocess.Popen([EDGEVOICE, "run", "--config", str(conf)], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    reader = LineReader(proc.stderr)
    try:
        notify.wait_for("READY=1", timeout=15)
        notify.wait_for("STATUS=connected to xuna agent", timeout=10)

        # a valid change: applied, and the helper says so only after the daemon did
        sections["xuna"]["first_message"] = "Hello again"
        conf.write_text(ini(sections))
        done = reload(proc.pid, runtime)
        assert done.returncode == 0, done.stderr
        assert "configuration reloaded" in done.stdout and "agent settings" in done.stdout
        reader.wait_for("configuration reloaded", timeout=1)  # already logged by then

        # a broken config: the helper fails with the problem, the daemon runs on
        bad = {**sections, "audio": {**sections["audio"], "backend": "tape"}}
        conf.write_text(ini(bad))
        t = time.monotonic()
        rejected = reload(proc.pid, runtime)
        assert rejected.returncode == 1
        assert "reload rejected" in rejected.stderr and "[audio] backend" in rejected.stderr
        assert any("reload rejected" in s for s in notify.lines("STATUS=", after=t))
        assert proc.poll() is None

        # fixed again, nothing that needs a new session changed: STATUS is the state again
        conf.write_text(ini(sections))
        t = time.monotonic()
        same = reload(proc.pid, runtime)
        assert same.returncode == 0 and "nothing that needs a new session" in same.stdout
        status = notify.wait_for("READY=1", after=t)[-1][1]
        last = notify.lines("STATUS=", after=t)[-1]
        assert "reload" not in last and "connected to xuna agent" in last, (status, last)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@contextlib.contextmanager
def stand_in(ignore_sighup: bool):
    """A process standing in for the daemon: one that ignores SIGHUP and never answers, like
    a frozen daemon, or one that SIGHUP kills. Killed on the way out."""
    handler = "signal.signal(signal.SIGHUP, signal.SIG_IGN); " if ignore_sighup else ""
    proc = subprocess.Popen([sys.executable, "-c",
                             f"import signal, sys; {handler}print('up', flush=True); "
                             "sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "up\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_no_answer_in_time_fails_and_an_older_answer_is_not_taken(tmp_path):
    with stand_in(ignore_sighup=True) as proc:
        # an answer from an earlier reload of this very process is on disk
        (tmp_path / "reload-result.json").write_text(json.dumps(
            {"pid": proc.pid, "request": 0.0, "result": "applied", "detail": "old"}))
        started = time.monotonic()
        result = reload(proc.pid, tmp_path, "--timeout", "0.5")
        assert result.returncode == 1 and "no answer" in result.stderr
        assert time.monotonic() - started < 10


def test_a_daemon_that_dies_fails_the_reload_at_once(tmp_path):
    with stand_in(ignore_sighup=False) as proc:
        started = time.monotonic()
        result = reload(proc.pid, tmp_path, "--timeout", "30")  # SIGHUP kills it
        assert result.returncode == 1 and "exited" in result.stderr
        assert time.monotonic() - started < 10


def test_usage_errors(tmp_path):
    missing_pid = 2 ** 22 + 12345  # above the default pid_max
    result = reload(missing_pid, tmp_path)
    assert result.returncode == 1 and "no process" in result.stderr
    result = reload(os.getpid(), None)
    assert result.returncode == 2 and "runtime directory" in result.stderr
