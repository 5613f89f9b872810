"""Every branch of xuna's handling of what a server sends: the forms it accepts, what is
ignored, what is malformed, what ends a session and how long to wait; and the opening
step's failures. Events are compared whole; log texts only for what they name."""

from __future__ import annotations

import json

import pytest

from edgevoice.providers.base import (AgentAudio, HttpResponse, Interruption, Malformed,
                                      Notice, OutputFormat, Ready, Reply, SessionFailed, ToolCall,
                                      Transcript)
from edgevoice.providers.xuna import parse_audio_format
from tests.support.messages import DEBUG, ERROR, WARNING, b64, msg, only
from tests.support.messages import xuna


def test_xuna_urls_keep_their_own_query_and_encode_the_agent_id():
    plan = xuna("url = wss://h.example/conv?region=eu\n").connect_plan(None)
    assert plan.url == "wss://h.example/conv?region=eu&agent_id=ag+42"
    assert plan.secrets == () and plan.stream_on_open is True and plan.headers == {}
    req = xuna("api_key = xk-secret-1\napi_url = https://h.example/base/\n").bootstrap_request()
    assert req.method == "GET" and req.what == "signed URL request"
    assert req.url == "https://h.example/base/v1/convai/conversation/get-signed-url?agent_id=ag+42"


@pytest.mark.parametrize("body", [None, {}, {"signed_url": 5}, {"signed_url": "https://h/x"},
                                  {"signed_url": ""}, "wss://h/x", {"url": "wss://h/x"}])
def test_xuna_unusable_signed_url_answers(body):
    with pytest.raises(SessionFailed) as info:
        xuna("api_key = xk-secret-1\n").connect_plan(HttpResponse(200, body))
    assert info.value.outcome.retry == "soon"


def test_xuna_signed_url_in_ws_form_and_its_query_values_are_secrets():
    plan = xuna("api_key = xk-secret-1\n").connect_plan(
        HttpResponse(200, {"signed_url": "ws://127.0.0.1:9/c?token=T1&sig=S2"}))
    assert plan.url == "ws://127.0.0.1:9/c?token=T1&sig=S2"
    assert set(plan.secrets) == {plan.url, "T1", "S2"}


@pytest.mark.parametrize("settings, override", [
    ("", None),
    ("prompt = P\n", {"agent": {"prompt": {"prompt": "P"}}}),
    ("first_message = Hi\n", {"agent": {"first_message": "Hi"}}),
    ("language = de\n", {"agent": {"language": "de"}}),
    ("voice_id = v9\n", {"tts": {"voice_id": "v9"}}),
])
def test_xuna_each_override_alone(settings, override):
    first = json.loads(xuna(settings).connect_plan(None).first_messages[0])
    assert first["type"] == "conversation_initiation_client_data"
    assert first.get("conversation_config_override") == override


def test_xuna_user_activity():
    assert json.loads(xuna().user_activity()) == {"type": "user_activity"}


@pytest.mark.parametrize("fmt, rate", [("pcm_8000", 8000), ("pcm_96000", 96000),
                                       ("pcm_7999", None), ("pcm_96001", None), ("pcm_", None),
                                       ("PCM_16000", None), (16000, None), ("pcm_16k", None)])
def test_xuna_audio_format_bounds(fmt, rate):
    assert parse_audio_format(fmt) == rate


def test_xuna_metadata_forms():
    p = xuna()
    meta = {"type": "conversation_initiation_metadata"}
    assert p.decode(json.dumps(meta)) == [Ready(None, "output 16000 Hz")]
    same = dict(meta, conversation_initiation_metadata_event={
        "conversation_id": 77, "agent_output_audio_format": "pcm_16000"})
    assert p.decode(json.dumps(same)) == [Ready("77", "output 16000 Hz")]
    odd = dict(meta, conversation_initiation_metadata_event="not an object")
    assert p.decode(json.dumps(odd)) == [Ready(None, "output 16000 Hz")]
    ulaw = dict(meta, conversation_initiation_metadata_event={"agent_output_audio_format": "ulaw_8000"})
    events = p.decode(json.dumps(ulaw))
    assert isinstance(events[0], Notice) and events[0].level == ERROR and "ulaw_8000" in events[0].text
    assert events[1:] == [Ready(None, "output 16000 Hz")] and p.output_rate == 16000
    fast = dict(meta, conversation_initiation_metadata_event={"agent_output_audio_format": "pcm_22050"})
    assert p.decode(json.dumps(fast)) == [OutputFormat(22050), Ready(None, "output 22050 Hz")]
    assert p.output_rate == 22050


