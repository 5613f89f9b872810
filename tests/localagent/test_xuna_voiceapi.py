"""The local agent, driven only by plain clients (websocket-client + requests).

Nothing here imports the daemon: these tests pin the local agent to the protocol specs
(`protocols.md` sections 1-2 and the vendor seed pages), independently of the providers.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest
import requests
import websocket

from edgevoice.localagent import LocalAgent

REPO = Path(__file__).resolve().parents[2]
QUESTION_WAV = REPO / "edgevoice" / "data" / "question.wav"
RATE = 16000
FRAME_BYTES = 640
FRAME_S = 0.02
TIMEOUT = 10.0


# --- fixtures and helpers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def question() -> bytes:
    """The spoken fixture followed by 1.2 s of silence (enough to end the utterance)."""
    with wave.open(str(QUESTION_WAV)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        pcm = wav.readframes(wav.getnframes())
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return pcm + bytes(int(1.2 * RATE) * 2)


def frames(pcm: bytes):
    for start in range(0, len(pcm), FRAME_BYTES):
        yield pcm[start : start + FRAME_BYTES]


def xuna_connect(agent: LocalAgent, query: str | None = None) -> websocket.WebSocket:
    query = query if query is not None else f"agent_id={agent.options.agent_id}"
    return websocket.create_connection(f"{agent.ws_base}/v1/convai/conversation?{query}", timeout=TIMEOUT)


def xuna_send_audio(ws: websocket.WebSocket, pcm: bytes, legacy_form: bool = False) -> None:
    """Send PCM as 20 ms frames, as fast as the socket takes them (the VAD does not mind)."""
    for frame in frames(pcm):
        b64 = base64.b64encode(frame).decode()
        if legacy_form:
            ws.send(json.dumps({"user_audio_chunk": b64}))
        else:
            ws.send(json.dumps({"type": "audio", "audio_event": {"audio_base_64": b64}}))


def recv_json(ws: websocket.WebSocket) -> dict:
    message = ws.recv()
    assert isinstance(message, str), f"expected a text frame, got {len(message)} bytes"
    return json.loads(message)


def recv_until(ws: websocket.WebSocket, wanted: str, skip_pings: bool = True) -> tuple[dict, list[dict]]:
    """Receive JSON messages until one of type ``wanted``; return it and everything before."""
    before: list[dict] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        message = recv_json(ws)
        if message.get("type") == wanted:
            return message, before
        if not (skip_pings and message.get("type") == "ping"):
            before.append(message)
    raise AssertionError(f"no {wanted!r} message; got {[m.get('type') for m in before]}")


def recv_until_close(ws: websocket.WebSocket) -> tuple[list, int | None]:
    """Everything received until the server's close frame, and its close code."""
    received: list = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return received, (struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            received.append(json.loads(data.decode()))
        elif opcode == websocket.ABNF.OPCODE_BINARY:
            received.append(bytes(data))


def voiceapi_token(agent: LocalAgent) -> dict:
    answer = requests.post(
        f"{agent.http_base}/api/v1/sdk/token", headers={"Authorization": f"Bearer {agent.options.api_key}"}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def voiceapi_connect(agent: LocalAgent) -> websocket.WebSocket:
    """Token, connect, authenticate; returns once connected + agent_ready arrived."""
    bootstrap = voiceapi_token(agent)
    ws = websocket.create_connection(bootstrap["ws_url"], timeout=TIMEOUT)
    ws.send(json.dumps({"token": bootstrap["token"]}))
    assert recv_json(ws) == {"type": "connected"}
    assert recv_json(ws) == {"type": "agent_ready"}
    return ws


def tolerance_bytes(rate: int) -> int:
    return 2 * int(FRAME_S * rate) * 2  # two 20 ms frames either way


# --- events API ------------------------------------------------------------------------------
def test_wait_for_timeout_names_what_was_seen(make_agent):
    agent = make_agent("xuna")
    agent.event_log.record("something_else")
    with pytest.raises(TimeoutError, match="something_elsex1"):
        agent.wait_for("never_happens", timeout=0.05)
    assert agent.count("something_else") == 1


def test_config_values(make_agent):
    xuna = make_agent("xuna")
    assert xuna.config_values() == {
        "agent": {"provider": "xuna"},
        "xuna": {"agent_id": "local-agent", "url": xuna.ws_base + "/v1/convai/conversation", "api_url": xuna.http_base},
    }
    private = make_agent("xuna", private=True)
    assert private.config_values()["xuna"]["api_key"] == "local-secret-key"
    voice = make_agent("voiceapi")
    assert voice.config_values() == {
        "agent": {"provider": "voiceapi"},
        "voiceapi": {"api_url": voice.http_base, "api_key": "local-secret-key"},
    }


# --- xuna --------------------------------------------------------------------------------------
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


# --- voiceapi ------------------------------------------------------------------------------------
def test_voiceapi_rest_bootstrap(make_agent):
    agent = make_agent("voiceapi")
    token_url = f"{agent.http_base}/api/v1/sdk/token"
    good = {"Authorization": "Bearer local-secret-key"}

    first = voiceapi_token(agent)
    assert first["ws_url"] == agent.ws_base + "/ws"
    assert voiceapi_token(agent)["token"] != first["token"]
    assert agent.wait_for("http_token", count=2)[0].data["token"] == first["token"]

    assert requests.post(token_url, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
    assert requests.post(token_url, timeout=5).status_code == 401
    heartbeat = requests.post(f"{agent.http_base}/api/v1/sdk/heartbeat", headers=good, timeout=5)
    assert (heartbeat.status_code, heartbeat.json()) == (200, {"status": "ok"})

    agent.options.device_disabled = True
    assert requests.post(token_url, headers=good, timeout=5).status_code == 403
    agent.options.device_disabled = False
    agent.options.reject_auth = True
    assert requests.post(token_url, headers=good, timeout=5).status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(first["ws_url"], timeout=TIMEOUT)
    assert refused.value.status_code == 403


def test_voiceapi_echo_reply_then_session_closed(make_agent, question):
    agent = make_agent("voiceapi", close_after_reply=True)
    ws = voiceapi_connect(agent)
    assert agent.wait_for("ws_open")[0].data["token"]
    for frame in frames(question):
        ws.send_binary(frame)
    received, code = recv_until_close(ws)
    audio = [m for m in received if isinstance(m, bytes)]
    texts = [m for m in received if isinstance(m, dict)]
    assert audio and all(len(frame) == FRAME_BYTES for frame in audio)
    speech_s = agent.wait_for("user_speech_end")[0].data["seconds"]
    assert 2.0 < speech_s < 3.5
    assert abs(len(audio) * FRAME_BYTES - speech_s * RATE * 2) <= tolerance_bytes(RATE)
    assert texts == [{"type": "session_ended", "reason": "session_closed"}]
    assert code == 1000
    assert agent.wait_for("reply_end")[0].data["event_id"] == 1


def test_voiceapi_barge_in_stops_the_reply(make_agent, question):
    agent = make_agent("voiceapi")
    ws = voiceapi_connect(agent)
    for frame in frames(question):
        ws.send_binary(frame)
    assert len(ws.recv()) == FRAME_BYTES  # the reply has started
    for frame in frames(question):
        ws.send_binary(frame)
    interrupted = agent.wait_for("interrupted")[0]
    reply_s = agent.wait_for("reply_start")[0].data["seconds"]
    assert interrupted.data["event_id"] == 1
    assert interrupted.data["sent_s"] < reply_s
    end = agent.wait_for("reply_end")[0]
    assert (end.data["event_id"], end.data["interrupted"]) == (1, True)
    assert end.data["seconds"] < reply_s
    ws.close()


def _voiceapi_raw(agent: LocalAgent) -> websocket.WebSocket:
    return websocket.create_connection(agent.ws_base + "/ws", timeout=TIMEOUT)


def test_voiceapi_auth_errors_and_close_codes(make_agent):
    agent = make_agent("voiceapi", auth_timeout_s=0.3)

    ws = _voiceapi_raw(agent)
    ws.send(json.dumps({"token": "made-up"}))
    received, code = recv_until_close(ws)
    assert (received[0]["type"], received[0]["code"], code) == ("error", "AUTH_FAILED", 4003)

    token = voiceapi_token(agent)["token"]
    for expected_code in (None, 4003):  # the second use of the same token fails
        ws = _voiceapi_raw(agent)
        ws.send(json.dumps({"token": token}))
        if expected_code is None:
            assert recv_json(ws) == {"type": "connected"}
            ws.close()
        else:
            received, code = recv_until_close(ws)
            assert (received[0]["code"], code) == ("AUTH_FAILED", 4003)

    ws = _voiceapi_raw(agent)
    ws.send(json.dumps({"hello": "no token"}))
    assert recv_until_close(ws) == ([], 4002)

    ws = _voiceapi_raw(agent)  # says nothing
    received, code = recv_until_close(ws)
    assert (received[0]["code"], code) == ("AUTH_TIMEOUT", 4001)

    reasons = [e.data["reason"] for e in agent.wait_for("auth_rejected", count=4)]
    assert reasons == ["token_unknown", "token_used", "token_required", "timeout"]


@pytest.mark.parametrize(
    "error_code, close_code",
    [("SESSION_SETUP_FAILED", 4500), ("AUTH_FAILED", 4003), ("INVALID_AUTH", 4003), ("AUTH_TIMEOUT", 4001)],
)
def test_voiceapi_error_code_switch(make_agent, error_code, close_code):
    agent = make_agent("voiceapi", error_code=error_code)
    bootstrap = voiceapi_token(agent)
    ws = websocket.create_connection(bootstrap["ws_url"], timeout=TIMEOUT)
    ws.send(json.dumps({"token": bootstrap["token"]}))
    received, code = recv_until_close(ws)
    assert received[0]["type"] == "error" and received[0]["code"] == error_code
    assert code == close_code


def test_voiceapi_close_after_s_sends_session_ended(make_agent):
    agent = make_agent("voiceapi", close_after_s=0.3)
    ws = voiceapi_connect(agent)
    assert recv_until_close(ws) == ([{"type": "session_ended", "reason": "server_shutdown"}], 1000)


def test_voiceapi_garbage_does_not_break_the_server(make_agent, question):
    agent = make_agent("voiceapi", send_garbage=True, garbage_big_bytes=300_000)
    ws = voiceapi_connect(agent)
    received = [ws.recv() for _ in range(7)]
    assert sorted(len(m) for m in received)[-1] == 300_000
    assert any(isinstance(m, bytes) and len(m) % 2 for m in received)
    ws.send("not json")
    ws.send_binary(b"\x01" * 641)  # odd length
    agent.wait_for("client_malformed", count=2)
    for frame in frames(question):
        ws.send_binary(frame)
    agent.wait_for("reply_start")
    assert len(ws.recv()) == FRAME_BYTES
    ws.close()


# --- lifecycle and CLI --------------------------------------------------------------------------
def test_stop_closes_open_sessions_quickly(make_agent):
    agent = make_agent("voiceapi")
    sockets = [voiceapi_connect(agent) for _ in range(3)]
    idle = _voiceapi_raw(agent)  # still authenticating
    started = time.monotonic()
    agent.stop()
    assert time.monotonic() - started < 1.5
    for ws in sockets:
        _, code = recv_until_close(ws)
        assert code == 1001
    idle.close()
    agent.stop()  # idempotent


def test_cli_prints_config_and_stops_on_sigterm():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "edgevoice.localagent", "--dialect", "voiceapi", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout_lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [stdout_lines.put(line) for line in process.stdout], daemon=True)
        reader.start()
        lines: list[str] = []
        while not any(line.startswith("api_key") for line in lines):
            try:
                lines.append(stdout_lines.get(timeout=TIMEOUT).strip())
            except queue.Empty:
                raise AssertionError(f"no config printed; got {lines}") from None
        assert "[voiceapi]" in lines and "provider = voiceapi" in lines
        api_url = next(line.split(" = ")[1] for line in lines if line.startswith("api_url"))
        answer = requests.post(f"{api_url}/api/v1/sdk/token", headers={"Authorization": "Bearer local-secret-key"}, timeout=5)
        assert answer.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
        stderr = process.stderr.read()
        assert "http_token" in stderr and answer.json()["token"] not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
