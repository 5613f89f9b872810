"""The local agent's openai dialect (client secrets, handshakes, session.update, server VAD
turns, function calls, cancel and truncate, beta names), driven only by plain clients
(docs/protocols/openai-realtime.md); nothing here imports the daemon."""

from __future__ import annotations

import base64
import json

import pytest
import requests
import websocket

from edgevoice.localagent import LocalAgent
from tests.support.localagent import (KEY, NAV_FRAME_BYTES, TIMEOUT, chunks, recv_until,
                                      recv_until_closed, talk_over_the_answer)
from tests.support.messages import b64

TOOLS = [{"type": "function", "name": "get_temperature", "description": "Room temperature",
          "parameters": {"type": "object", "properties": {"room": {"type": "string"}}}}]


def connect(agent: LocalAgent, key: str = KEY) -> websocket.WebSocket:
    ws = websocket.create_connection(f"{agent.ws_base}/v1/realtime?model=gpt-realtime",
                                     header=[f"Authorization: Bearer {key}"], timeout=TIMEOUT)
    return ws


def send_audio(ws: websocket.WebSocket, pcm24: bytes) -> None:
    for frame in chunks(pcm24, NAV_FRAME_BYTES):
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64(frame)}))


def secret(agent: LocalAgent, key: str = KEY) -> requests.Response:
    return requests.post(f"{agent.http_base}/v1/realtime/client_secrets", timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {key}"}, json={"model": "m"})


def test_client_secret_is_one_use_and_a_bad_key_closes_3000(make_agent):
    agent = make_agent("openai")
    assert secret(agent, "wrong").status_code == 401
    answer = secret(agent)
    assert answer.status_code == 200
    value = answer.json()["value"]
    assert value.startswith("ek_") and answer.json()["expires_at"] > 0
    ws = connect(agent, value)
    created, _ = recv_until(ws, "session.created")
    assert created["session"]["audio"]["output"]["format"] == {"type": "audio/pcm",
                                                               "rate": 24000}
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(agent, value)  # used up
    assert refused.value.status_code == 401
    rest, ws_refused = agent.wait_for("auth_rejected", count=2)
    assert (rest.data["where"], ws_refused.data["reason"]) == ("rest", "client_secret_used")
    ws = connect(agent, "sk-wrong")
    received, code, reason = recv_until_closed(ws)
    assert received[0]["error"]["code"] == "invalid_api_key"
    assert (code, reason) == (3000, "invalid_request_error.invalid_api_key")


def test_turn_with_a_declared_function_call(make_agent, question24):
    agent = make_agent("openai")
    ws = connect(agent)
    recv_until(ws, "session.created")
    ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime",
                                                              "tools": TOOLS}}))
    updated, _ = recv_until(ws, "session.updated")
    assert updated["session"]["tools"] == TOOLS
    send_audio(ws, question24)
    call, before = recv_until(ws, "response.function_call_arguments.done")
    kinds = [m["type"] for m in before]
    assert kinds[:4] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                         "input_audio_buffer.committed",
                         "conversation.item.input_audio_transcription.completed"]
    assert call["name"] == "get_temperature" and json.loads(call["arguments"]) == {}
    ws.send(json.dumps({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": call["call_id"], "output": "21 C"}}))
    ws.send(json.dumps({"type": "response.create"}))
    done, answer = recv_until(ws, lambda m: m["type"] == "response.done"
                              and m["response"]["status"] == "completed"
                              and m["response"]["output"][0]["type"] == "message")
    audio = b"".join(base64.b64decode(m["delta"]) for m in answer
                     if m["type"] == "response.output_audio.delta")
    transcript = [m for m in answer if m["type"] == "response.output_audio_transcript.done"]
    assert transcript[0]["transcript"].startswith("get_temperature returned 21 C.")
    reply = agent.wait_for("reply_end")[0]
    assert abs(len(audio) / 48000 - reply.data["seconds"]) < 0.01 and reply.data["seconds"] > 1
    assert agent.wait_for("function_output")[0].data["output"] == "21 C"
    assert agent.wait_for("session_update")[0].data["tools"] == ["get_temperature"]
    ws.close()


def test_cancel_and_truncate_with_beta_names(make_agent, question24):
    agent = make_agent("openai", openai_beta_names=True)
    ws = connect(agent)
    send_audio(ws, question24)
    delta, _ = recv_until(ws, "response.audio.delta")  # the beta name
    item = delta["item_id"]
    ws.send(json.dumps({"type": "response.cancel"}))
    done, _ = recv_until(ws, "response.done")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": item,
                        "content_index": 0, "audio_end_ms": 60_000}))
    error, _ = recv_until(ws, "error")
    assert error["error"]["code"] == "invalid_value"
    ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": item,
                        "content_index": 0, "audio_end_ms": 150}))
    truncated, _ = recv_until(ws, "conversation.item.truncated")
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (item, 150)
    ws.send(json.dumps({"type": "response.cancel"}))
    error, _ = recv_until(ws, "error")
    assert error["error"]["code"] == "response_cancel_not_active"
    assert [e.data["active"] for e in agent.wait_for("response_cancel", count=2)] == [True,
                                                                                      False]
    truncates = agent.wait_for("truncate", count=2)
    assert [t.data["audio_end_ms"] for t in truncates] == [60_000, 150]
    assert truncates[1].data["sent_ms"] >= 500  # the lead sent at once
    ws.close()


def test_talking_over_the_answer_cancels_it(make_agent, question24):
    agent = make_agent("openai", late_audio_after_interrupt=True)
    ws = connect(agent)
    talk_over_the_answer(ws, send_audio, question24, "response.output_audio.delta")
    done, before = recv_until(ws, "response.done")
    assert (done["response"]["status"], done["response"]["status_details"]["reason"]) == (
        "cancelled", "turn_detected")
    assert "input_audio_buffer.speech_started" in [m["type"] for m in before]
    late, _ = recv_until(ws, "response.output_audio.delta")  # late audio of that item
    assert late["item_id"] == done["response"]["output"][0]["id"]
    assert agent.wait_for("interrupted")[0].data["event_id"] == 1
    ws.close()


def test_a_session_at_its_maximum_duration_is_closed_1001(make_agent):
    agent = make_agent("openai", close_after_s=0.2)
    _, code, reason = recv_until_closed(connect(agent))
    assert code == 1001 and "maximum duration" in reason
