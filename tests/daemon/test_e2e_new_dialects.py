"""The daemon against the local agent for elevenlabs, openai and gemini, one run each: the
question in and its answer in the speaker output, a function call answered by a real
program, the user talking over the second answer (the server's interruption, or the
device's own barge-in) silencing it and its late audio dropped, then a dropped connection
replaced with a fresh credential (signed URL / client secret / ephemeral token)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from tests.daemon.test_e2e_napster_navtalk import no_secret_in, tool
from tests.support import (answer_matches_question, drained, question_then_barge_in,
                           speaker_spans, wait_until)

#: dialect -> (agent options, daemon config): which barge-in each run shows
RUNS = {
    # the server's interruption alone, with late audio after it
    "elevenlabs": ({"private": True, "late_audio_after_interrupt": True,
                    "function_call": {"name": "get_temperature",
                                      "arguments": {"room": "kitchen"}}},
                   {"agent": {"barge_in": "off"}}),
    # the server VAD's speech_started; the device truncates the item at what it played
    "openai": ({"late_audio_after_interrupt": True}, {"agent": {"barge_in": "off"}}),
    # the device's own barge-in, the server's interrupted after it
    "gemini": ({}, {}),
}


def schemas(tmp_path) -> str:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"get_temperature": {
        "description": "Temperature in a room, in degrees Celsius",
        "parameters": {"type": "object", "properties": {"room": {"type": "string"}}}}}))
    return str(path)


@pytest.mark.parametrize("dialect", sorted(RUNS))
def test_question_tool_call_barge_in_and_fresh_credential(make_agent, run_daemon, tmp_path,
                                                         caplog, dialect):
    caplog.set_level(logging.DEBUG)
    options, extra = RUNS[dialect]
    agent = make_agent(dialect, **options)
    extra = {**extra, "tools": {"get_temperature": tool(tmp_path)}}
    if dialect != "elevenlabs":  # the model learns the function from the declarations
        extra[dialect] = {"tool_schemas": schemas(tmp_path)}
    handle = run_daemon(agent, question_then_barge_in(tmp_path, 1.0), extra=extra)
    output = agent.wait_for("function_output", timeout=20)[0]
    first = agent.wait_for("reply_start", timeout=20)[0]
    interrupted = agent.wait_for("interrupted", timeout=20)[0]
    second = agent.wait_for("reply_start", count=2, timeout=20)[1]
    agent.wait_for("reply_end", timeout=20,
                   predicate=lambda e: e.data["event_id"] == second.data["event_id"])
    wait_until(lambda: drained(handle), 10, "the second answer to play out")
    agent.options.close_after_s = 0.0  # the connection drops: a new one needs a new key
    agent.wait_for("ws_closed", timeout=5)
    agent.options.close_after_s = None
    reopened = agent.wait_for("ws_open", count=2, timeout=15)[1]
    if dialect == "gemini":
        setups = agent.wait_for("setup", count=2, timeout=5)
    t0 = handle.t0()
    stats = handle.daemon.stats
    handle.stop()

    # the function call, answered by the program
    assert output.data["output"].startswith("21.5 degrees (")
    assert agent.count("function_output") == 1
    # the first answer: the question played back
    samples, rate, spans = speaker_spans(handle)
    start, end = spans[0]
    assert first.data["event_id"] != second.data["event_id"]
    # the interrupted answer stops within 150 ms, and nothing is heard until the next one
    cut = interrupted.t - t0
    assert end - cut < 0.15, (spans, cut)
    quiet = samples[int((cut + 0.15) * rate):int((second.t - t0) * rate)]
    assert len(quiet) and np.abs(quiet).max() < 300
    assert stats.interruptions >= 1
    if options.get("late_audio_after_interrupt"):
        assert stats.late_chunks_dropped >= 3
    # the second answer plays whole, and is the question
    last_start, last_end = spans[-1]
    answer = samples[max(0, int((last_start - 0.1) * rate)):int((last_end + 0.1) * rate)]
    assert answer_matches_question(answer, rate) > 0.8
    if dialect == "openai":
        truncate = agent.wait_for("truncate")[0].data
        heard_ms = (end - start) * 1000
        assert abs(truncate["audio_end_ms"] - heard_ms) <= 40, (truncate, spans)
    # a fresh credential for the new connection
    if dialect == "elevenlabs":
        assert agent.count("http_signed_url") >= 2 and reopened.data["auth"] == "signed"
    else:
        tokens = [e.data["token"] for e in agent.wait_for("http_token", count=2)]
        assert len(set(tokens)) == len(tokens)
        assert reopened.data["auth"] in ("client_secret", "token")
    if dialect == "gemini":
        assert stats.local_pauses >= 1
        # the new connection resumes the same conversation with the newest handle
        assert setups[1].data["resumed"] == setups[0].data["conversation"]
    no_secret_in(caplog.records, agent.options.api_key)
