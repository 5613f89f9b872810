"""The local agent's navtalk dialect (connect with history, failures, spoken turns, barge-in,
function calls, garbage), driven only by plain clients (protocols.md section 4 and the
vendor seed pages); nothing here imports the daemon."""

from __future__ import annotations

import base64
import json

import pytest
import websocket

from edgevoice.localagent import LocalAgent
from tests.support.localagent import (KEY, NAV_FRAME_BYTES, NAV_RATE, TIMEOUT, chunks, recv_json,
                                      recv_until, recv_until_closed, talk_over_the_answer,
                                      tolerance_bytes)
from tests.support.messages import b64


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
    received, close_code, _ = recv_until_closed(ws)
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
    talk_over_the_answer(ws, navtalk_send_audio, question24, "realtime.response.audio.delta")
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
