"""The elevenlabs dialect from recorded messages (docs/protocols/elevenlabs.md): what it
sends to open a session, the mic and tool messages, and what it makes of every server
message it reads, in the current and the older namings; its section's rules."""

from __future__ import annotations

import json
import logging

import pytest

from edgevoice import redact
from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, HttpResponse, Interruption, Malformed, Notice,
                                      OutputFormat, Ready, Reply, SessionFailed, ToolCall,
                                      Transcript)
from tests.support.config import check_config, problems
from tests.support.messages import b64, msg

KEY = "sk_el_device_key_0123456789"
SIGNED = ("wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_7"
          "&conversation_signature=sig_ABCDEFGH12345")


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def provider(extra: str = ""):
    return make_provider(parse(f"[agent]\nprovider = elevenlabs\n[elevenlabs]\n"
                               f"agent_id = agent_7\n{extra}"))


# -- opening -----------------------------------------------------------------------------------
def test_a_public_agent_opens_by_id_and_sends_the_initiation_first():
    p = provider()
    assert p.bootstrap_request() is None
    plan = p.connect_plan(None)
    assert plan.url == "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_7"
    assert plan.headers == {} and plan.secrets == () and plan.stream_on_open
    assert [json.loads(m) for m in plan.first_messages] == [
        {"type": "conversation_initiation_client_data"}]


def test_a_private_agent_gets_a_signed_url_with_the_key_and_uses_it_unchanged():
    p = provider(f"api_key = {KEY}\napi_url = https://api.eu.residency.elevenlabs.io\n")
    req = p.bootstrap_request()
    assert (req.method, req.url) == ("GET", "https://api.eu.residency.elevenlabs.io/v1/convai/"
                                            "conversation/get-signed-url?agent_id=agent_7")
    assert req.headers == {"xi-api-key": KEY}
    plan = p.connect_plan(HttpResponse(200, {"signed_url": SIGNED}))
    assert plan.url == SIGNED and plan.headers == {}
    assert SIGNED in plan.secrets and "sig_ABCDEFGH12345" in plan.secrets
    for shown in (repr(req), repr(plan)):
        assert KEY not in shown and "sig_ABCDEFGH12345" not in shown, shown
    for secret in plan.secrets:
        redact.register(secret)
    assert "sig_ABCDEFGH12345" not in redact.scrub(f"connecting to {SIGNED}")
    assert KEY not in redact.scrub(f"key {KEY}")


@pytest.mark.parametrize("status,retry", [(401, "auth"), (403, "auth"), (429, "later"),
                                          (500, "soon")])
def test_signed_url_refusals_say_how_long_to_wait_without_the_key(status, retry):
    with pytest.raises(SessionFailed) as info:
        provider(f"api_key = {KEY}\n").connect_plan(HttpResponse(status, {"detail": "no"}))
    outcome = info.value.outcome
    assert outcome.retry == retry and KEY not in outcome.reason
    assert ("[elevenlabs] api_key" in outcome.reason) == (retry == "auth")


def test_initiation_data_carries_every_configured_override_and_variable():
    p = provider("prompt = You are a kitchen helper.\nfirst_message = Hi\nlanguage = en\n"
                 "llm = gpt-4o-mini\nvoice_id = 21m00Tcm4TlvDq8ikWAM\ntts_stability = 0.4\n"
                 "tts_speed = 1.1\ntts_similarity_boost = 0.8\n"
                 'dynamic_variables = {"user_name": "John", "visits": 3, "vip": true}\n'
                 "user_id = pi-kitchen\ncontext = The device is in the kitchen.\n")
    init, context = (json.loads(m) for m in p.connect_plan(None).first_messages)
    assert init == {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {
            "agent": {"prompt": {"prompt": "You are a kitchen helper.", "llm": "gpt-4o-mini"},
                      "first_message": "Hi", "language": "en"},
            "tts": {"voice_id": "21m00Tcm4TlvDq8ikWAM", "stability": 0.4, "speed": 1.1,
                    "similarity_boost": 0.8}},
        "dynamic_variables": {"user_name": "John", "visits": 3, "vip": True},
        "user_id": "pi-kitchen"}
    assert context == {"type": "contextual_update", "text": "The device is in the kitchen."}