def test_xuna_audio_ids():
    pcm = b"\x01\x00"
    assert xuna().decode(msg(type="audio", audio_event={"audio_base_64": b64(pcm)})) == [
        AgentAudio(pcm, None)]
    assert xuna().decode(msg(type="audio", audio_event={"audio_base_64": b64(pcm),
                                                        "event_id": "e7"})) == [AgentAudio(pcm, "e7")]
    assert xuna().decode(msg(type="audio", audio_event={"audio_base_64": b64(pcm),
                                                        "event_id": True})) == [AgentAudio(pcm, None)]


def test_xuna_pings():
    def pong(text):
        return json.loads(only(xuna().decode(text), Reply).message)
    assert pong(msg(type="ping", ping_event={"event_id": 0})) == {"type": "pong", "event_id": 0}
    assert pong(msg(type="ping", ping_event={"ping_ms": 5}, event_id=3)) == {"type": "pong", "event_id": 3}
    assert pong(msg(type="ping", ping_event={"event_id": 1}, event_id=2)) == {"type": "pong", "event_id": 1}
    only(xuna().decode(msg(type="ping", ping_event={"ping_ms": 5})), Malformed)
    only(xuna().decode(msg(type="ping", ping_event="x")), Malformed)


def test_xuna_interruptions_transcripts_and_corrections():
    assert xuna().decode(msg(type="interruption", interruption_event={"event_id": "9"})) == [Interruption(9)]
    assert xuna().decode(msg(type="interruption", interruption_event=[1])) == [Interruption(None)]
    assert xuna().decode(msg(type="agent_response_correction", agent_response_correction_event={
        "corrected_agent_response": "Fixed."})) == [Transcript("agent", "(corrected) Fixed.")]
    assert xuna().decode(msg(type="agent_response_correction")) == []
    only(xuna().decode(msg(type="agent_response", agent_response_event={"agent_response": 5})), Malformed)
    only(xuna().decode(msg(type="user_transcript", user_transcription_event={"user_transcript": None})),
         Malformed)


@pytest.mark.parametrize("call, expected", [
    ({"tool_name": "t", "tool_call_id": 5, "parameters": '{"a": 1}'}, ToolCall("5", "t", {"a": 1})),
    ({"tool_name": "t", "tool_call_id": "c"}, ToolCall("c", "t", {})),
    ({"tool_name": "t", "tool_call_id": "c", "parameters": "[1]"}, ToolCall("c", "t", "[1]")),
    ({"tool_name": "t", "tool_call_id": 0}, ToolCall("0", "t", {})),
    ({"tool_name": 5, "tool_call_id": "c"}, None),
    ({"tool_call_id": "c"}, None),
    ({"tool_name": "t"}, None),
])
def test_xuna_tool_calls(call, expected):
    events = xuna().decode(msg(type="client_tool_call", client_tool_call=call))
    if expected is None:
        only(events, Malformed)
    else:
        assert events == [expected]


def test_xuna_tool_result_reports_errors():
    (text,) = xuna().tool_result(ToolCall("c1", "t", {}), "broke", True)
    assert json.loads(text) == {"type": "client_tool_result", "tool_call_id": "c1",
                                "result": "broke", "is_error": True}


@pytest.mark.parametrize("kind", ["client_error", "error"])
def test_xuna_server_errors_are_warnings(kind):
    notice = only(xuna().decode(msg(type=kind, message="quota")), Notice, WARNING)
    assert "quota" in notice.text


@pytest.mark.parametrize("kind", ["vad_score", "internal_tentative_agent_response",
                                  "agent_chat_response_part", "internal_turn_probability",
                                  "mcp_connection_status", "agent_tool_response"])
def test_xuna_known_chatter_is_dropped_silently(kind):
    assert xuna().decode(msg(type=kind)) == []


@pytest.mark.parametrize("kind", ["brand_new", 5, None, "x" * 100])
def test_xuna_unknown_types_are_debug_notices(kind):
    notice = only(xuna().decode(json.dumps({"type": kind})), Notice, DEBUG)
    assert len(notice.text) < 80


def test_xuna_url_query_keeps_blank_values_and_the_api_url_loses_only_slashes():
    plan = xuna("url = wss://h.example/conv?flag=&region=eu\n").connect_plan(None)
    assert plan.url == "wss://h.example/conv?flag=&region=eu&agent_id=ag+42"
    req = xuna("api_key = xk-secret-1\napi_url = https://h.example/baseX\n").bootstrap_request()
    assert req.url.startswith("https://h.example/baseX/v1/convai/")
