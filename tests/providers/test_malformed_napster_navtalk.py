"""navtalk's and napster's handling of what a server sends, branch by branch (xuna and
voiceapi: tests/providers/test_malformed_xuna_voiceapi.py)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, Ended, HttpResponse, Interruption, Malformed,
                                      Notice, Ready, ResponseDone, SessionFailed, ToolCall,
                                      Transcript)
from edgevoice.providers.napster import (agent_body, agent_connection_body, decode_token,
                                         session_body, ws_url)
from edgevoice.providers.navtalk import BUSY_RETRY_S, MAX_B64_CHARS
from tests.support.messages import DEBUG, INFO, WARNING, b64, msg, only

# == navtalk =================================================================================
NAVTALK = "[agent]\nprovider = navtalk\n[navtalk]\nlicense = nt lic/1\nname = navtalk.Leo\n"

def navtalk(extra: str = "", history=()):
    return make_provider(parse(NAVTALK + extra), history)

def test_navtalk_url_keeps_its_query_and_hides_the_license():
    plan = navtalk("url = wss://h.example/rt?v=2\n").connect_plan(None)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(plan.url).query)
    assert query == {"v": ["2"], "license": ["nt lic/1"], "name": ["navtalk.Leo"]}
    assert plan.url.startswith("wss://h.example/rt?")
    assert set(plan.secrets) == {"nt lic/1", "nt%20lic%2F1"}
    assert plan.stream_on_open is False and plan.first_messages == ()
    avatar = navtalk("avatar_id = av9\n").connect_plan(None)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(avatar.url).query)
    assert query["avatarId"] == ["av9"] and "name" not in query

@pytest.mark.parametrize("size, messages", [(0, 0), (3, 1), (3072, 1), (3075, 2), (6144, 2),
                                            (6147, 3)])
def test_navtalk_audio_chunks_at_the_documented_limit(size, messages):
    frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sent = navtalk().encode_audio(frame)
    assert len(sent) == messages
    parts = [json.loads(s) for s in sent]
    assert all(p["type"] == "realtime.input_audio_buffer.append" for p in parts)
    assert all(len(p["data"]["audio"]) <= MAX_B64_CHARS for p in parts)
    assert "".join(p["data"]["audio"] for p in parts) == b64(frame)

def test_navtalk_session_flow_ids_and_history():
    p = navtalk(history=["first question", "second"])
    notice = only(p.decode(msg(type="conversation.connected.success", data={"sessionId": 42})), Notice, INFO)
    assert "42" in notice.text and p.session_id == "42"
    created = p.decode(msg(type="realtime.session.created"))
    assert [json.loads(e.message)["item"]["content"][0]["text"] for e in created[:-1]] == [
        "first question", "second"]
    assert isinstance(created[-1], Notice) and created[-1].level == DEBUG and "2" in created[-1].text
    assert p.decode(msg(type="realtime.session.updated")) == [Ready("42", "session updated")]
    q = navtalk()
    q.decode(msg(type="conversation.connected.success", sessionId="top"))
    assert q.session_id == "top"
    q.decode(msg(type="conversation.connected.success"))
    assert q.session_id is None
    assert q.decode(msg(type="realtime.session.created")) == [q.decode(msg(type="realtime.session.created"))[0]]

def test_navtalk_fields_under_data_win_unless_missing():
    pcm = b"\x01\x00\x02\x00"
    assert navtalk().decode(msg(type="realtime.response.audio.delta", data={"delta": b64(pcm)},
                                delta=b64(b"\x09\x00"))) == [AgentAudio(pcm, None)]
    assert navtalk().decode(msg(type="realtime.response.audio.delta", data={"delta": None},
                                delta=b64(pcm))) == [AgentAudio(pcm, None)]
    assert navtalk().decode(msg(type="realtime.response.audio.delta", data=[1],
                                delta=b64(pcm))) == [AgentAudio(pcm, None)]
    only(navtalk().decode(msg(type="realtime.response.audio.delta")), Malformed)

@pytest.mark.parametrize("kind, role", [
    ("realtime.conversation.item.input_audio_transcription.completed", "user"),
    ("realtime.response.audio_transcript.done", "agent")])
def test_navtalk_transcripts(kind, role):
    assert navtalk().decode(msg(type=kind, data={"content": "words"})) == [Transcript(role, "words")]
    only(navtalk().decode(msg(type=kind, data={"content": 5})), Malformed)

def test_navtalk_speech_and_response_events():
    assert navtalk().decode(msg(type="realtime.input_audio_buffer.speech_started")) == [Interruption(None)]
    assert navtalk().decode(msg(type="realtime.response.audio.done")) == [ResponseDone()]
    for quiet in ("realtime.response.audio_transcript.delta",
                  "realtime.input_audio_buffer.speech_stopped", "webrtc.signaling.offer",
                  "webrtc.signaling.x"):
        assert navtalk().decode(msg(type=quiet)) == [], quiet
    only(navtalk().decode(msg(type="realtime.something.new")), Notice, DEBUG)
    only(navtalk().decode(msg(type=5)), Notice, DEBUG)
    only(navtalk().decode(msg(data={})), Notice, DEBUG)
    only(navtalk().decode("[]"), Malformed)

@pytest.mark.parametrize("what, message, retry, after", [
    ("insufficient_balance", "", "long", None),
    ("fail", "invalid license", "auth", None),
    ("fail", "AUTH error", "auth", None),
    ("fail", "backend hiccup", "soon", None),
    ("fail", "", "soon", None),
    ("close", "", "soon", None),
    ("close", "bye", "soon", None),
    ("gpu_full", "busy", "later", BUSY_RETRY_S),
    ("connection_limit_exceeded", "", "later", BUSY_RETRY_S),
    ("backend_error", "", "later", BUSY_RETRY_S)])
def test_navtalk_connection_events_that_end_the_session(what, message, retry, after):
    ended = only(navtalk().decode(msg(type=f"conversation.connected.{what}", data={"message": message})), Ended)
    assert (ended.outcome.retry, ended.outcome.retry_after) == (retry, after)
    if message:
        assert message in ended.outcome.reason
    assert ("license" in ended.outcome.reason) == (retry == "auth")

@pytest.mark.parametrize("what", ["warning", "something_new"])
def test_navtalk_other_connection_events_are_warnings(what):
    notice = only(navtalk().decode(msg(type=f"conversation.connected.{what}", message="careful")),
                  Notice, WARNING)
    assert "careful" in notice.text

def test_navtalk_busy_retry_is_thirty_seconds():
    assert BUSY_RETRY_S == 30.0 and MAX_B64_CHARS == 4096

def call_event(call_id, name="lights", key="function_name", arguments='{"on": true}'):
    data = {"call_id": call_id, key: name, "arguments": arguments}
    return msg(type="realtime.response.function_call_arguments.done", data=data)

def test_navtalk_function_calls():
    p = navtalk()
    assert p.decode(call_event(1)) == [ToolCall("1", "lights", {"on": True})]
    assert p.decode(call_event(1)) == []  # repeated: answered once
    assert p.decode(call_event("n", key="name")) == [ToolCall("n", "lights", {"on": True})]
    assert p.decode(call_event("z", arguments=None)) == [ToolCall("z", "lights", {})]
    only(p.decode(call_event(None)), Malformed)
    only(p.decode(call_event("y", name=7)), Malformed)
    out = p.tool_result(ToolCall("c", "lights", {}), "done", False)
    assert [json.loads(m)["type"] for m in out] == ["conversation.item.create", "response.create"]
    assert json.loads(out[0])["item"] == {"type": "function_call_output", "call_id": "c", "output": "done"}

@pytest.mark.parametrize("dialect", ["navtalk", "napster"])
def test_the_last_64_call_ids_are_remembered(dialect):
    if dialect == "navtalk":
        p, event = navtalk(), call_event
    else:
        p = napster()

        def event(call_id):
            return msg(event="function_implicitly_called", data={"call_id": call_id, "name": "f"})
    for i in range(65):
        assert len(p.decode(event(f"c{i}"))) == 1
    assert p.decode(event("c1")) == []  # among the last 64
    assert len(p.decode(event("c0"))) == 1  # the oldest was forgotten

# == napster =================================================================================
NAPSTER = "[agent]\nprovider = napster\n[napster]\napi_key = nk-secret-1\n"

def napster(extra: str = "companion_id = comp1\n"):
    return make_provider(parse(NAPSTER + extra))

def settings(extra: str):
    return parse(NAPSTER + extra).napster

def token(payload, alphabet=base64.b64encode) -> str:
    return alphabet(json.dumps(payload).encode()).decode()

def test_napster_minimal_bodies():
    s = settings("companion_id = comp1\n")
    assert session_body(s) == {"companionId": "comp1"}
    assert agent_connection_body(s) == {"channelType": "websocket"}
    assert agent_body(s) == {"companionId": "comp1"}

def test_napster_provider_config_only_when_something_is_in_it():
    assert session_body(settings("companion_id = c\nvoice_id = v\n"))["providerConfig"] == {
        "voiceId": "v", "settings": {}}
    assert session_body(settings('companion_id = c\nprovider_settings = {"t": 1}\n'))[
        "providerConfig"] == {"settings": {"t": 1}}

def test_napster_session_fields_and_idle_timeout():
    s = settings("companion_id = c\ntags = a, b\nexternal_client_id = dev-1\n"
                 'external_client_profile = {"room": "hall"}\ndisable_idle_timeout = yes\n'
                 "agent_name = Hall Pi\n")
    assert session_body(s)["disableIdleTimeout"] is True
    assert agent_connection_body(s) == {"channelType": "websocket", "externalClientId": "dev-1",
                                        "externalClientProfile": {"room": "hall"}, "tags": ["a", "b"]}
    body = agent_body(s)
    assert body["name"] == "Hall Pi" and body["disableIdleTimeout"] is True
    assert "externalClientId" not in body and agent_body(s, "Other")["name"] == "Other"
    assert "disableIdleTimeout" not in agent_body(settings("companion_id = c\n"))
    assert "disableIdleTimeout" not in session_body(settings("companion_id = c\n"))

def test_napster_requests():
    req = napster().bootstrap_request()
    assert (req.method, req.url) == ("POST", "https://companion-api.napster.com/public/ws-connections")
    assert req.headers == {"X-Api-Key": "nk-secret-1", "Content-Type": "application/json"}
    assert req.json == {"companionId": "comp1"} and req.what == "session connection request"
    agent = napster("agent_id = ag/1\napi_url = https://n.example/\n").bootstrap_request()
    assert agent.url == "https://n.example/public/agents/ag%2F1/connections"
    assert agent.json == {"channelType": "websocket"} and agent.what == "Omniagent connection request"
    from edgevoice.providers.napster import NapsterProvider
    keyless = NapsterProvider(parse("[xuna]\nagent_id = a\n").napster)
    assert keyless.bootstrap_request().headers["X-Api-Key"] == ""

@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_napster_tokens_in_either_alphabet_with_or_without_padding(encode):
    payload = {"url": "wss://h/x?>>>", "authToken": "??>>"}
    text = token(payload, encode)
    assert decode_token(text) == payload
    assert decode_token(text.rstrip("=")) == payload

@pytest.mark.parametrize("text", ["!!!", token([1, 2]), base64.b64encode(b"\xff\xfe").decode(),
                                  base64.b64encode(b"not json").decode()])
def test_napster_tokens_that_are_not_base64_json_objects(text):
    with pytest.raises(SessionFailed):
        decode_token(text)

@pytest.mark.parametrize("url, expected", [("https://h/x", "wss://h/x"), ("http://h/x", "ws://h/x"),
                                           ("wss://h/x", "wss://h/x"), ("ws://h", "ws://h")])
def test_napster_ws_urls(url, expected):
    assert ws_url(url) == expected

@pytest.mark.parametrize("extra, response, retry, after", [
    ("companion_id = c\n", None, "soon", None),
    ("companion_id = c\n", HttpResponse(409, None), "later", 30.0),
    ("agent_id = a\n", HttpResponse(404, None), "soon", None),
    ("companion_id = c\n", HttpResponse(404, None), "soon", None),
    ("companion_id = c\n", HttpResponse(401, None), "auth", None),
    ("companion_id = c\n", HttpResponse(429, None, {"Retry-After": "3"}), "later", 3.0),
    ("companion_id = c\n", HttpResponse(204, None), "soon", None)])
def test_napster_connection_failures(extra, response, retry, after):
    with pytest.raises(SessionFailed) as info:
        napster(extra).connect_plan(response)
    assert (info.value.outcome.retry, info.value.outcome.retry_after) == (retry, after)
    if "agent_id" in extra:
        assert "'a'" in info.value.outcome.reason

@pytest.mark.parametrize("body", [None, {}, {"token": ""}, {"token": 5},
                                  {"token": token({"authToken": "a"})},
                                  {"token": token({"url": "ftp://h", "authToken": "a"})},
                                  {"token": token({"url": 5, "authToken": "a"})},
                                  {"token": token({"url": "wss://h"})},
                                  {"token": token({"url": "wss://h", "authToken": "", "token": ""})},
                                  {"token": token({"url": "wss://h", "authToken": 5, "token": 6})}])
def test_napster_unusable_tokens(body):
    with pytest.raises(SessionFailed) as info:
        napster().connect_plan(HttpResponse(200, body))
    assert info.value.outcome.retry == "soon"

def test_napster_plans():
    tok = token({"url": "https://h.example/ws", "authToken": "AUTH-1"})
    plan = napster().connect_plan(HttpResponse(201, {"token": tok, "connection": {"id": 12}}))
    assert plan.url == "wss://h.example/ws" and plan.headers == {"Authorization": "Bearer AUTH-1"}
    assert set(plan.secrets) == {tok, "AUTH-1"} and plan.session_id == "12"
    assert plan.stream_on_open is True and "12" in plan.note and "Omniagent" not in plan.note
    tok = token({"url": "wss://h.example/ws?x=1", "token": "U T"})
    plan = napster("agent_id = ag7\n").connect_plan(HttpResponse(200, {"token": tok}))
    assert plan.url == "wss://h.example/ws?x=1&token=U%20T" and plan.headers == {}
    assert set(plan.secrets) == {tok, "U T"} and plan.session_id is None and "ag7" in plan.note
    tok = token({"url": "ws://h.example/ws", "token": "UT"})
    assert napster().connect_plan(HttpResponse(200, {"token": tok})).url == "ws://h.example/ws?token=UT"
    tok = token({"url": "ws://h.example/ws?token=given", "token": "UT"})
    assert napster().connect_plan(HttpResponse(200, {"token": tok})).url == "ws://h.example/ws?token=given"

def test_napster_audio_keys():
    (sent,) = napster("companion_id = c\nsend_audio_key = audio\n").encode_audio(b"\x01\x02")
    assert json.loads(sent) == {"type": "send_audio", "data": {"audio": b64(b"\x01\x02")}}
    pcm = b"\x05\x00"
    for data in ({"data": b64(pcm)}, {"audio": b64(pcm)}, {"data": 5, "audio": b64(pcm)}):
        assert napster().decode(msg(event="audio_received", data=data)) == [AgentAudio(pcm, None)]
    assert napster().decode(msg(type="audio_received", data={"data": b64(pcm)})) == [AgentAudio(pcm, None)]
    only(napster().decode(msg(event="audio_received", data="x")), Malformed)

@pytest.mark.parametrize("data, expected", [
    ({"message": {"role": "user", "action": "completed", "content": "hi"}}, [Transcript("user", "hi")]),
    ({"role": "assistant", "action": "completed", "content": "yo"}, [Transcript("agent", "yo")]),
    ({"role": "user", "action": "completed", "content": 5}, []),
    ({"role": "assistant", "action": "created", "content": "x"}, []),
    ({"type": "session", "action": "cancelled"}, []),
    ({"action": "cancelled", "response_id": "8"}, [Interruption(8)]),
    ({"action": "x", "reason": "turn_detected", "response_id": "r"}, [Interruption("r")]),
    ({"action": "cancelled"}, [Interruption(None)]),
    ({"message": "text"}, []),
    (None, "malformed"),
    ("flat text", "malformed"),
    ({"action": "failed", "reason": "overload"}, "warning"),
])
def test_napster_message_received(data, expected):
    events = napster().decode(msg(event="message_received", data=data))
    if expected == "malformed":
        only(events, Malformed)
    elif expected == "warning":
        assert "overload" in only(events, Notice, WARNING).text
    else:
        assert events == expected

def test_napster_state_and_speech_events():
    p = napster()
    p.connect_plan(HttpResponse(200, {"token": token({"url": "wss://h", "authToken": "A"}),
                                      "connection": {"id": "cx"}}))
    assert p.decode(msg(event="speech_started")) == [Interruption(None)]
    assert p.decode(msg(event="talk_state_changed", data={"state": "ended"})) == [ResponseDone()]
    only(p.decode(msg(event="talk_state_changed", data={"state": "talking"})), Notice, DEBUG)
    assert p.decode(msg(event="avatar_state_changed", data={"state": "ready"})) == [Ready("cx", "agent ready")]
    only(p.decode(msg(event="avatar_state_changed", data={"state": "idle"})), Notice, DEBUG)
    only(p.decode(msg(event="avatar_state_changed")), Notice, DEBUG)
    assert "c9" in only(p.decode(msg(event="function_call_timeout", data={"call_id": "c9"})), Notice, WARNING).text
    assert "fname" in only(p.decode(msg(event="function_call_timeout", data={"name": "fname"})), Notice, WARNING).text
    only(p.decode(msg(event="brand_new")), Notice, DEBUG)
    only(p.decode(msg(other=1)), Notice, DEBUG)

@pytest.mark.parametrize("message, text", [
    (msg(event="error", data={"message": "inner"}), "inner"),
    (msg(event="error", message="outer"), "outer"),
    (msg(event="error", data="plain"), "plain"),
])
def test_napster_errors_are_warnings(message, text):
    assert text in only(napster().decode(message), Notice, WARNING).text

def test_napster_function_calls_nested_or_flat():
    p = napster()
    assert p.decode(msg(event="function_implicitly_called",
                        data={"call_id": 3, "name": "f", "arguments": '{"a": 2}'})) == [
        ToolCall("3", "f", {"a": 2})]
    assert p.decode(msg(event="function_implicitly_called", call_id="t", name="g")) == [
        ToolCall("t", "g", {})]
    assert p.decode(msg(event="function_implicitly_called", call_id="t", name="g")) == []
    only(p.decode(msg(event="function_implicitly_called", data={"name": "f"})), Malformed)
    only(p.decode(msg(event="function_implicitly_called", data={"call_id": 1, "name": 2})), Malformed)
    (out,) = p.tool_result(ToolCall("3", "f", {}), "ok", False)
    assert json.loads(out) == {"type": "send_function_output", "data": {"call_id": "3", "output": "ok"}}

def test_napster_omniagent_body_request_and_token_quoting():
    s = settings("companion_id = c\ntags = a, b\n")
    assert agent_body(s)["tags"] == ["a", "b"]
    req = napster("agent_id = ag1\n").bootstrap_request()
    assert req.method == "POST"
    assert req.headers == {"X-Api-Key": "nk-secret-1", "Content-Type": "application/json"}
    tok = token({"url": "wss://h.example/ws", "token": "a/b+c"})
    plan = napster().connect_plan(HttpResponse(200, {"token": tok}))
    assert plan.url == "wss://h.example/ws?token=a%2Fb%2Bc" and plan.first_messages == ()
