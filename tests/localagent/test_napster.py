"""The local agent's napster dialect (REST bootstrap, handshake auth, rate and session limits,
spoken turns, barge-in, function calls, garbage), driven only by plain clients
(protocols.md section 3 and the vendor seed pages); nothing here imports the daemon."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
import websocket

from edgevoice.localagent import LocalAgent
from tests.support.localagent import (FRAME_BYTES, KEY, RATE, TIMEOUT, chunks, name_of, recv_json,
                                      recv_until, tolerance_bytes)
from tests.support.messages import b64


def napster_post(agent: LocalAgent, path: str, body: dict | None = None, key: str = KEY, method: str = "POST"):
    headers = {"X-Api-Key": key} if key is not None else {}
    return requests.request(method, agent.http_base + path, json=body, headers=headers, timeout=5)


def decode_token(answer: requests.Response) -> dict:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["connection"]["id"].startswith("conn_")
    return json.loads(base64.b64decode(body["token"]))


def napster_bootstrap(agent: LocalAgent) -> dict:
    return decode_token(napster_post(agent, "/public/ws-connections", {"companionId": "comp_local"}))


def napster_open(decoded: dict) -> websocket.WebSocket:
    """Connect as a client must: Bearer header for authToken, nothing for the token form."""
    url = decoded["url"].replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    if "authToken" in decoded:
        header = [f"Authorization: Bearer {decoded['authToken']}"]
        return websocket.create_connection(url, header=header, timeout=TIMEOUT)
    return websocket.create_connection(url, timeout=TIMEOUT)


def napster_fields(message: dict) -> dict:
    """message_received fields, flat under data or nested under data.message."""
    data = message["data"]
    return data["message"] if "message" in data else data


def napster_connect(agent: LocalAgent) -> websocket.WebSocket:
    """Bootstrap, connect and read the opening messages."""
    ws = napster_open(napster_bootstrap(agent))
    opening = [recv_json(ws) for _ in range(4)]
    assert [name_of(m) for m in opening] == ["avatar_state_changed", "message_received"] + ["avatar_state_changed"] * 2
    return ws


def napster_send_audio(ws: websocket.WebSocket, pcm: bytes, key: str = "data") -> None:
    """20 ms frames as fast as the socket takes them (the VAD does not mind)."""
    for frame in chunks(pcm, FRAME_BYTES):
        ws.send(json.dumps({"type": "send_audio", "data": {key: b64(frame)}}))


def napster_audio(message: dict) -> bytes | None:
    """Reply audio from any accepted form (name under event/type, payload data.data/data.audio)."""
    if name_of(message) != "audio_received":
        return None
    data = message["data"]
    return base64.b64decode(data.get("data") or data["audio"])


def is_message(role: str, action: str):
    def test(message: dict) -> bool:
        if name_of(message) != "message_received":
            return False
        fields = napster_fields(message)
        return fields.get("role") == role and fields.get("action") == action

    return test


def test_napster_ws_connections_seed_form_and_handshake_auth(make_agent):
    agent = make_agent("napster")
    path = "/public/ws-connections"
    assert napster_post(agent, path, {"companionId": "c"}, key="wrong").status_code == 401
    assert napster_post(agent, path, {"companionId": "c"}, key=None).status_code == 401
    assert napster_post(agent, path, {"providerConfig": {}}).status_code == 400
    assert napster_post(agent, path, {"companionId": "c", "externalClientId": "has spaces"}).status_code == 400
    assert napster_post(agent, path, method="GET").status_code == 405

    body = {
        "companionId": "comp_local",
        "providerConfig": {"voiceId": "alloy", "settings": {}},
        "externalClientId": "pi_kitchen-1",
        "tags": ["edge"],
    }
    answer = napster_post(agent, path, body)
    decoded = decode_token(answer)
    assert decoded["url"] == agent.ws_base + "/napster/ws" and set(decoded) == {"url", "authToken"}
    recorded = agent.wait_for("http_ws_connection")[0].data
    assert recorded == {"connection_id": answer.json()["connection"]["id"], "body": body}

    for header, status in ((None, 401), ("Basic abc", 401), ("Bearer made-up", 403)):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(
                decoded["url"], header=[f"Authorization: {header}"] if header else [], timeout=TIMEOUT
            )
        assert refused.value.status_code == status

    ws = napster_open(decoded)
    opening = [recv_json(ws) for _ in range(4)]
    assert opening[0] == {"event": "avatar_state_changed", "data": {"state": "preparing"}}
    assert opening[1]["type"] == "message_received" and opening[1]["data"]["type"] == "session"
    assert opening[2:] == [{"event": "avatar_state_changed", "data": {"state": "ready"}}] * 2
    opened = agent.wait_for("ws_open")[0].data
    assert opened["auth"] == "header" and opened["connection_id"] == recorded["connection_id"]
    ws.close()

    with pytest.raises(websocket.WebSocketBadStatusException) as reused:
        napster_open(decoded)
    assert reused.value.status_code == 403
    reasons = [e.data["reason"] for e in agent.wait_for("auth_rejected", count=6)]
    assert reasons[-4:] == ["missing_token", "bad_authorization_header", "token_unknown", "token_used"]


def test_napster_omniagent_token_form_and_http_url(make_agent):
    agent = make_agent("napster", napster_token_form="token", napster_url_scheme="http", napster_nested_messages=True)
    assert napster_post(agent, "/public/agents", {"name": "no companion"}).status_code == 400
    created = napster_post(agent, "/public/agents", {"companionId": "comp_x", "name": "Kitchen", "voiceId": "alloy"})
    assert created.status_code == 200
    new_id = created.json()["id"]
    assert new_id.startswith("agent_") and created.json()["voiceId"] == "alloy"
    assert agent.wait_for("http_agent_create")[0].data["body"]["name"] == "Kitchen"

    patched = napster_post(agent, f"/public/agents/{new_id}", {"voiceId": "verse"}, method="PATCH")
    assert patched.json() == {"id": new_id, "companionId": "comp_x", "name": "Kitchen", "voiceId": "verse"}
    assert agent.wait_for("http_agent_update")[0].data == {"agent_id": new_id, "body": {"voiceId": "verse"}}
    assert napster_post(agent, "/public/agents/agent_nope", {"voiceId": "x"}, method="PATCH").status_code == 404

    assert napster_post(agent, "/public/agents/agent_nope/connections", {"channelType": "websocket"}).status_code == 404
    assert napster_post(agent, "/public/agents/agent_local/connections", {"channelType": "webrtc"}).status_code == 400
    for agent_id in ("agent_local", new_id):
        body = {"channelType": "websocket", "externalClientId": "pi_1", "externalClientProfile": {"room": "hall"}}
        decoded = decode_token(napster_post(agent, f"/public/agents/{agent_id}/connections", body))
        assert set(decoded) == {"url", "token"}
        assert decoded["url"] == f"http://127.0.0.1:{agent.context.ws_port}/napster/ws?token={decoded['token']}"
        assert agent.wait_for("http_agent_connection", predicate=lambda e, a=agent_id: e.data["agent_id"] == a)[
            0
        ].data["body"] == body

    ws = napster_open(decoded)  # the url carries the token: no header added
    opening = [recv_json(ws) for _ in range(4)]
    assert opening[1]["data"]["message"]["type"] == "session"  # nested like every message
    assert agent.wait_for("ws_open")[0].data["auth"] == "query"
    ws.close()


def test_napster_rate_and_session_limits(make_agent):
    agent = make_agent("napster", napster_rate_limit_s=30.0)
    path = "/public/ws-connections"
    first = napster_post(agent, path, {"companionId": "c"})
    assert first.status_code == 200
    limited = napster_post(agent, path, {"companionId": "c"})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    limited = napster_post(agent, "/public/agents/agent_local/connections", {"channelType": "websocket"})
    assert limited.status_code == 429  # one clock for both endpoints
    agent.wait_for("http_rate_limited", count=2)

    agent.options.napster_rate_limit_s = None
    agent.options.napster_max_sessions = 1
    ws = napster_open(decode_token(first))
    agent.wait_for("ws_open")
    refused = napster_post(agent, path, {"companionId": "c"})
    assert (refused.status_code, refused.json()) == (409, {"error": "concurrent session limit"})
    assert agent.wait_for("http_session_limit")[0].data["open"] == 1
    ws.close()
    agent.wait_for("ws_closed")
    assert napster_post(agent, path, {"companionId": "c"}).status_code == 200


@pytest.mark.parametrize(
    "send_key, audio_form, nested",
    [("data", "event/data", False), ("audio", "event/audio", True), ("data", "type/data", False)],
)
def test_napster_spoken_turn(make_agent, question, send_key, audio_form, nested):
    agent = make_agent("napster", napster_audio_form=audio_form, napster_nested_messages=nested)
    ws = napster_connect(agent)
    napster_send_audio(ws, question, key=send_key)

    user, before = recv_until(ws, is_message("user", "completed"))
    assert before == [{"event": "talk_state_changed", "data": {"state": "preparing"}}]
    assert "message" in user["data"] if nested else "role" in user["data"]
    fields = napster_fields(user)
    assert "seconds" in fields["content"] and fields["item_id"] == "item_1"
    assert recv_json(ws) == {"event": "talk_state_changed", "data": {"state": "started"}}

    speech_s = agent.wait_for("user_speech_end")[0].data["seconds"]
    assert 2.0 < speech_s < 3.5
    assert agent.wait_for("audio_form")[0].data["key"] == send_key
    name_key, payload_key = {"event/data": ("event", "data"), "event/audio": ("event", "audio"),
                             "type/data": ("type", "data")}[audio_form]
    audio, deltas, first_at = b"", [], None
    while True:
        message = recv_json(ws)
        if is_message("assistant", "completed")(message):
            break
        if napster_audio(message) is not None:
            assert message[name_key] == "audio_received" and set(message["data"]) == {payload_key}
            audio += napster_audio(message)
            first_at = first_at or time.monotonic()
        else:
            assert is_message("assistant", "delta")(message), message
            deltas.append(napster_fields(message))
    last_at = time.monotonic()
    completed = napster_fields(message)
    assert deltas and all(d["response_id"] == "resp_1" for d in deltas)
    assert "".join(d["content"] for d in deltas) == completed["content"]
    assert completed["response_id"] == "resp_1" and "You spoke for" in completed["content"]
    assert recv_json(ws) == {"event": "talk_state_changed", "data": {"state": "ended"}}
    assert abs(len(audio) - int(speech_s * RATE) * 2) <= tolerance_bytes(RATE)
    assert last_at - first_at > (speech_s - 0.5) * 0.7  # paced: only reply_lead_s goes out at once
    end = agent.wait_for("reply_end")[0]
    assert (end.data["event_id"], end.data["interrupted"]) == (1, False)
    ws.close()


def test_napster_barge_in_cancels_the_reply(make_agent, question):
    agent = make_agent("napster")
    ws = napster_connect(agent)
    napster_send_audio(ws, question)
    recv_until(ws, lambda m: napster_audio(m) is not None)
    napster_send_audio(ws, question)  # talk over the reply

    flush, _ = recv_until(ws, "speech_started")
    assert flush == {"type": "speech_started"}
    assert agent.wait_for("speech_started_sent")[0].data["key"] == "type"
    cancelled = napster_fields(recv_json(ws))
    assert cancelled == {"role": "assistant", "action": "cancelled", "reason": "turn_detected", "response_id": "resp_1"}
    assert recv_json(ws) == {"event": "talk_state_changed", "data": {"state": "ended"}}
    interrupted = agent.wait_for("interrupted")[0]
    assert interrupted.data["event_id"] == 1
    assert interrupted.data["sent_s"] < agent.wait_for("reply_start")[0].data["seconds"]
    # the interrupting speech is the next turn, answered as resp_2
    user, _ = recv_until(ws, is_message("user", "completed"))
    assert napster_fields(user)["item_id"] == "item_2"
    agent.wait_for("reply_start", predicate=lambda e: e.data["event_id"] == 2)
    ws.close()


def test_napster_function_call_round_trip(make_agent, question):
    call = {"name": "get_temperature", "arguments": {"room": "kitchen"}}
    agent = make_agent("napster", function_call=call)
    ws = napster_connect(agent)
    napster_send_audio(ws, question)
    recv_until(ws, is_message("user", "completed"))
    first, second = recv_json(ws), recv_json(ws)
    assert first["event"] == second["type"] == "function_implicitly_called"  # sent twice, both key forms
    assert first["data"] == second["data"]
    call_id = first["data"]["call_id"]
    assert call_id.startswith("call_") and first["data"]["arguments"] == {"room": "kitchen"}
    assert agent.wait_for("function_called")[0].data == {"conversation": "conn_1", "call_id": call_id, **call}
    assert agent.count("reply_start") == 0  # the reply waits for the output

    ws.send(json.dumps({"type": "send_function_output", "data": {"call_id": "call_999", "output": "x", "delay": 0}}))
    ws.send(json.dumps({"type": "send_function_output", "data": {"call_id": call_id, "output": "21 C", "delay": 0}}))
    started, _ = recv_until(ws, "talk_state_changed")
    assert started["data"]["state"] == "started"
    recv_until(ws, lambda m: napster_audio(m) is not None)
    assert agent.wait_for("function_output")[0].data["output"] == "21 C"
    assert agent.wait_for("function_output_unexpected")[0].data["call_id"] == "call_999"
    done, _ = recv_until(ws, is_message("assistant", "completed"))
    assert "21 C" in napster_fields(done)["content"]
    assert agent.count("function_timeout") == 0
    ws.close()


def test_napster_function_call_timeout(make_agent, question):
    agent = make_agent("napster", function_call={"name": "lights", "arguments": '{"on": true}'}, function_timeout_s=0.3)
    ws = napster_connect(agent)
    napster_send_audio(ws, question)
    called, _ = recv_until(ws, "function_implicitly_called")
    assert called["data"]["arguments"] == '{"on": true}'  # the string form, passed through
    timeout, _ = recv_until(ws, "function_call_timeout")
    assert timeout["data"] == {"call_id": called["data"]["call_id"]}
    assert agent.wait_for("function_timeout")[0].data["call_id"] == called["data"]["call_id"]
    recv_until(ws, lambda m: napster_audio(m) is not None)  # answered anyway
    ws.close()


def test_napster_error_event_and_client_garbage(make_agent, question):
    agent = make_agent("napster", napster_error_after_open="simulated trouble")
    ws = napster_connect(agent)
    assert recv_json(ws) == {"type": "error", "data": {"message": "simulated trouble"}}
    assert agent.wait_for("error_sent")[0].data["message"] == "simulated trouble"

    for bad in (
        "not json",
        "[1]",
        '{"type":"send_audio"}',
        '{"type":"send_audio","data":{"data":"@@"}}',
        json.dumps({"type": "send_audio", "data": {"data": b64(b"\x01\x02\x03")}}),  # odd length
        '{"type":"send_function_output","data":{}}',
    ):
        ws.send(bad)
    ws.send_binary(b"\x00" * 10)
    ws.send(json.dumps({"type": "mystery"}))
    ws.send(json.dumps({"type": "send_message", "data": {"role": "user", "text": "hi", "trigger_response": False}}))
    ws.send(json.dumps({"type": "set_settings", "data": {"temperature": 0.5}}))
    agent.wait_for("client_malformed", count=6)
    agent.wait_for("client_unknown", count=2)
    commands = agent.wait_for("client_command", count=3)
    assert [e.data["command"] for e in commands] == ["send_function_output", "send_message", "set_settings"]

    napster_send_audio(ws, question)  # the same session still converses
    recv_until(ws, lambda m: napster_audio(m) is not None)
    ws.close()


def test_napster_server_garbage(make_agent):
    agent = make_agent("napster", send_garbage=True, garbage_big_bytes=100_000)
    ws = napster_connect(agent)
    received = [ws.recv() for _ in range(10)]
    assert max(len(m) for m in received) == 100_000
    agent.wait_for("garbage_sent")
    ws.close()
