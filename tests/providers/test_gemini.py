"""The gemini dialect from recorded messages (docs/protocols/gemini-live.md): the setup it
sends, the mic message, what it makes of every server message in camelCase and snake_case
and in text or binary frames, numbered turns for late-audio drop, tool calls, goAway and the
resumption handle carried to the next session; its section's rules."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edgevoice import redact
from edgevoice.config import parse
from edgevoice.flow import LateAudioFilter
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, Ended, HttpResponse, Interruption, Malformed,
                                      Notice, OutputFormat, Ready, ResponseDone, SessionFailed,
                                      ToolCall, Transcript)
from edgevoice.providers.gemini import HANDLE_KEY
from tests.support.config import check_config, problems
from tests.support.messages import b64

KEY = "AIzaSyDevice-Key-0123456789"
TOKEN = "auth_tokens/3f9a0123456789abcdef"
PCM = (np.arange(4800) % 500).astype("<i2").tobytes()  # 200 ms at 24 kHz


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def provider(extra: str = f"api_key = {KEY}\n", carry: dict | None = None):
    return make_provider(parse(f"[agent]\nprovider = gemini\n[gemini]\n{extra}"), (), carry)


def j(**fields) -> str:
    return json.dumps(fields)


def audio(pcm: bytes = PCM, mime: str = "audio/pcm;rate=24000") -> str:
    return j(serverContent={"modelTurn": {"parts": [{"inlineData": {"mimeType": mime,
                                                                    "data": b64(pcm)}}]}})


# -- opening -----------------------------------------------------------------------------------
def test_a_key_opens_the_v1beta_endpoint_with_the_key_in_a_header_and_setup_first(tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps({"get_temperature": {
        "description": "Room temperature",
        "parameters": {"type": "object", "properties": {"room": {"type": "string"}}}}}))
    p = provider(f"api_key = {KEY}\nmodel = gemini-live-2.5-flash-preview\nvoice = Kore\n"
                 "system_instruction = You are a kitchen helper.\nstart_sensitivity = high\n"
                 f"silence_duration_ms = 500\ntool_schemas = {tools}\n")
    assert p.bootstrap_request() is None
    plan = p.connect_plan(None)
    assert plan.url == ("wss://generativelanguage.googleapis.com/ws/google.ai."
                        "generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
    assert plan.headers == {"x-goog-api-key": KEY} and KEY not in plan.url
    assert plan.secrets == (KEY,) and KEY not in repr(plan) and not plan.stream_on_open
    (setup,) = (json.loads(m) for m in plan.first_messages)
    assert setup == {"setup": {
        "model": "models/gemini-live-2.5-flash-preview",
        "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}},
        "systemInstruction": {"parts": [{"text": "You are a kitchen helper."}]},
        "tools": [{"functionDeclarations": [{
            "name": "get_temperature", "description": "Room temperature",
            "parametersJsonSchema": {"type": "object",
                                     "properties": {"room": {"type": "string"}}}}]}],
        "inputAudioTranscription": {}, "outputAudioTranscription": {},
        "realtimeInputConfig": {"automaticActivityDetection": {
            "startOfSpeechSensitivity": "START_SENSITIVITY_HIGH", "silenceDurationMs": 500}},
        "sessionResumption": {}, "contextWindowCompression": {"slidingWindow": {}}}}


def test_the_plain_setup_asks_only_for_what_is_on():
    (setup,) = (json.loads(m)["setup"] for m in provider(
        f"api_key = {KEY}\ntranscription = no\nresume = no\ncompression = no\n")
        .connect_plan(None).first_messages)
    assert setup == {"model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
                     "generationConfig": {"responseModalities": ["AUDIO"]}}


@pytest.mark.parametrize("body", [{"name": TOKEN, "expireTime": "2026-11-30T10:00:00Z"},
                                  {"token": TOKEN}])
def test_a_token_server_gives_an_ephemeral_token_for_the_constrained_endpoint(body):
    p = provider("token_url = https://home.example/gemini-token\ntoken_key = device-7\n")
    req = p.bootstrap_request()
    assert (req.method, req.url, req.json) == (
        "POST", "https://home.example/gemini-token",
        {"model": "models/gemini-2.5-flash-native-audio-preview-12-2025"})
    assert req.headers["Authorization"] == "Bearer device-7" and "device-7" not in repr(req)
    plan = p.connect_plan(HttpResponse(200, body))
    assert plan.url.endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")
    assert plan.headers == {"Authorization": f"Token {TOKEN}"} and TOKEN in plan.secrets


@pytest.mark.parametrize("status,body,retry", [(403, None, "auth"), (429, None, "later"),
                                               (200, {"name": 5}, "soon"), (200, {}, "soon")])
def test_token_server_failures(status, body, retry):
    with pytest.raises(SessionFailed) as info:
        provider("token_url = https://home.example/t\n").connect_plan(HttpResponse(status, body))
    assert info.value.outcome.retry == retry


# -- sending -----------------------------------------------------------------------------------
def test_mic_audio_goes_as_realtime_input_audio_at_16k():
    frame = bytes(range(256)) * 2 + bytes(128)
    p = provider()
    assert p.mic_rate == 16000
    (wire,) = p.encode_audio(frame)
    assert json.loads(wire) == {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                                            "data": b64(frame)}}}


def test_tool_calls_are_answered_with_a_tool_response_per_id():
    p = provider()
    first, second = p.decode(j(toolCall={"functionCalls": [
        {"id": "fc_1", "name": "get_temperature", "args": {"room": "kitchen"}},
        {"id": "fc_2", "name": "lights_off"}]}))
    assert first == ToolCall("fc_1", "get_temperature", {"room": "kitchen"})
    assert second == ToolCall("fc_2", "lights_off", {})
    assert [json.loads(m) for m in p.tool_result(first, "21 C", False)] == [
        {"toolResponse": {"functionResponses": [{"id": "fc_1", "name": "get_temperature",
                                                 "response": {"result": "21 C"}}]}}]
    (error,) = (json.loads(m) for m in p.tool_result(second, "timed out", True))
    assert error["toolResponse"]["functionResponses"][0]["response"] == {"error": "timed out"}
    assert p.interrupt_messages(0, 500.0) == ()  # the server's VAD interrupts by itself


# -- receiving ---------------------------------------------------------------------------------
def test_setup_complete_opens_the_mic():
    assert provider().decode('{"setupComplete": {}}') == [Ready(None, "setup complete")]


@pytest.mark.parametrize("frame", [audio(), audio().encode()])
def test_model_audio_in_text_or_binary_frames_is_numbered_by_turn(frame):
    assert provider().decode(frame) == [AgentAudio(PCM, 0)]


def test_snake_case_keys_are_read_too():
    p = provider()
    events = p.decode(j(server_content={"model_turn": {"parts": [{"inline_data": {
        "mime_type": "audio/pcm;rate=24000", "data": b64(PCM)}}]}, "turn_complete": True}))
    assert events == [AgentAudio(PCM, 0), ResponseDone()]
    assert p.decode(j(tool_call={"function_calls": [{"id": "a", "name": "f"}]})) == [
        ToolCall("a", "f", {})]


def test_another_announced_rate_changes_the_output_format():
    p = provider()
    assert p.decode(audio(PCM, "audio/pcm;rate=16000")) == [OutputFormat(16000),
                                                            AgentAudio(PCM, 0)]
    assert p.output_rate == 16000


def test_an_interrupted_turn_drops_its_late_audio_and_the_next_turn_plays():
    p, late = provider(), LateAudioFilter()
    admitted = []

    def feed(message):
        for event in p.decode(message):
            if isinstance(event, AgentAudio) and late.admit(event.response_id):
                admitted.append(event.response_id)
            elif isinstance(event, Interruption):
                late.interrupt(event.response_id)
            elif isinstance(event, ResponseDone):
                late.response_done()

    feed(audio())
    feed('{"serverContent": {"interrupted": true}}')
    feed(audio())  # still on the wire when the model stopped
    feed('{"serverContent": {"turnComplete": true}}')
    feed(audio())
    assert admitted == [0, 1]


def test_transcripts_are_joined_into_one_line_per_turn():
    p = provider()
    assert p.decode(j(serverContent={"inputTranscription": {"text": "what's "}})) == []
    assert p.decode(j(serverContent={"inputTranscription": {"text": "the time"}})) == []
    events = p.decode(audio())
    assert events == [Transcript("user", "what's the time"), AgentAudio(PCM, 0)]
    p.decode(j(serverContent={"outputTranscription": {"text": "It is "}}))
    p.decode(j(serverContent={"outputTranscription": {"text": "ten."}}))
    assert p.decode(j(serverContent={"generationComplete": True})) == []
    assert p.decode(j(serverContent={"turnComplete": True})) == [Transcript("agent", "It is ten."),
                                                                ResponseDone()]


def test_resumption_handles_are_kept_for_the_next_session_and_sent_with_its_setup():
    carry: dict = {}
    first = provider(carry=carry)
    assert first.decode(j(sessionResumptionUpdate={"newHandle": "", "resumable": False})) == []
    assert first.decode(j(sessionResumptionUpdate={"newHandle": "Cg-handle-1",
                                                    "resumable": True})) == []
    assert first.decode(j(session_resumption_update={"new_handle": "Cg-handle-2"})) == []
    assert carry[HANDLE_KEY] == "Cg-handle-2"
    assert "Cg-handle-2" not in redact.scrub("resuming with Cg-handle-2")
    second = provider(carry=carry)
    plan = second.connect_plan(None)
    assert json.loads(plan.first_messages[0])["setup"]["sessionResumption"] == {
        "handle": "Cg-handle-2"}
    assert plan.note == "resuming the previous conversation" and "Cg-handle-2" in plan.secrets
    assert second.decode('{"setupComplete": {}}') == [Ready(None, "resumed")]
    # a refused resume forgets the handle: the session after starts afresh
    assert second.close_outcome(1007, "Invalid resumption handle").retry == "now"
    assert HANDLE_KEY not in carry
    assert "sessionResumption" in json.loads(provider(carry=carry).connect_plan(None)
                                             .first_messages[0])["setup"]
    assert json.loads(provider(carry=carry).connect_plan(None).first_messages[0])["setup"][
        "sessionResumption"] == {}


def test_resume_off_never_sends_a_handle():
    carry = {HANDLE_KEY: "Cg-old"}
    setup = json.loads(provider(f"api_key = {KEY}\nresume = no\n", carry)
                       .connect_plan(None).first_messages[0])["setup"]
    assert "sessionResumption" not in setup


def test_go_away_while_idle_ends_the_session_at_once_to_resume():
    p = provider(carry={HANDLE_KEY: "Cg-h"})
    notice, ended = p.decode(j(goAway={"timeLeft": "50s"}))
    assert isinstance(notice, Notice) and "50s" in notice.text
    assert isinstance(ended, Ended) and ended.outcome.retry == "now"
    assert "resuming" in ended.outcome.reason


def test_go_away_during_a_turn_waits_for_the_turn_to_end():
    p = provider()
    p.decode(audio())
    (notice,) = p.decode(j(goAway={"timeLeft": "10s"}))
    events = p.decode(j(serverContent={"turnComplete": True}))
    assert events[-1] == Ended(events[-1].outcome) and events[-1].outcome.retry == "now"
    assert p.close_outcome(1000, "").retry == "now"


@pytest.mark.parametrize("code,reason,retry", [
    (1007, "Request contains an invalid argument.", "long"),
    (1008, "Operation is not implemented, or supported, or enabled.", "long"),
    (1008, "API key not valid. Please pass a valid API key.", "auth"),
    (1011, "RESOURCE_EXHAUSTED: quota", "later"),
    (1011, "Deadline expired", "soon"), (1000, "", "soon")])
def test_close_codes(code, reason, retry):
    assert provider().close_outcome(code, reason).retry == retry


def test_tool_call_cancellation_and_usage_are_log_lines():
    (notice,) = provider().decode(j(toolCallCancellation={"ids": ["fc_1"]}))
    assert "fc_1" in notice.text
    (usage,) = provider().decode(j(usageMetadata={"totalTokenCount": 1234}))
    assert usage.level == logging.DEBUG


@pytest.mark.parametrize("message", [
    "not json", b"\xff\xfe", "[]", '{"serverContent": 5}',
    '{"serverContent": {"modelTurn": {"parts": 3}}}',
    audio(mime="audio/wav"), '{"toolCall": {"functionCalls": 5}}',
    '{"toolCall": {"functionCalls": [{"name": "f"}]}}',
    '{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm",'
    ' "data": "%%%"}}]}}}'])
def test_malformed_messages_are_reported_and_skipped(message):
    events = provider().decode(message)
    assert events and all(isinstance(e, Malformed) for e in events), events


def test_unknown_messages_are_ignored_quietly():
    (notice,) = provider().decode('{"somethingNew": {}}')
    assert notice.level == logging.DEBUG


# -- the section -------------------------------------------------------------------------------
def test_bad_values_are_config_problems():
    found = problems("[agent]\nprovider = gemini\n[gemini]\nstart_sensitivity = medium\n"
                     "silence_duration_ms = -1\n")
    assert {(p.section, p.key) for p in found} == {
        ("gemini", "api_key"), ("gemini", "start_sensitivity"),
        ("gemini", "silence_duration_ms")}


def test_check_config_names_the_missing_key(tmp_path):
    result = check_config(tmp_path, "[agent]\nprovider = gemini\n")
    assert result.returncode == 78 and "[gemini] api_key: missing" in result.stderr
    ok = check_config(tmp_path, f"[agent]\nprovider = gemini\n[gemini]\napi_key = {KEY}\n")
    assert ok.returncode == 0, ok.stderr
    assert KEY not in ok.stdout + ok.stderr