def test_an_llm_override_alone_still_nests_under_the_prompt():
    (init,) = (json.loads(m) for m in provider("llm = gemini-2.0-flash\n")
               .connect_plan(None).first_messages)
    assert init["conversation_config_override"] == {"agent": {"prompt": {"llm":
                                                                         "gemini-2.0-flash"}}}


# -- sending -----------------------------------------------------------------------------------
def test_mic_audio_goes_as_user_audio_chunk_without_a_type():
    frame = bytes(range(256)) * 2 + bytes(128)
    (wire,) = provider().encode_audio(frame)
    assert json.loads(wire) == {"user_audio_chunk": b64(frame)}


def test_user_activity_and_tool_results():
    p = provider()
    assert json.loads(p.user_activity()) == {"type": "user_activity"}
    (call,) = p.decode(msg(type="client_tool_call", client_tool_call={
        "tool_name": "get_temperature", "tool_call_id": "tool_call_123",
        "parameters": {"room": "kitchen"}, "event_id": 9}))
    assert call == ToolCall("tool_call_123", "get_temperature", {"room": "kitchen"})
    assert [json.loads(m) for m in p.tool_result(call, "Account is active", False)] == [
        {"type": "client_tool_result", "tool_call_id": "tool_call_123",
         "result": "Account is active", "is_error": False}]
    assert json.loads(p.tool_result(call, "no such tool", True)[0])["is_error"] is True


def test_no_message_is_needed_to_interrupt():
    assert provider().interrupt_messages(7, 1200.0) == ()


# -- receiving ---------------------------------------------------------------------------------
def test_metadata_announces_the_output_rate_and_the_conversation():
    p = provider()
    events = p.decode(msg(type="conversation_initiation_metadata",
                          conversation_initiation_metadata_event={
                              "conversation_id": "conv_123",
                              "agent_output_audio_format": "pcm_44100",
                              "user_input_audio_format": "pcm_16000"}))
    assert events == [OutputFormat(44100), Ready("conv_123", "output 44100 Hz")]
    assert p.output_rate == 44100


def test_an_input_format_other_than_16k_is_a_loud_line_not_a_crash():
    events = provider().decode(msg(type="conversation_initiation_metadata",
                                   conversation_initiation_metadata_event={
                                       "conversation_id": "c",
                                       "user_input_audio_format": "ulaw_8000"}))
    assert isinstance(events[0], Notice) and events[0].level == logging.ERROR
    assert "pcm_16000" in events[0].text and isinstance(events[-1], Ready)


def test_audio_interruption_and_ping():
    p = provider()
    pcm = b"\x01\x00\x02\x00" * 80
    assert p.decode(msg(type="audio", audio_event={
        "audio_base_64": b64(pcm), "event_id": 7,
        "alignment": {"chars": [], "char_start_times_ms": [], "char_durations_ms": []}})) == [
        AgentAudio(pcm, 7)]
    assert p.decode(msg(type="interruption", interruption_event={"event_id": 7})) == [
        Interruption(7)]
    (pong,) = p.decode(msg(type="ping", ping_event={"event_id": 12345, "ping_ms": None}))
    assert pong == Reply('{"type": "pong", "event_id": 12345}')


def test_transcripts_and_both_correction_namings():
    p = provider()
    assert p.decode(msg(type="user_transcript", user_transcription_event={
        "user_transcript": "hello", "event_id": 3})) == [Transcript("user", "hello")]
    assert p.decode(msg(type="agent_response", agent_response_event={
        "agent_response": "Hi there"})) == [Transcript("agent", "Hi there")]
    assert p.decode(msg(type="agent_response_correction", agent_response_correction_event={
        "original_agent_response": "Hi there, how", "corrected_agent_response": "Hi there",
        "event_id": 7})) == [Transcript("agent", "(corrected) Hi there")]
    assert p.decode(msg(type="agent_response_correction", correction_event={
        "corrected_response": "Hi"})) == [Transcript("agent", "(corrected) Hi")]


