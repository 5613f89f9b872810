"""The [tools] runner's paths: arguments in, output out, every way a program can fail, and
the limit on programs running at once (the fifth call is refused at once, never queued)."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from edgevoice import tools
from edgevoice.tools import MAX_OUTPUT_CHARS, MAX_PARALLEL, ToolRunner


def program(tmp_path, name: str, body: str, mode: int = 0o755) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return str(path)


class Replies:
    """Collects ``reply(output, is_error)`` calls from the tool threads."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bool, str]] = []
        self._cond = threading.Condition()

    def __call__(self, output: str, is_error: bool) -> None:
        with self._cond:
            self.got.append((output, is_error, threading.current_thread().name))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, bool, str]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.got) >= count, timeout), self.got
            return list(self.got)


@pytest.mark.parametrize("arguments", [{"room": "kitchen", "level": 3}, [1, "two"], "plain", 7,
                                       {"text": "grüß dich ☃"}])
def test_arguments_reach_the_program_as_json_on_stdin(tmp_path, arguments):
    runner = ToolRunner({"echo": program(tmp_path, "echo", "cat\n")}, timeout=10)
    output, is_error = runner.run("echo", arguments)
    assert is_error is False
    assert json.loads(output) == arguments


def test_output_is_trimmed_and_capped(tmp_path):
    runner = ToolRunner({
        "pad": program(tmp_path, "pad", "printf '\\n  21.5 C \\n\\n'\n"),
        "big": program(tmp_path, "big", "head -c 50000 /dev/zero | tr '\\0' x\n"),
        "empty": program(tmp_path, "empty", "exit 0\n"),
        "bytes": program(tmp_path, "bytes", "printf 'ok \\377 done'\n")}, timeout=10)
    assert runner.run("pad", {}) == ("21.5 C", False)
    output, is_error = runner.run("big", {})
    assert is_error is False and output == "x" * MAX_OUTPUT_CHARS
    assert runner.run("empty", {}) == ("", False)
    output, is_error = runner.run("bytes", {})  # not UTF-8: replaced, not an exception
    assert is_error is False and output.startswith("ok ") and output.endswith(" done")


