"""The xuna dialect from recorded messages (seed 003 and the ElevenLabs forms)."""

from __future__ import annotations

import base64
import json

import pytest

from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, HttpResponse, Interruption, Malformed, Notice,
                                      OutputFormat, Ready, Reply, SessionFailed, ToolCall,
                                      Transcript)
from edgevoice.providers.xuna import parse_audio_format


def provider(extra: str = ""):
    return make_provider(parse(f"[xuna]\nagent_id = agent_42\n{extra}"))


def test_public_agent_connects_with_agent_id_and_sends_initiation_first():
    p = provider()
    assert p.bootstrap_request() is None
    plan = p.connect_plan(None)
    assert plan.url == "wss://api.xuna.ai/v1/convai/conversation?agent_id=agent_42"
    assert json.loads(plan.first_messages[0]) == {"type": "conversation_initiation_client_data"}
    assert plan.stream_on_open


def test_overrides_in_the_seed_structure():
    p = provider("prompt = You are a museum guide.\nfirst_message = Hi!\nlanguage = de\n"
                 "voice_id = v1\n")
    msg = json.loads(p.connect_plan(None).first_messages[0])
    assert msg["conversation_config_override"] == {
        "agent": {"prompt": {"prompt": "You are a museum guide."}, "first_message": "Hi!",
                  "language": "de"},
        "tts": {"voice_id": "v1"}}


def test_private_agent_fetches_a_signed_url_and_uses_it_unchanged():
    p = provider("api_key = xk_secret\n")
    req = p.bootstrap_request()
    assert req.method == "GET"
    assert req.url == ("https://api.xuna.ai/v1/convai/conversation/get-signed-url"
                       "?agent_id=agent_42")
    assert req.headers == {"xi-api-key": "xk_secret"}
    signed = "wss://api.xuna.ai/v1/convai/conversation?token=SIGNED_TOKEN"
    plan = p.connect_plan(HttpResponse(200, {"signed_url": signed}))
    assert plan.url == signed
    assert "SIGNED_TOKEN" in plan.secrets  # scrubbed from logs


@pytest.mark.parametrize("status,retry", [(401, "auth"), (403, "auth"), (500, "soon"),
                                          (429, "later")])
def test_signed_url_failures(status, retry):
    p = provider("api_key = xk_secret\n")
    with pytest.raises(SessionFailed) as info:
        p.connect_plan(HttpResponse(status, {"detail": "no"}, {"Retry-After": "7"}))
    assert info.value.outcome.retry == retry
    assert "xk_secret" not in info.value.outcome.reason


def test_audio_is_sent_in_the_seed_form_or_the_elevenlabs_form():
    frame = bytes(range(256)) * 2 + bytes(128)
    (msg,) = provider().encode_audio(frame)
    parsed = json.loads(msg)
    assert parsed == {"type": "audio",
                      "audio_event": {"audio_base_64": base64.b64encode(frame).decode()}}
    (msg,) = provider("audio_form = user_audio_chunk\n").encode_audio(frame)
    assert json.loads(msg) == {"user_audio_chunk": base64.b64encode(frame).decode()}


def test_metadata_announces_rate_and_conversation():
    p = provider()
    events = p.decode(json.dumps({
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {"conversation_id": "conv_abc123",
                                                   "agent_output_audio_format": "pcm_24000"}}))
    assert OutputFormat(24000) in events
    assert Ready("conv_abc123", "output 24000 Hz") in events
    assert p.output_rate == 24000


@pytest.mark.parametrize("fmt,rate", [("pcm_16000", 16000), ("pcm_22050", 22050),
                                      ("pcm_44100", 44100), ("pcm_48000", 48000),
                                      ("ulaw_8000", None), ("pcm_x", None), (None, None)])
def test_parse_audio_format(fmt, rate):
    assert parse_audio_format(fmt) == rate


