"""The local agent's gemini dialect (ephemeral tokens, both endpoints, setup, spoken turns in
text and binary frames, tool calls, interruptions, session resumption, goAway), driven only
by plain clients (docs/protocols/gemini-live.md); nothing here imports the daemon."""

from __future__ import annotations

import base64
import json

import pytest
import requests
import websocket

from edgevoice.localagent import LocalAgent
from tests.support.localagent import FRAME_BYTES, KEY, TIMEOUT, chunks, recv_until_closed
from tests.support.messages import b64

SERVICE = "/ws/google.ai.generativelanguage.{}.GenerativeService.{}"
KEY_PATH = SERVICE.format("v1beta", "BidiGenerateContent")
TOKEN_PATH = SERVICE.format("v1alpha", "BidiGenerateContentConstrained")
TOOLS = [{"function_declarations": [{"name": "get_temperature", "description": "Room",
                                     "parameters_json_schema": {"type": "object"}}]}]


def connect(agent: LocalAgent, query: str = f"key={KEY}", path: str = KEY_PATH,
            header: list[str] | None = None) -> websocket.WebSocket:
    return websocket.create_connection(f"{agent.ws_base}{path}?{query}", header=header or [],
                                       timeout=TIMEOUT)


def recv(ws: websocket.WebSocket) -> tuple[dict, bool]:
    """The next message, and whether it came as a binary frame."""
    message = ws.recv()
    return json.loads(message), isinstance(message, bytes)


def until(ws: websocket.WebSocket, test) -> tuple[dict, list[tuple[dict, bool]]]:
    before = []
    for _ in range(2000):
        message, binary = recv(ws)
        if test(message):
            return message, before
        before.append((message, binary))
    raise AssertionError("no such message")


def content(key: str):
    return lambda m: key in m.get("serverContent", {})


def setup(ws: websocket.WebSocket, **extra) -> dict:
    ws.send(json.dumps({"setup": {"model": "models/gemini-live", **extra}}))
    complete, _ = recv(ws)
    assert complete == {"setupComplete": {}}
    return complete


def send_audio(ws: websocket.WebSocket, pcm: bytes, snake: bool = False) -> None:
    for frame in chunks(pcm, FRAME_BYTES):
        blob = {"mimeType": "audio/pcm;rate=16000", "data": b64(frame)}
        if snake:
            ws.send(json.dumps({"realtime_input": {"media_chunks": [
                {"mime_type": blob["mimeType"], "data": blob["data"]}]}}))
        else:
            ws.send(json.dumps({"realtimeInput": {"audio": blob}}))


def test_ephemeral_tokens_keys_and_setup_first(make_agent):
    agent = make_agent("gemini")
    url = f"{agent.http_base}/v1alpha/auth_tokens"
    assert requests.post(url, headers={"x-goog-api-key": "wrong"}, timeout=TIMEOUT,
                         json={}).status_code == 401
    name = requests.post(url, headers={"x-goog-api-key": KEY}, json={},
                         timeout=TIMEOUT).json()["name"]
    assert name.startswith("auth_tokens/")
    ws = connect(agent, "", TOKEN_PATH, [f"Authorization: Token {name}"])
    setup(ws)
    ws.close()
    for query, path in ((f"access_token={name}", TOKEN_PATH), ("key=wrong", KEY_PATH)):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            connect(agent, query, path)  # the token is used up; the key is wrong
        assert refused.value.status_code == 403
    ws = connect(agent)
    ws.send(json.dumps({"realtimeInput": {"audio": {"data": ""}}}))
    _, code, _ = recv_until_closed(ws)
    assert code == 1007  # setup must come first


def test_turn_tool_call_and_resumption(make_agent, question):
    agent = make_agent("gemini")
    ws = connect(agent)
    setup(ws, tools=TOOLS, session_resumption={})
    first_handle = recv(ws)[0]["sessionResumptionUpdate"]["newHandle"]
    send_audio(ws, question, snake=True)
    call, before = until(ws, lambda m: "toolCall" in m)
    assert before[0][0]["serverContent"]["inputTranscription"]["text"].startswith("I said")
    (function,) = call["toolCall"]["functionCalls"]
    assert function["name"] == "get_temperature" and function["args"] == {}
    ws.send(json.dumps({"toolResponse": {"functionResponses": [
        {"id": function["id"], "name": "get_temperature", "response": {"result": "21 C"}}]}}))
    _, turn = until(ws, content("turnComplete"))
    text = [m["serverContent"]["outputTranscription"]["text"] for m, _ in turn
            if "outputTranscription" in m.get("serverContent", {})]
    assert text[0].startswith("get_temperature returned 21 C.")
    parts = [(m["serverContent"]["modelTurn"]["parts"][0]["inlineData"], binary)
             for m, binary in turn if "modelTurn" in m.get("serverContent", {})]
    assert {p["mimeType"] for p, _ in parts} == {"audio/pcm;rate=24000"}
    assert {binary for _, binary in parts} == {True, False}  # both kinds of frame
    audio = b"".join(base64.b64decode(p["data"]) for p, _ in parts)
    reply = agent.wait_for("reply_end")[0]
    assert abs(len(audio) / 48000 - reply.data["seconds"]) < 0.01
    handle = recv(ws)[0]["sessionResumptionUpdate"]["newHandle"]
    assert handle != first_handle
    ws.close()

    ws = connect(agent)  # resume: the same conversation goes on
    setup(ws, sessionResumption={"handle": handle})
    setups = agent.wait_for("setup", count=2)
    assert setups[1].data["resumed"] == setups[0].data["conversation"]
    ws.close()
    ws = connect(agent)
    ws.send(json.dumps({"setup": {"model": "m", "sessionResumption": {"handle": "Cgstale"}}}))
    _, code, _ = recv_until_closed(ws)
    assert code == 1007 and agent.count("resume_refused") == 1


def test_talking_over_the_answer_interrupts_and_go_away_closes(make_agent, question):
    agent = make_agent("gemini", gemini_go_away_after_s=2.0)
    ws = connect(agent)
    setup(ws)
    send_audio(ws, question)
    until(ws, content("modelTurn"))
    send_audio(ws, question)
    _, before = until(ws, content("interrupted"))
    assert recv(ws)[0] == {"serverContent": {"turnComplete": True}}
    assert agent.wait_for("interrupted")[0].data["event_id"] == 1
    go_away, _ = until(ws, lambda m: "goAway" in m)
    assert go_away["goAway"]["timeLeft"] == "1s"
    _, code, _ = recv_until_closed(ws)
    assert code == 1000


def test_a_cancelled_tool_call_is_answered_without_its_output(make_agent, question):
    agent = make_agent("gemini", gemini_cancel_tool_calls=True,
                       function_call={"name": "get_temperature", "arguments": {}})
    ws = connect(agent)
    setup(ws)
    send_audio(ws, question)
    call, _ = until(ws, lambda m: "toolCall" in m)
    cancel, _ = recv(ws)
    call_id = call["toolCall"]["functionCalls"][0]["id"]
    assert cancel == {"toolCallCancellation": {"ids": [call_id]}}
    until(ws, content("modelTurn"))  # the answer comes without the call
    assert agent.wait_for("function_cancelled")[0].data["call_id"] == call_id
    ws.close()
