"""The helpers every dialect shares: HTTP failures to outcomes, ids, arguments, base64 audio,
JSON objects, and the base class's defaults."""

from __future__ import annotations

import base64
import logging

import pytest

from edgevoice.providers.base import (AgentAudio, HttpResponse, Malformed, Outcome, Provider,
                                      SessionFailed, ToolCall, clean_id, dig, http_failure,
                                      parse_arguments, parse_json_object, pcm_from_base64)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_waits_long(status):
    failed = http_failure(HttpResponse(status, None), "token request", "check the key")
    assert isinstance(failed, SessionFailed)
    assert failed.outcome.retry == "auth" and failed.outcome.retry_after is None
    assert str(status) in failed.outcome.reason and "check the key" in failed.outcome.reason
    assert "token request" in failed.outcome.reason and str(failed) == failed.outcome.reason


@pytest.mark.parametrize("status", [0, 400, 404, 500, 503])
def test_other_failures_retry_soon(status):
    failed = http_failure(HttpResponse(status, {"x": 1}), "token request", "check the key")
    assert failed.outcome.retry == "soon" and failed.outcome.retry_after is None
    assert str(status) in failed.outcome.reason and "check the key" not in failed.outcome.reason


@pytest.mark.parametrize("headers, after", [
    ({"Retry-After": "7"}, 7.0), ({"retry-after": "2.5"}, 2.5), ({"RETRY-AFTER": "0"}, 0.0),
    ({"Retry-After": "-3"}, 0.0), ({"Retry-After": "soon"}, None), ({}, None),
    ({"Content-Type": "x", "Retry-After": "12"}, 12.0),
    ({"X-Retry-After-Not": "5"}, None)])
def test_rate_limits_wait_as_long_as_the_server_says(headers, after):
    failed = http_failure(HttpResponse(429, None, headers), "signed URL", "hint")
    assert failed.outcome.retry == "later" and failed.outcome.retry_after == after
    assert "429" in failed.outcome.reason


def test_outcome_defaults_and_session_failed_carries_it():
    outcome = Outcome("why")
    assert (outcome.reason, outcome.retry, outcome.retry_after) == ("why", "soon", None)
    failed = SessionFailed(Outcome("denied", "auth"))
    assert failed.outcome.retry == "auth" and str(failed) == "denied"


def test_the_base_provider_defaults():
    p = Provider()
    assert p.interrupts is True and p.mic_rate == 16000 and p.output_rate == 16000
    assert p.bootstrap_request() is None and p.user_activity() is None
    assert tuple(p.tool_result(ToolCall("c", "n", {}), "out", False)) == ()
    for call in (lambda: p.connect_plan(None), lambda: p.encode_audio(b""), lambda: p.decode("{}")):
        with pytest.raises(NotImplementedError):
            call()


def test_the_base_close_and_handshake_outcomes():
    p = Provider()
    plain = p.close_outcome(1006, "")
    assert plain.retry == "soon" and "1006" in plain.reason and ", " not in plain.reason
    with_reason = p.close_outcome(4000, "bye now")
    assert "4000" in with_reason.reason and "bye now" in with_reason.reason
    assert "None" in p.close_outcome(None, "").reason
    for status in (401, 403):
        refused = p.auth_outcome(status)
        assert refused.retry == "auth" and str(status) in refused.reason
    for status in (400, 404, 500):
        refused = p.auth_outcome(status)
        assert refused.retry == "soon" and str(status) in refused.reason


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_base64_audio():
    assert pcm_from_base64(b64(b"\x01\x00\x02\x00"), "audio", 9) == [AgentAudio(b"\x01\x00\x02\x00", 9)]
    assert pcm_from_base64(b64(b"\x01\x00"), "audio") == [AgentAudio(b"\x01\x00", None)]
    assert pcm_from_base64("", "audio", 1) == [AgentAudio(b"", 1)]
    odd = pcm_from_base64(b64(b"\x01\x02\x03"), "audio", "r")
    assert isinstance(odd[0], Malformed) and "3" in odd[0].reason
    assert odd[1:] == [AgentAudio(b"\x01\x02", "r")]
    assert pcm_from_base64(b64(b"\x07"), "audio")[1:] == [AgentAudio(b"", None)]


@pytest.mark.parametrize("payload", [None, 42, ["AAA="], {"a": 1}, b"AAAA", "!!!", "AAA", "AA=A",
                                     "AAAA AAAA", "A" * 5])
def test_base64_audio_that_is_missing_or_invalid_is_malformed(payload):
    [event] = pcm_from_base64(payload, "the audio event")
    assert isinstance(event, Malformed) and "the audio event" in event.reason


@pytest.mark.parametrize("value, expected", [
    (7, 7), (0, 0), (-3, -3), ("7", 7), ("0012", 12), ("9" * 18, int("9" * 18)),
    ("9" * 19, "9" * 19), ("-5", "-5"), ("e-9", "e-9"), ("x" * 200, "x" * 128), ("", ""),
    (True, None), (False, None), (1.0, None), (None, None), ([1], None), ({"id": 1}, None)])
def test_ids_are_ints_or_short_strings(value, expected):
    got = clean_id(value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("raw, expected", [
    ({"a": 1}, {"a": 1}), ('{"a": 1}', {"a": 1}), ("[1, 2]", "[1, 2]"), ("not json", "not json"),
    ("", ""), (None, {}), ([1, 2], [1, 2]), (5, 5), ('"text"', '"text"')])
def test_function_arguments(raw, expected):
    assert parse_arguments(raw) == expected


def test_json_objects_and_what_is_wrong_with_the_rest():
    assert parse_json_object('{"type": "x"}') == {"type": "x"}
    for message in (b"\x00\x01\x02", bytearray(b"{}")):
        found = parse_json_object(message)
        assert isinstance(found, Malformed) and str(len(message)) in found.reason
    found = parse_json_object("not json " + "x" * 500)
    assert isinstance(found, Malformed) and len(found.reason) < 120
    for message, kind in (("[1]", "list"), ('"s"', "str"), ("3", "int"), ("null", "NoneType")):
        found = parse_json_object(message)
        assert isinstance(found, Malformed) and kind in found.reason


def test_dig():
    obj = {"a": {"b": {"c": 3}}, "l": [1]}
    assert dig(obj, "a", "b", "c") == 3
    assert dig(obj, "a", "x") is None and dig(obj, "l", "x") is None
    assert dig(obj, "a", "b", "c", "d") is None
    assert dig(None, "a") is None and dig(obj) is obj


def test_notices_default_to_info():
    from edgevoice.providers.base import Notice, Transcript
    assert Notice("x").level == logging.INFO
    assert Transcript("user", "t").final is True
