"""The wording of the tool runner's results and log lines, the history's log lines and the
credential problems, word for word (see tests/providers/test_wording.py)."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from edgevoice.config import ConfigError, parse
from edgevoice.history import History
from edgevoice.tools import MAX_PARALLEL, ToolRunner


# -- tools ----------------------------------------------------------------------------------
def program(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)

def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "edgevoice.tools"]

def test_tool_result_and_log_wording(tmp_path, caplog):
    runner = ToolRunner({"b": program(tmp_path, "b", "echo ok\n"),
                         "a": program(tmp_path, "a", "echo first >&2; echo 'last words' >&2; exit 3\n"),
                         "q": program(tmp_path, "q", "exit 1\n"),
                         "slow": program(tmp_path, "slow", "exec sleep 10\n"),
                         "gone": str(tmp_path / "gone")}, timeout=0.5)
    caplog.set_level(logging.INFO, logger="edgevoice.tools")
    assert runner.run("nope", {}) == ("this device has no tool named nope", True)
    assert warnings_of(caplog)[-1] == "the agent called 'nope', which is not in [tools] (known: a, b, gone, q, slow)"
    assert ToolRunner({}, 1).run("x", {}) == ("this device has no tool named x", True)
    assert warnings_of(caplog)[-1] == "the agent called 'x', which is not in [tools] (known: none)"
    assert runner.run("a", {}) == ("a failed (exit status 3) last words", True)
    assert re.fullmatch(r"tool a failed with exit status 3 in \d\.\d\d s: last words", warnings_of(caplog)[-1])
    assert runner.run("q", {}) == ("q failed (exit status 1)", True)
    assert re.fullmatch(r"tool q failed with exit status 1 in \d\.\d\d s: ", warnings_of(caplog)[-1])
    assert runner.run("slow", {}) == ("slow timed out after 0.5 s", True)
    assert warnings_of(caplog)[-1] == "tool slow did not answer within 0.5 s; killed, the agent gets an error"
    assert runner.run("gone", {}) == ("gone could not start", True)
    assert warnings_of(caplog)[-1] == "tool gone could not start: No such file or directory"
    assert runner.run("b", {}) == ("ok", False)
    assert re.fullmatch(r"tool b answered in \d\.\d\d s", warnings_of(caplog)[-1])

def test_tool_submit_wording(tmp_path, caplog):
    gate = tmp_path / "gate"
    runner = ToolRunner({"w": program(tmp_path, "w", f"i=0\nwhile [ ! -e {gate} ] && [ $i -lt 500 ]; "
                                                      "do sleep 0.02; i=$((i+1)); done\n"),
                         "e": program(tmp_path, "e", "echo hi\n")}, timeout=30)
    try:
        submit_wording(runner, gate, caplog)
    finally:
        gate.write_text("")  # whatever failed, no program is left waiting

def submit_wording(runner: ToolRunner, gate, caplog) -> None:
    done = threading.Semaphore(0)
    got = []

    def reply(output, is_error):
        got.append((output, is_error))
        done.release()

    for _ in range(MAX_PARALLEL):
        runner.submit("w", {}, reply)
    refused = []
    runner.submit("w", {}, lambda o, e: refused.append((o, e)))
    assert refused == [("w not run: 4 tools are already running", True)]
    gate.write_text("")
    for _ in range(MAX_PARALLEL):
        assert done.acquire(timeout=10)
    caplog.set_level(logging.ERROR, logger="edgevoice.tools")
    caplog.clear()  # the 'answered' lines above, when an earlier test left the root at INFO
    runner.submit("e", {"x": object()}, reply)
    assert done.acquire(timeout=10)
    assert got[-1] == ("e not run: its arguments are not JSON (TypeError)", True)
    answered = threading.Event()

    def broken(output, is_error):
        answered.set()
        raise RuntimeError("socket gone")

    runner.submit("e", {}, broken)
    assert answered.wait(10)
    for _ in range(500):  # the log line follows the reply on the tool's thread
        if warnings_of(caplog):
            break
        threading.Event().wait(0.01)
    assert warnings_of(caplog) == ["tool e: answering the agent failed"]

# -- history --------------------------------------------------------------------------------
def test_history_log_wording(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edgevoice.history")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert History.open(blocker / "sub", 4096) is None
    assert caplog.records[-1].getMessage() == (
        f"conversation history off: cannot write to {blocker}/sub (Not a directory); set "
        "[agent] state_dir or history = off")
    folder = History(tmp_path, 4096)  # a folder where the file should be
    assert folder.turns() == []
    assert caplog.records[-1].getMessage() == f"could not read {tmp_path}: Is a directory"
    folder.append("user", "x", "s")
    assert caplog.records[-1].getMessage() == (
        f"could not write the conversation history to {tmp_path}: Is a directory")

@pytest.mark.parametrize("make, why", [
    (lambda path: path.symlink_to("/proc/self/mem"), "Input/output error"),  # read fails (EIO)
    (lambda path: path.write_bytes(b"key\xff\n"), "not UTF-8 text"),
])
def test_credential_wording(tmp_path, monkeypatch, make, why):
    make(tmp_path / "xuna_api_key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        parse("[xuna]\nagent_id = a\n")
    assert [str(p) for p in info.value.problems] == [
        f"[xuna] api_key: cannot read credential {tmp_path}/xuna_api_key: {why}"]


def test_tool_refusal_log_wording(tmp_path, caplog):
    from edgevoice.tools import MAX_ARGUMENT_BYTES
    runner = ToolRunner({"t": program(tmp_path, "t", "echo hi\n")}, timeout=5)
    caplog.set_level(logging.WARNING, logger="edgevoice.tools")
    assert runner.run("t", {"x": {1}}) == ("t not run: its arguments are not JSON (TypeError)", True)
    assert warnings_of(caplog)[-1] == ("the agent called t with arguments that cannot be encoded "
                                       "as JSON (TypeError); not run")
    big = "a" * MAX_ARGUMENT_BYTES
    assert runner.run("t", big) == (
        "t not run: its arguments are 262146 bytes, over the 262144-byte limit", True)
    assert warnings_of(caplog)[-1] == ("the agent called t with 262146 bytes of arguments "
                                       "(limit 262144); not run")
    runner.close()
    assert runner.run("t", {}) == ("t could not start", True)
    assert warnings_of(caplog)[-1] == "tool t could not start: the daemon is stopping"


def test_tool_unexpected_failure_log_wording(tmp_path, caplog):
    class Weird(dict):
        def items(self):
            raise RuntimeError("surprise")

    runner = ToolRunner({"t": program(tmp_path, "t", "echo hi\n")}, timeout=5)
    answered = threading.Event()
    caplog.set_level(logging.ERROR, logger="edgevoice.tools")
    runner.submit("t", Weird(a=1), lambda output, is_error: answered.set())
    assert answered.wait(10)  # the log line comes before the reply
    [record] = [r for r in caplog.records if r.name == "edgevoice.tools"]
    assert record.getMessage() == "tool t failed unexpectedly" and record.exc_info
