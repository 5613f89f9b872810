"""The local agent's voiceapi dialect (REST token, in-band auth, replies, barge-in, error
close codes, shutdown), driven only by plain clients; nothing here imports the daemon."""

from __future__ import annotations

import json
import time

import pytest
import requests
import websocket

from edgevoice.localagent import LocalAgent
from tests.support.localagent import (FRAME_BYTES, chunks, RATE, TIMEOUT, recv_json, recv_until_close,
                                      tolerance_bytes)


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
    for frame in chunks(question):
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
    for frame in chunks(question):
        ws.send_binary(frame)
    assert len(ws.recv()) == FRAME_BYTES  # the reply has started
    for frame in chunks(question):
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
    for frame in chunks(question):
        ws.send_binary(frame)
    agent.wait_for("reply_start")
    assert len(ws.recv()) == FRAME_BYTES
    ws.close()


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
