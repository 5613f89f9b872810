"""The daemon against the local agent, dialect by dialect (napster per-session and Omniagent,
navtalk; elevenlabs, openai and gemini at the end): question in, answer out, a function call
answered by a real program, history written and replayed, the server's barge-in events
flushing playback, and no secret in any log line."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edgevoice.history import FILE_NAME, History
from tests.support import (BargeInRun, answer_matches_question, answer_ok, drained, no_secret_in,
                           question_then_barge_in, speaker_spans, temperature_tool, wait_until)

@pytest.mark.parametrize("variant", ["per-session", "omniagent-tolerant-forms"])
def test_napster_question_answer_function_call_history(make_agent, run_daemon, tmp_path,
                                                       caplog, variant):
    caplog.set_level(logging.DEBUG)
    call = {"name": "get_temperature", "arguments": {"room": "kitchen"}}
    if variant == "per-session":
        agent = make_agent("napster", function_call=call)
    else:  # the newer token form, an https-style URL, nested messages, data.audio payloads
        agent = make_agent("napster", function_call=call, omniagent=True,
                           napster_token_form="token", napster_url_scheme="http",
                           napster_nested_messages=True, napster_audio_form="event/audio")
    state = tmp_path / "state"
    handle = run_daemon(agent, extra={
        "agent": {"state_dir": str(state)},
        "napster": {"external_client_id": "lobby_pi_1", "tags": "kiosk"},
        "tools": {"get_temperature": temperature_tool(tmp_path)}})
    output = agent.wait_for("function_output", timeout=20)[0]
    reply = agent.wait_for("reply_end", timeout=20)[0]
    wait_until(lambda: drained(handle), 10, "the answer to play out")
    handle.stop()

    assert output.data["output"] == '21.5 degrees ({"room": "kitchen"})'
    assert agent.count("function_output") == 1  # the repeated call was answered once
    assert agent.count("function_output_unexpected") == 0
    if variant == "per-session":
        body = agent.wait_for("http_ws_connection")[0].data["body"]
        assert body["companionId"] == "comp_local" and body["externalClientId"] == "lobby_pi_1"
    else:
        opened = agent.wait_for("http_agent_connection")[0]
        assert opened.data["body"] == {"channelType": "websocket",
                                       "externalClientId": "lobby_pi_1", "tags": ["kiosk"]}
        assert agent.wait_for("ws_open")[0].data["auth"] == "query"
    connection_id = agent.wait_for("ws_open")[0].data["connection_id"]
    assert any(connection_id in r.getMessage() for r in caplog.records)  # operator can find it
    answer_ok(handle, reply.data["seconds"])
    turns = History(state / FILE_NAME, 1 << 20).turns()
    assert [t["role"] for t in turns][:1] == ["user"] and "agent" in [t["role"] for t in turns]
    assert all(t["session"] == connection_id for t in turns)
    no_secret_in(caplog.records, agent.options.api_key)


def test_navtalk_history_replayed_answer_and_function_call(make_agent, run_daemon, tmp_path,
                                                           caplog):
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    earlier = History.open(state, 1 << 20)
    for text in ("What are your opening hours?", "Is there a cafe?"):
        earlier.append("user", text, "sess_old")
        earlier.append("agent", "an answer", "sess_old")
    agent = make_agent("navtalk", function_call={"name": "get_temperature",
                                                 "arguments": '{"room": "hall"}'})
    handle = run_daemon(agent, extra={"agent": {"state_dir": str(state)},
                                      "tools": {"get_temperature": temperature_tool(tmp_path)}})
    updated = agent.wait_for("session_updated", timeout=10)[0]
    items = agent.wait_for("history_item", count=2, timeout=5)
    output = agent.wait_for("function_output", timeout=20)[0]
    agent.wait_for("response_create", timeout=10)
    reply = agent.wait_for("reply_end", timeout=20)[0]
    wait_until(lambda: drained(handle), 10, "the answer to play out")
    handle.stop()

    assert [i.data["text"] for i in items] == ["What are your opening hours?", "Is there a cafe?"]
    assert all(i.t < updated.t for i in items)  # sent on session.created, before audio
    assert agent.count("audio_before_ready") == 0
    assert agent.count("client_malformed") == 0  # 24 kHz frames, base64 under 4096 chars
    assert output.data["output"] == '21.5 degrees ({"room": "hall"})'
    answer_ok(handle, reply.data["seconds"])
    new_turns = History(state / FILE_NAME, 1 << 20).turns()[4:]
    assert new_turns and new_turns[0]["role"] == "user"
    no_secret_in(caplog.records, agent.options.api_key)


@pytest.mark.parametrize("dialect", ["napster", "navtalk"])
def test_server_barge_in_events_flush_playback(make_agent, run_daemon, tmp_path, dialect):
    """Local barge-in off: the server's own speech_started / cancelled stops the agent."""
    run = BargeInRun(make_agent, run_daemon, tmp_path, dialect, agent={"barge_in": "off"})
    handle, interrupted, second, t0, stats = (run.handle, run.interrupted, run.second, run.t0,
                                              run.stats)

    assert stats.interruptions >= 1 and stats.local_pauses == 0
    samples, rate, spans = speaker_spans(handle)
    cut = interrupted.t - t0
    assert spans[0][1] - cut < 0.15, (spans, cut)
    quiet = samples[int((cut + 0.15) * rate):int((second.t - t0) * rate)]
    assert len(quiet) and np.abs(quiet).max() < 300


