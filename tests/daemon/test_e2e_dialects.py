"""The daemon against the local agent, dialect by dialect (napster per-session and Omniagent,
navtalk): question in, answer out, a function call answered by a real program, history written and
replayed, the server's barge-in events flushing playback, and no secret in any log line."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgevoice.history import FILE_NAME, History
from tests.support import (BargeInRun, answer_ok, drained, no_secret_in, speaker_spans,
                           temperature_tool, wait_until)

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