def test_non_pcm_output_format_is_an_error_line_not_a_crash():
    p = provider()
    events = p.decode(json.dumps({"type": "conversation_initiation_metadata",
                                  "conversation_initiation_metadata_event": {
                                      "conversation_id": "c", "agent_output_audio_format":
                                      "ulaw_8000"}}))
    assert any(isinstance(e, Notice) and "pcm_16000" in e.text for e in events)
    assert p.output_rate == 16000


def test_agent_audio_with_event_id():
    pcm = b"\x01\x00\x02\x00"
    events = provider().decode(json.dumps({"type": "audio", "audio_event": {
        "audio_base_64": base64.b64encode(pcm).decode(), "event_id": 1}}))
    assert events == [AgentAudio(pcm, 1)]
    events = provider().decode(json.dumps({"type": "audio", "audio_event": {
        "audio_base_64": base64.b64encode(pcm).decode(), "event_id": "12"}}))
    assert events == [AgentAudio(pcm, 12)]


def test_ping_answered_with_the_same_event_id_in_both_forms():
    (reply,) = provider().decode('{"type":"ping","ping_event":{"event_id":123,"ping_ms":50}}')
    assert isinstance(reply, Reply)
    assert json.loads(reply.message) == {"type": "pong", "event_id": 123}
    (reply,) = provider().decode('{"type":"ping","event_id":"e-9"}')
    assert json.loads(reply.message) == {"type": "pong", "event_id": "e-9"}


def test_interruption_with_and_without_event_id():
    assert provider().decode('{"type":"interruption"}') == [Interruption(None)]
    assert provider().decode(
        '{"type":"interruption","interruption_event":{"event_id":4}}') == [Interruption(4)]


def test_transcripts():
    p = provider()
    assert p.decode(json.dumps({"type": "agent_response", "agent_response_event": {
        "agent_response": "Hello! How can I help you today?"}})) == [
        Transcript("agent", "Hello! How can I help you today?")]
    assert p.decode(json.dumps({"type": "user_transcript", "user_transcription_event": {
        "user_transcript": "What are your opening hours?"}})) == [
        Transcript("user", "What are your opening hours?")]


def test_client_tool_call_and_its_result():
    p = provider()
    (call,) = p.decode(json.dumps({"type": "client_tool_call", "client_tool_call": {
        "tool_name": "open_door", "tool_call_id": "t1", "parameters": {"door": "front"}}}))
    assert call == ToolCall("t1", "open_door", {"door": "front"})
    (msg,) = p.tool_result(call, "opened", False)
    assert json.loads(msg) == {"type": "client_tool_result", "tool_call_id": "t1",
                               "result": "opened", "is_error": False}


@pytest.mark.parametrize("message", [
    "not json at all",
    "[1, 2, 3]",
    b"\x00\x01binary",
    '{"type":"audio","audio_event":{"audio_base_64":"!!!not base64!!!"}}',
    '{"type":"audio"}',
    '{"type":"audio","audio_event":{"audio_base_64":42}}',
    '{"type":"ping"}',
    '{"type":"agent_response"}',
    '{"type":"user_transcript","user_transcription_event":"oops"}',
    '{"type":"client_tool_call","client_tool_call":{}}',
])
def test_malformed_messages_are_reported_not_raised(message):
    events = provider().decode(message)
    assert events and all(isinstance(e, Malformed) for e in events), events


def test_odd_length_audio_is_trimmed_and_reported():
    events = provider().decode(json.dumps({"type": "audio", "audio_event": {
        "audio_base_64": base64.b64encode(b"\x01\x02\x03").decode(), "event_id": 2}}))
    assert isinstance(events[0], Malformed)
    assert events[1] == AgentAudio(b"\x01\x02", 2)


@pytest.mark.parametrize("message", ['{"type":"vad_score","vad_score_event":{"vad_score":0.9}}',
                                     '{"type":"something_new","x":1}', '{"no_type":true}',
                                     '{"type":null}'])
def test_unknown_types_are_ignored_quietly(message):
    events = provider().decode(message)
    assert all(isinstance(e, Notice) and e.level <= 10 for e in events), events