def test_napster_rate_limit_is_honoured(make_agent, run_daemon, caplog):
    agent = make_agent("napster", napster_rate_limit_s=3.0, close_after_s=0.5)
    handle = run_daemon(agent)
    agent.wait_for("http_rate_limited", timeout=15)
    second = agent.wait_for("ws_open", count=2, timeout=15)
    handle.stop()
    first_ok, second_ok = agent.wait_for("http_ws_connection", count=2)[:2]
    assert second_ok.t - first_ok.t >= 3.0  # the retry waited for Retry-After
    assert any("429" in r.getMessage() for r in caplog.records)
    # the session after the limit is a new connection of its own
    assert second[1].data["connection_id"] != second[0].data["connection_id"]


# -- elevenlabs, openai, gemini: one run each ----------------------------------------------
# The daemon against the local agent for elevenlabs, openai and gemini, one run each: the
# question in and its answer in the speaker output, a function call answered by a real
# program, the user talking over the second answer (the server's interruption, or the
# device's own barge-in) silencing it and its late audio dropped, then a dropped connection
# replaced with a fresh credential (signed URL / client secret / ephemeral token).
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
    extra = {**extra, "tools": {"get_temperature": temperature_tool(tmp_path)}}
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


#: dialect -> (agent options, daemon config): the barge-in the run above does not show
OTHER_BARGE_IN = {
    # the device pauses at the user's onset; the server's interruption confirms (flush)
    "elevenlabs": ({"late_audio_after_interrupt": True}, {}),
    "openai": ({"late_audio_after_interrupt": True}, {}),
    # the server's interrupted alone
    "gemini": ({}, {"agent": {"barge_in": "off"}}),
}


@pytest.mark.parametrize("dialect", sorted(OTHER_BARGE_IN))
def test_the_other_barge_in_stops_playback_and_drops_late_audio(make_agent, run_daemon,
                                                                 tmp_path, dialect):
    options, extra = OTHER_BARGE_IN[dialect]
    run = BargeInRun(make_agent, run_daemon, tmp_path, dialect, options=options, **extra)
    stats = run.stats
    samples, rate, spans = speaker_spans(run.handle)
    start, end = spans[0]
    cut = run.interrupted.t - run.t0
    if extra:  # the server's interruption alone stops the answer within 150 ms
        assert stats.local_pauses == 0 and stats.interruptions == 1
        assert end - cut < 0.15, (spans, cut)
    else:  # the device paused before the server's interruption arrived, then flushed on it
        assert stats.local_pauses >= 1 and stats.interruptions == 1
        assert end <= cut + 0.02, (spans, cut)
    assert stats.false_barge_ins == 0
    quiet = samples[int((min(end, cut) + 0.15) * rate):int((run.second.t - run.t0) * rate)]
    assert len(quiet) and np.abs(quiet).max() < 300
    if options.get("late_audio_after_interrupt"):
        assert stats.late_chunks_dropped >= 3
    # the next answer plays
    assert any(abs(s - (run.second.t - run.t0)) < 0.25 for s, _ in spans[1:]), spans
    if dialect == "openai":  # the item is truncated at what reached the speaker
        truncate = run.agent.wait_for("truncate")[0].data
        assert abs(truncate["audio_end_ms"] - (end - start) * 1000) <= 40, (truncate, spans)
