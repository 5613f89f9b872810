"""The voiceapi dialect from recorded messages (seed 002)."""

from __future__ import annotations

import json

import pytest

from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, Ended, HttpResponse, Malformed, Notice, Ready,
                                      SessionFailed)


def provider():
    return make_provider(parse("[agent]\nprovider = voiceapi\n[voiceapi]\n"
                               "api_url = https://voice.example/\napi_key = vk_live_secret\n"))


def test_token_request_is_the_seed_form():
    req = provider().bootstrap_request()
    assert (req.method, req.url) == ("POST", "https://voice.example/api/v1/sdk/token")
    assert req.headers == {"Authorization": "Bearer vk_live_secret",
                           "Content-Type": "application/json"}


def test_token_is_the_first_message_and_audio_waits_for_connected():
    p = provider()
    plan = p.connect_plan(HttpResponse(200, {"token": "tok123", "ws_url": "wss://v.example/ws"}))
    assert plan.url == "wss://v.example/ws"
    assert [json.loads(m) for m in plan.first_messages] == [{"token": "tok123"}]
    assert not plan.stream_on_open
    assert "tok123" in plan.secrets
    assert p.decode('{"type":"connected"}') == [Ready(None, "connected")]


@pytest.mark.parametrize("status,retry,words", [(401, "auth", "api_key is wrong"),
                                                (403, "auth", "device is disabled"),
                                                (503, "soon", "HTTP 503"),
                                                (429, "later", "rate limited")])
def test_token_failures(status, retry, words):
    with pytest.raises(SessionFailed) as info:
        provider().connect_plan(HttpResponse(status, None))
    assert info.value.outcome.retry == retry
    assert words in info.value.outcome.reason


@pytest.mark.parametrize("body", [{}, {"token": "t"}, {"token": "t", "ws_url": "http://x"},
                                  None, {"token": 5, "ws_url": "wss://x"}])
def test_unusable_token_responses(body):
    with pytest.raises(SessionFailed):
        provider().connect_plan(HttpResponse(200, body))


def test_audio_is_binary_both_ways():
    frame = bytes(640)
    assert provider().encode_audio(frame) == (frame,)
    assert provider().decode(b"\x01\x00" * 320) == [AgentAudio(b"\x01\x00" * 320)]


def test_odd_length_binary_is_trimmed():
    events = provider().decode(b"\x01\x00\x02")
    assert isinstance(events[0], Malformed) and events[1] == AgentAudio(b"\x01\x00")


@pytest.mark.parametrize("reason", ["agent_disconnected", "session_closed", "room_closed",
                                    "server_shutdown", "never_heard_of_it"])
def test_session_ended_reasons_end_the_session_and_reconnect(reason):
    (event,) = provider().decode(json.dumps({"type": "session_ended", "reason": reason}))
    assert isinstance(event, Ended) and event.outcome.retry == "soon"


@pytest.mark.parametrize("code,retry", [("AUTH_FAILED", "auth"), ("INVALID_AUTH", "auth"),
                                        ("AUTH_TIMEOUT", "soon"),
                                        ("SESSION_SETUP_FAILED", "later")])
def test_error_codes(code, retry):
    events = provider().decode(json.dumps({"type": "error", "code": code, "message": "m"}))
    assert isinstance(events[0], Notice)
    assert events[-1].outcome.retry == retry


def test_unknown_error_code_is_logged_but_not_fatal():
    events = provider().decode('{"type":"error","code":"WHO_KNOWS","message":"hm"}')
    assert len(events) == 1 and isinstance(events[0], Notice)


@pytest.mark.parametrize("code,retry", [(4001, "soon"), (4002, "soon"), (4003, "auth"),
                                        (4500, "later"), (1000, "soon"), (1006, "soon"),
                                        (None, "soon")])
def test_close_codes(code, retry):
    assert provider().close_outcome(code, "").retry == retry


@pytest.mark.parametrize("message", ["garbage", "[]", '"str"'])
def test_malformed_text(message):
    (event,) = provider().decode(message)
    assert isinstance(event, Malformed)


def test_agent_ready_and_unknown_types():
    assert isinstance(provider().decode('{"type":"agent_ready"}')[0], Notice)
    (event,) = provider().decode('{"type":"mystery"}')
    assert isinstance(event, Notice) and event.level == 10
