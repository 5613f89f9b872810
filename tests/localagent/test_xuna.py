"""The local agent's xuna dialect (signed URL, metadata, pings, echo replies, interruptions,
garbage, stalls), driven only by plain clients; nothing here imports the daemon."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
import websocket

from edgevoice.localagent import LocalAgent
from tests.support.localagent import (TIMEOUT, recv_json, recv_until, recv_until_close,
                                      xuna_send_audio,
                                      tolerance_bytes)


def xuna_connect(agent: LocalAgent, query: str | None = None) -> websocket.WebSocket:
    query = query if query is not None else f"agent_id={agent.options.agent_id}"
    return websocket.create_connection(f"{agent.ws_base}/v1/convai/conversation?{query}", timeout=TIMEOUT)


def test_xuna_signed_url_bootstrap_and_single_use(make_agent):
    agent = make_agent("xuna", private=True)
    url = f"{agent.http_base}/v1/convai/conversation/get-signed-url"

    bad = requests.get(url, params={"agent_id": "local-agent"}, headers={"xi-api-key": "wrong"}, timeout=5)
    assert bad.status_code == 401

    good = requests.get(url, params={"agent_id": "local-agent"}, headers={"xi-api-key": "local-secret-key"}, timeout=5)
    assert good.status_code == 200
    signed_url = good.json()["signed_url"]
    assert signed_url.startswith(agent.ws_base + "/v1/convai/conversation?token=")
    assert agent.wait_for("http_signed_url")[0].data["agent_id"] == "local-agent"

    ws = websocket.create_connection(signed_url, timeout=TIMEOUT)
    assert recv_json(ws)["type"] == "conversation_initiation_metadata"
    assert agent.wait_for("ws_open")[0].data["auth"] == "signed"
    ws.close()

    with pytest.raises(websocket.WebSocketBadStatusException) as reused:
        websocket.create_connection(signed_url, timeout=TIMEOUT)
    assert reused.value.status_code == 403

    with pytest.raises(websocket.WebSocketBadStatusException) as public:
        xuna_connect(agent)  # ?agent_id= is refused for a private agent
    assert public.value.status_code == 403
    reasons = {e.data["reason"] for e in agent.wait_for("auth_rejected", count=3)}
    assert {"bad_api_key", "token_used", "private_agent_needs_signed_url"} <= reasons

    agent.options.reject_auth = True
    refused = requests.get(url, params={"agent_id": "local-agent"}, headers={"xi-api-key": "local-secret-key"}, timeout=5)
    assert refused.status_code == 401


def test_xuna_metadata_ping_pong_and_client_messages(make_agent):
    agent = make_agent("xuna", output_rate=24000, ping_interval=0.2)
    ws = xuna_connect(agent)
    ws.send(json.dumps({"type": "conversation_initiation_client_data", "conversation_config_override": {}}))
    metadata = recv_json(ws)
    assert metadata["type"] == "conversation_initiation_metadata"
    event = metadata["conversation_initiation_metadata_event"]
    assert event["agent_output_audio_format"] == "pcm_24000"
    assert event["conversation_id"].startswith("conv_")

    ping, _ = recv_until(ws, "ping", skip_pings=False)
    assert ping["ping_event"]["ping_ms"] is None
    ws.send(json.dumps({"type": "pong", "event_id": ping["ping_event"]["event_id"]}))
    ws.send(json.dumps({"type": "pong", "event_id": 987654}))
    ws.send(json.dumps({"type": "user_activity"}))
    ws.send(json.dumps({"type": "client_tool_result", "tool_call_id": "t1", "result": "ok", "is_error": False}))
    ws.send(json.dumps({"type": "contextual_update", "text": "hi"}))

    assert agent.wait_for("pong_ok")[0].data["event_id"] == ping["ping_event"]["event_id"]
    assert agent.wait_for("pong_bad")[0].data["event_id"] == 987654
    agent.wait_for("user_activity")
    assert agent.wait_for("tool_result")[0].data["message"]["tool_call_id"] == "t1"
    assert agent.wait_for("client_unknown")[0].data["type"] == "contextual_update"
    assert agent.wait_for("client_init")[0].data["first"] is True
    second, _ = recv_until(ws, "ping", skip_pings=False)
    assert second["ping_event"]["event_id"] > ping["ping_event"]["event_id"]
    ws.close()


@pytest.mark.parametrize("output_rate, legacy_form", [(16000, False), (24000, True)])
def test_xuna_echo_reply(make_agent, question, output_rate, legacy_form):
    agent = make_agent("xuna", output_rate=output_rate, ping_interval=0)
    ws = xuna_connect(agent)
    recv_until(ws, "conversation_initiation_metadata")
    xuna_send_audio(ws, question, legacy_form=legacy_form)

    transcript, _ = recv_until(ws, "user_transcript")
    assert "seconds" in transcript["user_transcription_event"]["user_transcript"]
    response, _ = recv_until(ws, "agent_response")
    assert "You spoke for" in response["agent_response_event"]["agent_response"]

    speech_s = agent.wait_for("user_speech_end")[0].data["seconds"]
    assert 2.0 < speech_s < 3.5  # the fixture's voiced span (about 2.6 s)
    agent.wait_for("user_speech_start")
    assert agent.wait_for("audio_first")

    expected = int(speech_s * output_rate) * 2
    audio = b""
    first_at = last_at = None
    while len(audio) < expected - tolerance_bytes(output_rate):
        chunk, _ = recv_until(ws, "audio")
        assert chunk["audio_event"]["event_id"] == 1
        audio += base64.b64decode(chunk["audio_event"]["audio_base_64"])
        last_at = time.monotonic()
        first_at = first_at or last_at
    end = agent.wait_for("reply_end")[0]
    assert (end.data["event_id"], end.data["interrupted"]) == (1, False)
    assert abs(len(audio) - expected) <= tolerance_bytes(output_rate)
    assert abs(agent.wait_for("reply_start")[0].data["seconds"] - speech_s) < 0.05
    # paced in real time: everything beyond the 0.5 s lead takes about its own duration
    assert last_at - first_at > (speech_s - 0.5) * 0.7
    ws.close()
    assert agent.wait_for("ws_closed")[0].data["by"] == "client"


def test_xuna_barge_in_interrupts_with_event_id(make_agent, question):
    agent = make_agent("xuna", ping_interval=0, late_audio_after_interrupt=True)
    ws = xuna_connect(agent)
    recv_until(ws, "conversation_initiation_metadata")
    xuna_send_audio(ws, question)
    first_chunk, _ = recv_until(ws, "audio")
    assert first_chunk["audio_event"]["event_id"] == 1

    xuna_send_audio(ws, question)  # talk over the reply
    interruption, _ = recv_until(ws, "interruption")
    assert interruption["interruption_event"]["event_id"] == 1
    late = [recv_json(ws) for _ in range(3)]
    assert [m["audio_event"]["event_id"] for m in late] == [1, 1, 1]

    interrupted = agent.wait_for("interrupted")[0]
    assert interrupted.data["event_id"] == 1
    assert interrupted.data["sent_s"] < agent.wait_for("reply_start")[0].data["seconds"]
    # the interrupting speech became the next utterance, answered as response 2
    second = agent.wait_for("reply_start", predicate=lambda e: e.data["event_id"] == 2)[0]
    assert second.data["seconds"] > 2.0
    first_end = agent.wait_for("reply_end", predicate=lambda e: e.data["event_id"] == 1)[0]
    assert first_end.data["interrupted"] is True
    assert first_end.data["seconds"] == interrupted.data["sent_s"]
    ws.close()


def test_xuna_close_after_s(make_agent):
    agent = make_agent("xuna", close_after_s=0.3, ping_interval=0)
    ws = xuna_connect(agent)
    received, code = recv_until_close(ws)
    assert received[0]["type"] == "conversation_initiation_metadata"
    assert code == 1000
    assert agent.wait_for("ws_closed")[0].data == {
        "conversation": received[0]["conversation_initiation_metadata_event"]["conversation_id"],
        "by": "server",
        "code": 1000,
        "reason": "close_after_s",
        "audio_s": 0.0,
    }


def test_xuna_garbage_does_not_break_the_server(make_agent, question):
    agent = make_agent("xuna", ping_interval=0, send_garbage=True)
    ws = xuna_connect(agent)
    recv_until(ws, "conversation_initiation_metadata")
    kinds = []
    for _ in range(9):
        opcode, data = ws.recv_data()
        kinds.append((opcode, len(data)))
    assert websocket.ABNF.OPCODE_BINARY in {opcode for opcode, _ in kinds}
    assert max(size for _, size in kinds) == 2_000_000
    agent.wait_for("garbage_sent")

    # the client misbehaves too; the server records it and carries on
    for bad in ("not json", "[1]", '{"type":"audio","audio_event":{"audio_base_64":"@@"}}', '{"type":"audio"}'):
        ws.send(bad)
    ws.send(json.dumps({"user_audio_chunk": base64.b64encode(b"\x01\x02\x03").decode()}))
    ws.send_binary(b"\x00" * 10)
    agent.wait_for("client_malformed", count=5)
    agent.wait_for("client_unknown")

    # ...and the same session still holds a conversation
    xuna_send_audio(ws, question)
    agent.wait_for("reply_start")
    recv_until(ws, "audio")
    ws.close()
    # a fresh connection works too
    again = xuna_connect(agent)
    recv_until(again, "conversation_initiation_metadata")
    again.close()


def test_stalled_connection_does_not_block_stop(make_agent):
    agent = make_agent("xuna", ping_interval=0.1)
    ws = xuna_connect(agent)
    recv_until(ws, "conversation_initiation_metadata")
    recv_until(ws, "ping", skip_pings=False)
    agent.options.stall = True
    agent.wait_for("stalled")
    agent.options.stall = False  # spares new sessions; the stalled one stays dead
    fresh = xuna_connect(agent)
    recv_until(fresh, "conversation_initiation_metadata")
    recv_until(fresh, "ping", skip_pings=False)
    ws.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        while True:  # drain what was in flight; then nothing more comes
            recv_json(ws)
    stalled_at = agent.wait_for("stalled")[0].t
    later_pings = agent.event_log.matching("ping_sent", lambda e: e.t > stalled_at)
    assert later_pings and {e.data["conversation"] for e in later_pings} == {"conv_2"}
    assert agent.count("stalled") == 1
    started = time.monotonic()
    agent.stop()
    assert time.monotonic() - started < 1.5
    ws.close()
    fresh.close()
