"""[tools] programs that misbehave: children left behind, stdout held open, floods of
output, huge arguments, a daemon stopping mid-call."""

from __future__ import annotations

import threading
import time

from edgevoice.tools import MAX_ARGUMENT_BYTES, MAX_OUTPUT_CHARS, ToolRunner
from tests.support import program


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def child_pid(tmp_path) -> int:
    return int((tmp_path / "child.pid").read_text())


def test_a_quick_answer_is_not_held_up_by_a_child_keeping_stdout_open(tmp_path):
    tool = program(tmp_path, "t", f"sleep 30 & echo $! > {tmp_path}/child.pid\necho 42\n")
    runner = ToolRunner({"t": tool}, timeout=5)
    started = time.monotonic()
    assert runner.run("t", {}) == ("42", False)
    assert time.monotonic() - started < 1.0
    assert wait_gone(child_pid(tmp_path), 1.0)  # what it left running is killed


def test_on_timeout_the_whole_process_tree_is_gone_within_a_second(tmp_path):
    tool = program(tmp_path, "t", f"sleep 30 & echo $! > {tmp_path}/child.pid\nsleep 30\n")
    runner = ToolRunner({"t": tool}, timeout=0.5)
    output, is_error = runner.run("t", {})
    assert is_error and "timed out" in output
    assert wait_gone(child_pid(tmp_path), 1.0)


def test_close_kills_running_tools_and_the_call_is_still_answered(tmp_path):
    tool = program(tmp_path, "t", f"sleep 30 & echo $! > {tmp_path}/child.pid\nsleep 30\n")
    runner = ToolRunner({"t": tool}, timeout=30)
    answered = threading.Event()
    got = []
    runner.submit("t", {}, lambda output, is_error: (got.append((output, is_error)),
                                                     answered.set()))
    end = time.monotonic() + 5
    while not (tmp_path / "child.pid").exists() or not (tmp_path / "child.pid").read_text():
        assert time.monotonic() < end
        time.sleep(0.01)
    runner.close()
    assert wait_gone(child_pid(tmp_path), 1.0)
    assert answered.wait(2) and got[0][1] is True
    assert runner.run("t", {}) == ("t could not start", True)


def test_a_flood_of_output_is_cut_without_holding_it(tmp_path):
    tool = program(tmp_path, "t", "head -c 50000000 /dev/zero | tr '\\0' x\n")
    runner = ToolRunner({"t": tool}, timeout=20)
    output, is_error = runner.run("t", {})
    assert not is_error and output == "x" * MAX_OUTPUT_CHARS


def test_huge_arguments_get_an_error_answer_and_large_ones_reach_the_tool(tmp_path):
    tool = program(tmp_path, "t", "wc -c\n")
    runner = ToolRunner({"t": tool}, timeout=5)
    output, is_error = runner.run("t", {"x": "y" * (5 << 20)})
    assert is_error and "over the" in output
    output, is_error = runner.run("t", {"x": "y" * (MAX_ARGUMENT_BYTES - 100)})
    assert not is_error and int(output) == MAX_ARGUMENT_BYTES - 100 + len('{"x": ""}')


def test_a_tool_that_ignores_its_arguments_still_answers(tmp_path):
    tool = program(tmp_path, "t", "exec echo fine\n")
    runner = ToolRunner({"t": tool}, timeout=5)
    assert runner.run("t", {"x": "y" * 200_000}) == ("fine", False)


def test_sigterm_to_the_daemon_kills_a_running_tool_tree_within_a_second(make_agent,
                                                                         tmp_path):
    import signal
    import subprocess
    import sys

    from tests.support import QUESTION_WAV, ROOT, ini

    tool = program(tmp_path, "slow_tool",
                   f"sleep 60 & echo $! > {tmp_path}/child.pid\nsleep 60\n")
    agent = make_agent("napster", function_call={"name": "slow_tool", "arguments": {}})
    sections = agent.config_values()
    sections["audio"] = {"backend": "file", "input_file": str(QUESTION_WAV),
                         "output_file": str(tmp_path / "out.wav")}
    sections["agent"] = {**sections.get("agent", {}), "tool_timeout": "60", "history": "no"}
    sections["tools"] = {"slow_tool": tool}
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(ini(sections))
    proc = subprocess.Popen([sys.executable, "-m", "edgevoice", "run", "--config", str(conf)],
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=ROOT)
    try:
        end = time.monotonic() + 30
        while not (tmp_path / "child.pid").exists() or not child_pid_or_none(tmp_path):
            assert time.monotonic() < end, "the agent never called the tool"
            time.sleep(0.05)
        child = child_pid(tmp_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert wait_gone(child, 1.0)
    finally:
        if proc.poll() is None:
            proc.kill()


def child_pid_or_none(tmp_path):
    text = (tmp_path / "child.pid").read_text().strip()
    return int(text) if text else None
