"""The local agent's napster and navtalk dialects, driven only by plain clients
(websocket-client + requests).

Nothing here imports the daemon or its providers: these tests pin the local agent to the
protocol specs (`protocols.md` sections 3-4 and the vendor seed pages).
"""

from __future__ import annotations

import base64
import json
import struct
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import requests
import soxr
import websocket

from edgevoice.localagent import LocalAgent

REPO = Path(__file__).resolve().parents[2]
QUESTION_WAV = REPO / "edgevoice" / "data" / "question.wav"
RATE = 16000
NAV_RATE = 24000
FRAME_BYTES = 640  # 20 ms at 16 kHz
NAV_FRAME_BYTES = 960  # 20 ms at 24 kHz
TIMEOUT = 10.0
KEY = "local-secret-key"


# --- fixtures and helpers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def question() -> bytes:
    """The spoken fixture (16 kHz) followed by 1.2 s of silence (enough to end the utterance)."""
    with wave.open(str(QUESTION_WAV)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        pcm = wav.readframes(wav.getnframes())
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return pcm + bytes(int(1.2 * RATE) * 2)


@pytest.fixture(scope="module")
def question24(question: bytes) -> bytes:
    """The same at 24 kHz, padded to whole 960-byte frames."""
    samples = soxr.resample(np.frombuffer(question, dtype="<i2"), RATE, NAV_RATE)
    pcm = samples.astype("<i2").tobytes()
    return pcm + bytes(-len(pcm) % NAV_FRAME_BYTES)


def chunks(pcm: bytes, size: int):
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def name_of(message: dict) -> str | None:
    """A napster message's name, under ``event`` or ``type``."""
    return message.get("event") or message.get("type")


def recv_json(ws: websocket.WebSocket) -> dict:
    message = ws.recv()
    assert isinstance(message, str), f"expected a text frame, got {len(message)} bytes"
    return json.loads(message)


def recv_until(ws: websocket.WebSocket, wanted, timeout: float = TIMEOUT) -> tuple[dict, list[dict]]:
    """Receive until a message for which ``wanted(message)`` holds (or whose name is ``wanted``)."""
    test = wanted if callable(wanted) else (lambda m: name_of(m) == wanted)
    before: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = recv_json(ws)
        if test(message):
            return message, before
        before.append(message)
    raise AssertionError(f"no {wanted!r} message; got {[name_of(m) for m in before]}")


def recv_until_close(ws: websocket.WebSocket) -> tuple[list, int | None, str]:
    """Everything received until the server's close frame, its close code and reason."""
    received: list = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            return received, code, data[2:].decode(errors="replace")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            received.append(json.loads(data.decode()))


def tolerance_bytes(rate: int) -> int:
    return 2 * int(0.02 * rate) * 2  # two 20 ms frames either way


# --- napster helpers ---
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


# --- navtalk helpers ---
def navtalk_url(agent: LocalAgent, query: str | None = None) -> str:
    query = query if query is not None else f"license={KEY}&name=navtalk.Local"
    return f"{agent.ws_base}/wss/v2/realtime-chat?{query}"


def nav_payload(message: dict) -> dict:
    """An event's payload: under data, or the event itself (top-level form)."""
    return message["data"] if isinstance(message.get("data"), dict) else message


def navtalk_connect(agent: LocalAgent, query: str | None = None) -> websocket.WebSocket:
    """Connect and wait for session.updated (sending no history)."""
    ws = websocket.create_connection(navtalk_url(agent, query), timeout=TIMEOUT)
    recv_until(ws, "realtime.session.updated")
    return ws


def navtalk_send_audio(ws: websocket.WebSocket, pcm24: bytes) -> None:
    for frame in chunks(pcm24, NAV_FRAME_BYTES):
        ws.send(json.dumps({"type": "realtime.input_audio_buffer.append", "data": {"audio": b64(frame)}}))


# --- config ---------------------------------------------------------------------------------
def test_config_values(make_agent):
    napster = make_agent("napster")
    assert napster.config_values() == {
        "agent": {"provider": "napster"},
        "napster": {"api_url": napster.http_base, "api_key": KEY, "companion_id": "comp_local"},
    }
    omni = make_agent("napster", omniagent=True)
    assert omni.config_values()["napster"]["agent_id"] == "agent_local"
    navtalk = make_agent("navtalk")
    assert navtalk.config_values() == {
        "agent": {"provider": "navtalk"},
        "navtalk": {"url": navtalk.ws_base + "/wss/v2/realtime-chat", "license": KEY, "name": "navtalk.Local"},
    }
    with pytest.raises(ValueError, match="napster_audio_form"):
        LocalAgent("napster", options=type(napster.options)(napster_audio_form="binary"))


# --- napster: REST bootstrap and handshake -----------------------------------------------------------
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


# --- napster: conversation ----------------------------------------------------------------------------
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


# --- navtalk ------------------------------------------------------------------------------------------
def test_navtalk_connect_history_and_ready(make_agent, question24):
    agent = make_agent("navtalk", navtalk_history_wait_s=0.5, navtalk_warning="2 avatars share this name")
    ws = websocket.create_connection(navtalk_url(agent, f"license={KEY}&name=navtalk.Local&avatarId=av_7"))
    success = recv_json(ws)
    assert success["type"] == "conversation.connected.success"
    assert success["data"]["sessionId"] == "sess_1" and success["data"]["iceServers"]
    warning = recv_json(ws)
    assert (warning["type"], warning["message"]) == ("conversation.connected.warning", "2 avatars share this name")
    assert recv_json(ws)["type"] == "realtime.session.created"
    assert agent.wait_for("ws_open")[0].data == {"conversation": "sess_1", "by": "avatarId", "avatar": "av_7"}

    for text in ("my name is Ada", "I live in Lisbon"):
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    navtalk_send_audio(ws, question24[: 2 * NAV_FRAME_BYTES])  # too early: a client bug
    updated, _ = recv_until(ws, "realtime.session.updated")
    history = agent.wait_for("history_item", count=2)
    assert [(e.data["role"], e.data["text"], e.data["ready"]) for e in history] == [
        ("user", "my name is Ada", False),
        ("user", "I live in Lisbon", False),
    ]
    ready = agent.wait_for("session_updated")[0]
    assert ready.data["history_items"] == 2 and all(e.t < ready.t for e in history)
    assert agent.wait_for("audio_before_ready", count=2)[0].data["bytes"] == NAV_FRAME_BYTES
    noise = [recv_json(ws)["type"] for _ in range(2)]
    assert noise == ["webrtc.signaling.offer", "webrtc.signaling.iceCandidate"]
    ws.close()

    by_name = navtalk_connect(agent)
    assert agent.wait_for("ws_open", count=2)[1].data["by"] == "name"
    by_name.close()


@pytest.mark.parametrize(
    "query, options, event, code, reason",
    [
        ("license=wrong&name=x", {}, "conversation.connected.fail", 1008, "invalid_license"),
        ("name=x", {}, "conversation.connected.fail", 1008, "missing_license"),
        (f"license={KEY}", {}, "conversation.connected.fail", 1008, "missing_avatar"),
        (f"license={KEY}&name=x", {"navtalk_insufficient_balance": True},
         "conversation.connected.insufficient_balance", 1000, None),
        (f"license={KEY}&name=x", {"navtalk_fail_event": "gpu_full"}, "conversation.connected.gpu_full", 1000, None),
    ],
)
def test_navtalk_connection_failures(make_agent, query, options, event, code, reason):
    agent = make_agent("navtalk", **options)
    ws = websocket.create_connection(navtalk_url(agent, query), timeout=TIMEOUT)
    received, close_code, _ = recv_until_close(ws)
    assert len(received) == 1 and received[0]["type"] == event and received[0]["message"]
    assert close_code == code
    if reason:
        assert agent.wait_for("auth_rejected")[0].data["reason"] == reason
    else:
        agent.wait_for("connect_failed")
    assert agent.count("ws_open") == 0


@pytest.mark.parametrize("top_level", [False, True])
def test_navtalk_spoken_turn(make_agent, question24, top_level):
    agent = make_agent("navtalk", navtalk_top_level_payload=top_level)
    ws = navtalk_connect(agent)
    oversized = b64(bytes(4 * NAV_FRAME_BYTES))  # 5120 characters: over the 4096 limit
    ws.send(json.dumps({"type": "realtime.input_audio_buffer.append", "data": {"audio": oversized}}))
    navtalk_send_audio(ws, question24)

    _, before = recv_until(ws, "realtime.input_audio_buffer.speech_stopped")
    assert "realtime.input_audio_buffer.speech_started" in [m["type"] for m in before]
    transcript = recv_json(ws)
    assert transcript["type"] == "realtime.conversation.item.input_audio_transcription.completed"
    assert ("data" in transcript) is not top_level
    assert "seconds" in nav_payload(transcript)["content"]

    speech_s = agent.wait_for("user_speech_end")[0].data["seconds"]
    assert 2.0 < speech_s < 3.5
    deltas, audio, kinds = [], b"", []
    while True:
        message = recv_json(ws)
        kinds.append(message["type"])
        if message["type"] == "realtime.response.audio_transcript.delta":
            deltas.append(nav_payload(message))
        elif message["type"] == "realtime.response.audio.delta":
            audio += base64.b64decode(nav_payload(message)["delta"])
        elif message["type"] == "realtime.response.audio_transcript.done":
            done = nav_payload(message)
        elif message["type"] == "realtime.response.audio.done":
            break
    assert len(deltas) >= 2 and {d["id"] for d in deltas} == {"resp_1"}
    assert "".join(d["content"] for d in deltas) == done["content"]
    assert kinds.index("realtime.response.audio.delta") > kinds.index("realtime.response.audio_transcript.delta")
    assert kinds[-2:] == ["realtime.response.audio_transcript.done", "realtime.response.audio.done"]
    assert "webrtc.signaling.iceCandidate" in kinds  # noise an audio client must ignore
    assert abs(len(audio) - int(speech_s * NAV_RATE) * 2) <= tolerance_bytes(NAV_RATE)
    malformed = agent.wait_for("client_malformed")[0].data
    assert "4096" in malformed["reason"] and malformed["size"] == len(oversized)
    ws.close()


def test_navtalk_barge_in(make_agent, question24):
    agent = make_agent("navtalk", navtalk_webrtc_noise=False)
    ws = navtalk_connect(agent)
    navtalk_send_audio(ws, question24)
    recv_until(ws, "realtime.response.audio.delta")
    navtalk_send_audio(ws, question24)
    recv_until(ws, "realtime.input_audio_buffer.speech_started")
    interrupted = agent.wait_for("interrupted")[0]
    assert interrupted.data["event_id"] == 1
    assert interrupted.data["sent_s"] < agent.wait_for("reply_start")[0].data["seconds"]
    # no more of response 1 after the flush; response 2 answers the interrupting speech
    _, between = recv_until(ws, "realtime.input_audio_buffer.speech_stopped")
    assert "realtime.response.audio.done" not in [m["type"] for m in between]
    delta, _ = recv_until(ws, "realtime.response.audio_transcript.delta")
    assert delta["data"]["id"] == "resp_2"
    ws.close()


def test_navtalk_function_call_round_trip(make_agent, question24):
    agent = make_agent("navtalk", navtalk_top_level_payload=True,
                       function_call={"name": "get_temperature", "arguments": {"room": "kitchen"}})
    ws = navtalk_connect(agent)
    navtalk_send_audio(ws, question24)
    called, _ = recv_until(ws, "realtime.response.function_call_arguments.done")
    assert json.loads(called["arguments"]) == {"room": "kitchen"} and called["function_name"] == "get_temperature"
    call_id = called["call_id"]
    agent.wait_for("function_called")
    output = {"type": "function_call_output", "call_id": call_id, "output": "21 C"}
    ws.send(json.dumps({"type": "conversation.item.create", "item": output}))
    assert agent.wait_for("function_output")[0].data["output"] == "21 C"
    assert agent.count("reply_start") == 0  # waits for response.create
    ws.send(json.dumps({"type": "response.create"}))
    delta, _ = recv_until(ws, "realtime.response.audio_transcript.delta")
    assert agent.wait_for("response_create")[0].data["call_id"] == call_id
    done, _ = recv_until(ws, "realtime.response.audio_transcript.done")
    assert "21 C" in done["content"]
    ws.close()


def test_navtalk_function_call_timeout(make_agent, question24):
    agent = make_agent("navtalk", function_call={"name": "f", "arguments": "{}"}, function_timeout_s=0.3)
    ws = navtalk_connect(agent)
    navtalk_send_audio(ws, question24)
    called, _ = recv_until(ws, "realtime.response.function_call_arguments.done")
    assert called["data"]["arguments"] == "{}"
    recv_until(ws, "realtime.response.audio.delta")  # answered without the output
    assert agent.wait_for("function_timeout")[0].data == {
        "conversation": "sess_1",
        "call_id": called["data"]["call_id"],
        "got_output": False,
    }
    ws.close()


def test_navtalk_text_input_and_client_garbage(make_agent, question24):
    agent = make_agent("navtalk", navtalk_history_wait_s=0.0)
    ws = navtalk_connect(agent)
    ws.send(json.dumps({"type": "realtime.input_text", "data": {"content": "hello there"}}))
    assert agent.wait_for("text_input")[0].data["text"] == "hello there"
    for bad in (
        "not json",
        "[1]",
        '{"type":"realtime.input_audio_buffer.append"}',
        '{"type":"realtime.input_audio_buffer.append","data":{"audio":"@@"}}',
        json.dumps({"type": "realtime.input_audio_buffer.append", "data": {"audio": b64(b"\x01\x02\x03")}}),
        '{"type":"conversation.item.create","item":7}',
        '{"type":"realtime.input_text","data":{}}',
    ):
        ws.send(bad)
    ws.send_binary(b"\x00" * 10)
    ws.send(json.dumps({"type": "webrtc.signaling.answer", "data": {"sdp": "v=0"}}))
    ws.send(json.dumps({"type": "response.create"}))  # nothing pending: recorded, ignored
    agent.wait_for("client_malformed", count=7)
    agent.wait_for("client_webrtc")
    assert agent.wait_for("response_create")[0].data["call_id"] is None
    navtalk_send_audio(ws, question24)  # the same session still converses
    recv_until(ws, "realtime.response.audio.delta")
    ws.close()


def test_navtalk_server_garbage_and_close_event(make_agent):
    agent = make_agent("navtalk", send_garbage=True, garbage_big_bytes=100_000, close_after_s=1.0,
                       navtalk_webrtc_noise=False)
    ws = websocket.create_connection(navtalk_url(agent), timeout=TIMEOUT)
    received: list = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        received.append(data)
    assert max(len(m) for m in received) == 100_000
    assert json.loads(received[-2])["type"] == "realtime.session.updated"
    assert json.loads(received[-1]) == {"type": "conversation.connected.close", "message": "close_after_s"}
    assert agent.wait_for("ws_closed")[0].data["by"] == "server"
