"""Every branch of napster's handling of what a server sends: the forms it accepts, what is
ignored, what is malformed, what ends a session and how long to wait; and the opening
step's failures. Events are compared whole; log texts only for what they name."""

from __future__ import annotations

import base64
import json

import pytest

from edgevoice.config import parse
from edgevoice.providers.base import (AgentAudio, HttpResponse, Interruption, Malformed,
                                      Notice, Ready, ResponseDone, SessionFailed, ToolCall,
                                      Transcript)
from edgevoice.providers.napster import (agent_body, agent_connection_body, decode_token,
                                         session_body, ws_url)
from tests.support.messages import DEBUG, WARNING, b64, msg, only
from tests.support.messages import napster, napster_settings, token


def test_napster_minimal_bodies():
    s = napster_settings("companion_id = comp1\n")
    assert session_body(s) == {"companionId": "comp1"}
    assert agent_connection_body(s) == {"channelType": "websocket"}
    assert agent_body(s) == {"companionId": "comp1"}


def test_napster_provider_config_only_when_something_is_in_it():
    assert session_body(napster_settings("companion_id = c\nvoice_id = v\n"))["providerConfig"] == {
        "voiceId": "v", "settings": {}}
    assert session_body(napster_settings('companion_id = c\nprovider_settings = {"t": 1}\n'))[
        "providerConfig"] == {"settings": {"t": 1}}


def test_napster_session_fields_and_idle_timeout():
    s = napster_settings("companion_id = c\ntags = a, b\nexternal_client_id = dev-1\n"
                 'external_client_profile = {"room": "hall"}\ndisable_idle_timeout = yes\n'
                 "agent_name = Hall Pi\n")
    assert session_body(s)["disableIdleTimeout"] is True
    assert agent_connection_body(s) == {"channelType": "websocket", "externalClientId": "dev-1",
                                        "externalClientProfile": {"room": "hall"}, "tags": ["a", "b"]}
    body = agent_body(s)
    assert body["name"] == "Hall Pi" and body["disableIdleTimeout"] is True
    assert "externalClientId" not in body and agent_body(s, "Other")["name"] == "Other"
    assert "disableIdleTimeout" not in agent_body(napster_settings("companion_id = c\n"))
    assert "disableIdleTimeout" not in session_body(napster_settings("companion_id = c\n"))


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
    s = napster_settings("companion_id = c\ntags = a, b\n")
    assert agent_body(s)["tags"] == ["a", "b"]
    req = napster("agent_id = ag1\n").bootstrap_request()
    assert req.method == "POST"
    assert req.headers == {"X-Api-Key": "nk-secret-1", "Content-Type": "application/json"}
    tok = token({"url": "wss://h.example/ws", "token": "a/b+c"})
    plan = napster().connect_plan(HttpResponse(200, {"token": tok}))
    assert plan.url == "wss://h.example/ws?token=a%2Fb%2Bc" and plan.first_messages == ()
