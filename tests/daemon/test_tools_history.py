"""[tools] programs and the conversation history file."""

from __future__ import annotations

import json
import os
import threading

import pytest

from edgevoice.config import ConfigError, parse
from edgevoice.history import History
from edgevoice.tools import ToolRunner
from tests.support import program


def test_tool_gets_arguments_on_stdin_and_answers_on_stdout(tmp_path):
    echo = program(tmp_path, "echo", 'cat; echo\n')
    runner = ToolRunner({"echo": echo}, timeout=5)
    output, is_error = runner.run("echo", {"room": "kitchen"})
    assert not is_error and json.loads(output) == {"room": "kitchen"}


def test_unknown_failing_and_slow_tools_give_error_results(tmp_path):
    runner = ToolRunner({"fails": program(tmp_path, "fails", "echo broken >&2; exit 3\n"),
                         "slow": program(tmp_path, "slow", "exec sleep 5\n")}, timeout=0.5)
    assert runner.run("nope", {}) == ("this device has no tool named nope", True)
    output, is_error = runner.run("fails", {})
    assert is_error and "exit status 3" in output and "broken" in output
    output, is_error = runner.run("slow", {})
    assert is_error and "timed out after 0.5 s" in output


def test_submit_runs_on_another_thread(tmp_path):
    runner = ToolRunner({"t": program(tmp_path, "t", "echo 21.5\n")}, timeout=5)
    done = threading.Event()
    got = []

    def reply(output, is_error):
        got.append((output, is_error, threading.current_thread().name))
        done.set()

    runner.submit("t", {}, reply)
    assert done.wait(5)
    assert got[0][:2] == ("21.5", False) and got[0][2] == "edgevoice-tool"


def test_tools_config_requires_executables(tmp_path):
    good = program(tmp_path, "good", "echo ok\n")
    plain = tmp_path / "plain"
    plain.write_text("not executable")
    with pytest.raises(ConfigError) as info:
        parse(f"[xuna]\nagent_id = a\n[tools]\ngood = {good}\nbad = {plain}\nrel = tools/x\n")
    problems = [str(p) for p in info.value.problems]
    assert any(p.startswith("[tools] bad:") and "not an executable" in p for p in problems)
    assert any(p.startswith("[tools] rel:") and "absolute path" in p for p in problems)
    assert len(problems) == 2
    cfg = parse(f"[xuna]\nagent_id = a\n[tools]\ngood = {good}\n")
    assert cfg.tools == (("good", good),)


def test_history_appends_and_replays_user_turns(tmp_path):
    history = History.open(tmp_path / "state", 64 * 1024)
    history.append("user", "What time is it?", "conv_1")
    history.append("agent", "Noon.", "conv_1")
    history.append("user", "Thanks", "conv_1")
    turns = history.turns()
    assert [(t["role"], t["text"], t["session"]) for t in turns] == [
        ("user", "What time is it?", "conv_1"), ("agent", "Noon.", "conv_1"),
        ("user", "Thanks", "conv_1")]
    assert history.recent_user_turns(1) == ["Thanks"]
    assert oct(os.stat(history.path).st_mode & 0o777) == "0o600"


def test_history_survives_a_torn_last_line(tmp_path):
    history = History.open(tmp_path, 64 * 1024)
    history.append("user", "first", "s")
    with open(history.path, "ab") as f:  # a power cut in the middle of a write
        f.write(b'{"t": "2026-01-01", "role": "user", "te')
    fresh = History(history.path, 64 * 1024)  # the daemon restarts
    assert [t["text"] for t in fresh.turns()] == ["first"]
    fresh.append("user", "second", "s")
    assert [t["text"] for t in fresh.turns()] == ["first", "second"]


def test_history_is_bounded_and_keeps_the_newest(tmp_path):
    history = History.open(tmp_path, 4096)
    for i in range(200):
        history.append("user", f"turn number {i:03d}", "s")
    assert history.path.stat().st_size <= 4096
    texts = [t["text"] for t in history.turns()]
    assert texts[-1] == "turn number 199" and len(texts) > 10
    assert texts == sorted(texts)


def test_unwritable_state_dir_disables_history_with_a_log_line(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert History.open(blocker / "sub", 4096) is None
    assert any("history off" in r.getMessage() for r in caplog.records)