def test_unknown_name_is_an_error_result_and_runs_nothing(tmp_path, caplog):
    marker = tmp_path / "ran"
    runner = ToolRunner({"lights": program(tmp_path, "lights", f"touch {marker}\n")}, timeout=5)
    with caplog.at_level(logging.WARNING, logger="edgevoice.tools"):
        output, is_error = runner.run("../lights", {})
    assert is_error is True and "../lights" in output
    assert not marker.exists()
    assert any("lights" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    empty = ToolRunner({}, timeout=5)
    output, is_error = empty.run("x", {})
    assert is_error is True and "x" in output


@pytest.mark.parametrize("kind", ["missing", "not executable", "not a program", "a folder"])
def test_a_program_that_cannot_start_is_an_error_result(tmp_path, kind, caplog):
    if kind == "missing":
        path = str(tmp_path / "gone")
    elif kind == "not executable":
        path = program(tmp_path, "plain", "echo hi\n", mode=0o644)
    elif kind == "not a program":
        path = str(tmp_path / "junk")
        (tmp_path / "junk").write_bytes(b"\x00\x01\x02 not a program")
        (tmp_path / "junk").chmod(0o755)
    else:
        path = str(tmp_path)
    runner = ToolRunner({"t": path}, timeout=5)
    with caplog.at_level(logging.WARNING, logger="edgevoice.tools"):
        output, is_error = runner.run("t", {"a": 1})
    assert is_error is True and output.startswith("t ") and "start" in output
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_a_failing_program_reports_its_status_and_last_error_line(tmp_path, caplog):
    runner = ToolRunner({
        "fails": program(tmp_path, "fails", "echo out; echo first >&2; echo 'last words' >&2; "
                                            "exit 3\n"),
        "quiet": program(tmp_path, "quiet", "echo partial; exit 1\n"),
        "long": program(tmp_path, "long", "head -c 1000 /dev/zero | tr '\\0' e >&2; exit 2\n"),
        "signal": program(tmp_path, "signal", "kill -9 $$\n")}, timeout=10)
    with caplog.at_level(logging.WARNING, logger="edgevoice.tools"):
        output, is_error = runner.run("fails", {})
    assert is_error is True
    assert "3" in output and "last words" in output and "first" not in output
    assert "out" not in output.replace("(exit", "")
    assert any(r.levelno == logging.WARNING and "fails" in r.getMessage()
               for r in caplog.records)
    output, is_error = runner.run("quiet", {})
    assert is_error is True and "1" in output and "partial" not in output
    assert output == output.strip()
    output, is_error = runner.run("long", {})
    assert (output, is_error) == ("long failed (exit status 2) " + "e" * 200, True)
    output, is_error = runner.run("signal", {})
    assert is_error is True and "-9" in output


def test_a_slow_program_times_out_with_an_error_result(tmp_path):
    runner = ToolRunner({"slow": program(tmp_path, "slow", "exec sleep 10\n")}, timeout=0.5)
    started = time.monotonic()
    output, is_error = runner.run("slow", {})
    assert time.monotonic() - started < 10
    assert is_error is True and "slow" in output and "0.5" in output


def test_a_program_within_its_time_answers(tmp_path):
    runner = ToolRunner({"ok": program(tmp_path, "ok", "echo done\n")}, timeout=5.0)
    assert runner.timeout == 5.0
    assert runner.run("ok", None) == ("done", False)


def test_the_call_beyond_the_limit_is_refused_at_once_and_the_slots_come_back(tmp_path):
    gate = tmp_path / "gate"
    waits = program(tmp_path, "waits", gated_body(gate, "echo released"))
    runner = ToolRunner({"waits": waits}, timeout=30)
    try:
        refused_while_busy(runner, gate)
    finally:
        gate.write_text("")  # whatever failed, no program is left waiting


def gated_body(gate, then: str) -> str:
    """A program that waits (10 s at most) until ``gate`` exists, then runs ``then``."""
    return (f"cat >/dev/null\ni=0\nwhile [ ! -e {gate} ] && [ $i -lt 500 ]; do sleep 0.02; "
            f"i=$((i+1)); done\n{then}\n")


def refused_while_busy(runner: ToolRunner, gate) -> None:
    held = Replies()
    for _ in range(MAX_PARALLEL):
        runner.submit("waits", {}, held)
    refused = Replies()
    runner.submit("waits", {}, refused)
    # refused on the calling thread, before submit returned: the receive thread never waits
    assert len(refused.got) == 1
    output, is_error, thread = refused.got[0]
    assert is_error is True and thread == threading.current_thread().name
    assert str(MAX_PARALLEL) in output and "waits" in output
    assert held.got == []
    gate.write_text("")
    assert sorted(r[:2] for r in held.wait_for(MAX_PARALLEL)) == [("released", False)] * MAX_PARALLEL
    # every slot is free again (each thread frees its slot just after replying)
    again = Replies()
    deadline = time.monotonic() + 10
    while True:
        probe = Replies()
        runner.submit("waits", {}, probe)
        got = probe.wait_for(1)
        if got[0][:2] == ("released", False):
            break
        assert time.monotonic() < deadline, got
    for _ in range(MAX_PARALLEL - 1):
        runner.submit("waits", {}, again)
    assert [r[:2] for r in again.wait_for(MAX_PARALLEL - 1)] == [("released", False)] * (
        MAX_PARALLEL - 1)


def test_submit_answers_even_when_the_call_cannot_be_run(tmp_path, caplog):
    runner = ToolRunner({"echo": program(tmp_path, "echo", "cat\n")}, timeout=5)
    replies = Replies()
    with caplog.at_level(logging.ERROR, logger="edgevoice.tools"):
        runner.submit("echo", {"x": object()}, replies)  # arguments that are not JSON
        [(output, is_error, thread)] = replies.wait_for(1)
    assert (output, is_error) == ("echo not run: its arguments are not JSON (TypeError)", True)
    assert thread == "edgevoice-tool"
    runner.submit("nope", {}, replies)
    assert replies.wait_for(2)[1][:2] == ("this device has no tool named nope", True)


def test_a_reply_that_fails_does_not_keep_its_slot(tmp_path, caplog):
    runner = ToolRunner({"echo": program(tmp_path, "echo", "echo hi\n")}, timeout=5)
    calls = Replies()

    def broken_reply(output: str, is_error: bool) -> None:
        calls(output, is_error)
        raise RuntimeError("the socket is gone")

    with caplog.at_level(logging.ERROR, logger="edgevoice.tools"):
        for round_ in range(MAX_PARALLEL * 2):
            deadline = time.monotonic() + 10
            while True:  # a slot frees just after the reply; wait for it, never forever
                before = len(calls.got)
                runner.submit("echo", {}, broken_reply)
                got = calls.wait_for(before + 1)
                if got[-1][:2] == ("hi", False):
                    break
                assert time.monotonic() < deadline, got
    assert any("answering the agent failed" in r.getMessage() or r.exc_info
               for r in caplog.records)


def test_limits_are_what_the_docs_say():
    assert MAX_PARALLEL == 4 and tools.MAX_OUTPUT_CHARS == 16_000


# -- arguments and output at their limits ----------------------------------------------------
def test_arguments_up_to_the_limit_reach_the_program_whole_and_one_byte_more_is_refused(tmp_path):
    import hashlib
    marker = tmp_path / "ran"
    runner = ToolRunner({"sum": program(tmp_path, "sum", f"touch {marker}; sha256sum\n")},
                        timeout=20)
    largest = "a" * (tools.MAX_ARGUMENT_BYTES - 2)  # the JSON text adds two quotes
    output, is_error = runner.run("sum", largest)
    assert is_error is False  # written in pieces, each piece once, in order
    assert output.split()[0] == hashlib.sha256(json.dumps(largest).encode()).hexdigest()
    marker.unlink()
    output, is_error = runner.run("sum", largest + "a")
    assert is_error is True and "sum" in output and str(tools.MAX_ARGUMENT_BYTES) in output
    assert not marker.exists()


def test_arguments_that_are_not_json_are_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    runner = ToolRunner({"t": program(tmp_path, "t", f"touch {marker}\n")}, timeout=5)
    looped: list = []
    looped.append(looped)
    for arguments in ({"x": {1, 2}}, looped):
        output, is_error = runner.run("t", arguments)
        assert is_error is True and output.startswith("t not run")
    assert not marker.exists()


def test_output_beyond_the_byte_cap_is_read_and_dropped(tmp_path):
    # 64,000 bytes of blanks are kept (and trimmed away); what follows them is dropped
    runner = ToolRunner({"t": program(tmp_path, "t", f"head -c {tools.MAX_OUTPUT_BYTES} "
                                                      "/dev/zero | tr '\\0' ' '; echo LATE\n"),
                         "u": program(tmp_path, "u", "printf FIRST; head -c 100000 /dev/zero "
                                                      "| tr '\\0' x\n")}, timeout=20)
    assert runner.run("t", {}) == ("", False)
    output, is_error = runner.run("u", {})  # read in several pieces, kept from the start
    assert is_error is False and output == "FIRST" + "x" * (MAX_OUTPUT_CHARS - 5)


def test_error_output_that_is_not_utf8_is_replaced_not_raised(tmp_path):
    runner = ToolRunner({"t": program(tmp_path, "t", "printf 'bad \\377 byte' >&2; exit 4\n")},
                        timeout=10)
    assert runner.run("t", {}) == ("t failed (exit status 4) bad \ufffd byte", True)


# -- programs that exit oddly ----------------------------------------------------------------
def test_an_answer_after_a_pause_is_waited_for(tmp_path):
    runner = ToolRunner({"t": program(tmp_path, "t", "sleep 0.4; echo late answer\n")},
                        timeout=10)
    assert runner.run("t", {}) == ("late answer", False)


def test_a_child_left_holding_the_output_does_not_hold_the_answer(tmp_path):
    # the program answers and exits; a child it started keeps stdout open for 30 s
    runner = ToolRunner({"t": program(tmp_path, "t", "sleep 30 &\necho answer\n")}, timeout=8)
    started = time.monotonic()
    assert runner.run("t", {}) == ("answer", False)
    assert time.monotonic() - started < 8


def test_a_program_that_closes_its_output_but_runs_on_times_out(tmp_path):
    runner = ToolRunner({"t": program(tmp_path, "t", "exec >&- 2>&-\nexec sleep 30\n")},
                        timeout=1.0)
    started = time.monotonic()
    output, is_error = runner.run("t", {})
    assert time.monotonic() - started < 20
    assert is_error is True and "timed out" in output


# -- stopping ----------------------------------------------------------------------------------
def test_close_kills_running_tools_and_later_calls_do_not_start(tmp_path):
    import os
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    marker = tmp_path / "ran"
    runner = ToolRunner({"slow": program(tmp_path, "slow", f"echo up > {fifo}\nexec sleep 30\n"),
                         "quick": program(tmp_path, "quick", f"touch {marker}; echo hi\n")},
                        timeout=30)
    replies = Replies()
    runner.submit("slow", {}, replies)
    with open(fifo) as started:  # returns once the program has opened it
        assert started.readline() == "up\n"
    began = time.monotonic()
    runner.close()
    [(output, is_error, _)] = replies.wait_for(1)
    assert is_error is True and "cancelled" in output  # killed, not timed out after 30 s
    assert time.monotonic() - began < 20
    assert runner.run("quick", {}) == ("quick could not start", True)
    assert not marker.exists()


def test_an_unexpected_failure_is_still_answered(tmp_path, caplog):
    class Weird(dict):  # arguments whose encoding fails in an unforeseen way
        def items(self):
            raise RuntimeError("surprise")

    runner = ToolRunner({"t": program(tmp_path, "t", "echo hi\n")}, timeout=5)
    replies = Replies()
    with caplog.at_level(logging.ERROR, logger="edgevoice.tools"):
        runner.submit("t", Weird(a=1), replies)
        [(output, is_error, _)] = replies.wait_for(1)
    assert (output, is_error) == ("t failed (RuntimeError)", True)


def test_the_running_count_is_reported_in_order_as_tools_start_and_end(tmp_path):
    counts: list[int] = []
    done = threading.Event()

    def on_running(n: int) -> None:
        counts.append(n)
        if len(counts) == 6:
            done.set()

    runner = ToolRunner({"slow": program(tmp_path, "slow", "cat >/dev/null\nsleep 0.3\necho ok\n"),
                         "fast": program(tmp_path, "fast", "echo ok\n")}, 5.0,
                        on_running=on_running)
    replies = Replies()
    for name in ("slow", "fast", "nope"):
        runner.submit(name, {}, replies)
    replies.wait_for(3)
    assert done.wait(5), counts
    assert counts[-1] == 0 and max(counts) <= 3
    assert all(abs(a - b) == 1 for a, b in zip([0] + counts, counts))  # one step at a time