def test_both_error_forms_are_logged_with_their_text():
    p = provider()
    (nested,) = p.decode(msg(type="error", error_event={
        "code": 1002, "error_type": "transport_receive_timeout",
        "message": "No user input for 60 seconds", "reason": "timeout"}))
    assert nested.level == logging.WARNING
    assert nested.text == ("server error transport_receive_timeout 1002: No user input for "
                           "60 seconds")
    (flat,) = p.decode(msg(type="error", message="received 1002 (protocol error) This request "
                                                 "exceeds your quota limit."))
    assert "quota limit" in flat.text and flat.level == logging.WARNING


@pytest.mark.parametrize("error,code,reason,retry", [
    ({"error_type": "override_error", "message": "Override for field 'prompt' is not allowed"},
     1008, "", "long"),
    ({"error_type": "missing_dynamic_variable", "message": "user_name"}, 1008, "", "long"),
    ({"message": "received 1002 (protocol error) This request exceeds your quota limit."},
     1002, "", "long"),
    ({"error_type": "transport_receive_timeout", "message": "No user input"}, 1002, "", "soon"),
    ({"error_type": "max_duration_exceeded", "message": "max"}, 1000, "", "soon"),
    (None, 1011, "internal error", "soon"),
])
def test_close_codes_decide_the_wait(error, code, reason, retry):
    p = provider()
    if error is not None:
        p.decode(msg(type="error", error_event=error) if "error_type" in error
                 else msg(type="error", **error))
    assert p.close_outcome(code, reason).retry == retry


@pytest.mark.parametrize("message", [
    "not json", "[1]", b"\x00binary",
    '{"type":"audio","audio_event":{"audio_base_64":"%%%"}}',
    '{"type":"ping","ping_event":{}}',
    '{"type":"agent_response","agent_response_event":{"agent_response":5}}',
    '{"type":"user_transcript"}',
    '{"type":"client_tool_call","client_tool_call":{"tool_name":"x"}}',
])
def test_malformed_messages_are_reported_and_skipped(message):
    events = provider().decode(message)
    assert events and all(isinstance(e, Malformed) for e in events), events


@pytest.mark.parametrize("message", ['{"type":"vad_score","vad_score_event":{"vad_score":0.9}}',
                                     '{"type":"tentative_user_transcript"}',
                                     '{"type":"brand_new_event"}', '{"type": 5}'])
def test_other_messages_are_ignored_quietly(message):
    assert all(isinstance(e, Notice) and e.level == logging.DEBUG
               for e in provider().decode(message))


# -- the section -------------------------------------------------------------------------------
def test_the_section_needs_the_agent_id_and_plain_dynamic_variables():
    found = problems('[agent]\nprovider = elevenlabs\n[elevenlabs]\n'
                     'dynamic_variables = {"a": {"b": 1}}\ntts_speed = 2\n')
    assert {(p.section, p.key) for p in found} == {
        ("elevenlabs", "agent_id"), ("elevenlabs", "dynamic_variables"),
        ("elevenlabs", "tts_speed")}


def test_check_config_names_the_missing_key(tmp_path):
    result = check_config(tmp_path, "[agent]\nprovider = elevenlabs\n[elevenlabs]\n")
    assert result.returncode == 78 and "[elevenlabs] agent_id: missing" in result.stderr
    ok = check_config(tmp_path, f"[agent]\nprovider = elevenlabs\n[elevenlabs]\n"
                                f"agent_id = a\napi_key = {KEY}\n")
    assert ok.returncode == 0, ok.stderr
    assert KEY not in ok.stdout + ok.stderr
