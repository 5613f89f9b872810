"""Every branch of voiceapi's handling of what a server sends: the forms it accepts, what is
ignored, what is malformed, what ends a session and how long to wait; and the opening
step's failures. Events are compared whole; log texts only for what they name."""

from __future__ import annotations

import json

import pytest

from edgevoice.config import parse
from edgevoice.providers.base import (AgentAudio, Ended, HttpResponse, Malformed,
                                      Notice, Ready, SessionFailed)
from tests.support.messages import DEBUG, INFO, WARNING, msg, only
from tests.support.messages import voiceapi


def test_voiceapi_token_request():
    req = voiceapi().bootstrap_request()
    assert (req.method, req.url) == ("POST", "https://v.example/root/api/v1/sdk/token")
    assert req.headers == {"Authorization": "Bearer vk-secret-1", "Content-Type": "application/json"}
    assert req.what == "session token request"


@pytest.mark.parametrize("response, retry", [
    (None, "soon"), (HttpResponse(403, None), "auth"), (HttpResponse(401, None), "auth"),
    (HttpResponse(500, None), "soon"), (HttpResponse(201, {"token": "t", "ws_url": "wss://h"}), "soon"),
    (HttpResponse(429, None, {"Retry-After": "4"}), "later")])
def test_voiceapi_token_failures(response, retry):
    with pytest.raises(SessionFailed) as info:
        voiceapi().connect_plan(response)
    assert info.value.outcome.retry == retry
    if response is not None and response.status == 429:
        assert info.value.outcome.retry_after == 4.0
    if response is not None and response.status == 403:
        assert "disabled" in info.value.outcome.reason


@pytest.mark.parametrize("body", [{"token": "", "ws_url": "wss://h"}, {"token": "t", "ws_url": 5},
                                  {"token": "t", "ws_url": "wss-ish://h"}, "token"])
def test_voiceapi_unusable_token_answers(body):
    with pytest.raises(SessionFailed) as info:
        voiceapi().connect_plan(HttpResponse(200, body))
    assert info.value.outcome.retry == "soon"


def test_voiceapi_plan_sends_the_token_first_and_waits_for_connected():
    plan = voiceapi().connect_plan(HttpResponse(200, {"token": "T-1234", "ws_url": "ws://127.0.0.1:5/ws"}))
    assert plan.url == "ws://127.0.0.1:5/ws" and plan.first_messages == ('{"token": "T-1234"}',)
    assert plan.stream_on_open is False and plan.secrets == ("T-1234",)


def test_voiceapi_binary_and_control_messages():
    p = voiceapi()
    assert p.interrupts is False
    assert p.decode(bytearray(b"\x01\x00")) == [AgentAudio(b"\x01\x00")]
    assert type(p.decode(bytearray(b"\x01\x00"))[0].pcm) is bytes
    odd = p.decode(bytearray(b"\x01\x00\x02"))
    assert isinstance(odd[0], Malformed) and odd[1] == AgentAudio(b"\x01\x00")
    assert p.decode(b"") == [AgentAudio(b"")]
    assert p.decode(msg(type="connected")) == [Ready(None, "connected")]
    only(p.decode(msg(type="agent_ready")), Notice, INFO)
    only(p.decode(msg(type="mystery")), Notice, DEBUG)
    only(p.decode(msg(kind="no type")), Notice, DEBUG)


@pytest.mark.parametrize("reason", ["agent_disconnected", "session_closed", "room_closed",
                                    "server_shutdown", "novel", 5, None])
def test_voiceapi_session_end_reasons(reason):
    ended = only(voiceapi().decode(json.dumps({"type": "session_ended", "reason": reason})), Ended)
    assert ended.outcome.retry == "soon" and ended.outcome.reason


def test_voiceapi_known_session_end_reasons_are_told_apart():
    reasons = {only(voiceapi().decode(msg(type="session_ended", reason=r)), Ended).outcome.reason
               for r in ("agent_disconnected", "session_closed", "room_closed", "server_shutdown")}
    assert len(reasons) == 4


@pytest.mark.parametrize("code, retry, after", [
    ("AUTH_TIMEOUT", "soon", None), ("INVALID_AUTH", "auth", None), ("AUTH_FAILED", "auth", None),
    ("SESSION_SETUP_FAILED", "later", 2.0)])
def test_voiceapi_error_codes_that_end_the_session(code, retry, after):
    events = voiceapi().decode(msg(type="error", code=code, message="detail here"))
    assert len(events) == 2 and events[0].level == WARNING and "detail here" in events[0].text
    assert isinstance(events[1], Ended)
    assert (events[1].outcome.retry, events[1].outcome.retry_after) == (retry, after)


@pytest.mark.parametrize("code", ["OTHER", 4003, None, ["AUTH_FAILED"]])
def test_voiceapi_other_errors_are_warnings_only(code):
    notice = only(voiceapi().decode(json.dumps({"type": "error", "code": code})), Notice, WARNING)
    assert str(code)[:10] in notice.text


@pytest.mark.parametrize("code, retry, after", [
    (4001, "soon", None), (4002, "soon", None), (4003, "auth", None), (4500, "later", 2.0),
    (1000, "soon", None), (1001, "soon", None), (None, "soon", None)])
def test_voiceapi_close_codes(code, retry, after):
    outcome = voiceapi().close_outcome(code, "why")
    assert (outcome.retry, outcome.retry_after) == (retry, after)
    assert (str(code) in outcome.reason) or code == 1000


def test_voiceapi_without_a_key_sends_an_empty_bearer():
    from edgevoice.providers.voiceapi import VoiceApiProvider
    p = VoiceApiProvider(parse("[xuna]\nagent_id = a\n[voiceapi]\napi_url = https://v.example\n").voiceapi)
    assert p.bootstrap_request().headers["Authorization"].strip() == "Bearer"


def test_voiceapi_plan_has_no_extra_headers_and_only_slashes_leave_the_api_url():
    plan = voiceapi().connect_plan(HttpResponse(200, {"token": "T-1", "ws_url": "wss://h/ws"}))
    assert plan.headers == {}
    from edgevoice.providers.voiceapi import VoiceApiProvider
    s = parse("[xuna]\nagent_id = a\n[voiceapi]\napi_url = https://v.example/rootX\n").voiceapi
    assert VoiceApiProvider(s).bootstrap_request().url == "https://v.example/rootX/api/v1/sdk/token"


def test_voiceapi_a_session_end_reason_that_is_not_text():
    ended = only(voiceapi().decode(msg(type="session_ended", reason=[1, 2])), Ended)
    assert ended.outcome.retry == "soon"
