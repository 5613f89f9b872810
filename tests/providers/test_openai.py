"""The openai dialect from recorded messages (docs/protocols/openai-realtime.md): the GA
and beta forms it sends, both event namings it reads, function calls declared from the
tool_schemas file, keys from the config or a token server, the barge-in messages with the
milliseconds really played (also through a Session), and its section's rules."""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest
import websocket

from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, Ended, HttpResponse, Interruption, Malformed,
                                      Ready, ResponseDone, SessionFailed, ToolCall,
                                      Transcript)
from tests.support.bargein import Rig
from tests.support.config import check_config, problems
from tests.support.messages import b64, msg

KEY = "sk-proj-device-key-0123456789"
EPHEMERAL = "ek_68af0123456789abcdef"
SCHEMAS = {"get_temperature": {
    "description": "Room temperature",
    "parameters": {"type": "object", "properties": {"room": {"type": "string"}}}}}


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def provider(extra: str = f"api_key = {KEY}\n", history=()):
    return make_provider(parse(f"[agent]\nprovider = openai\n[openai]\n{extra}"), history)


def schema_file(tmp_path, content) -> str:
    path = tmp_path / "tools.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


# -- opening -----------------------------------------------------------------------------------
def test_a_key_opens_the_ga_endpoint_with_a_bearer_header_and_a_ga_session_update():
    p = provider(f"api_key = {KEY}\nvoice = marin\ninstructions = You are a kitchen helper.\n"
                 "turn_detection = semantic_vad\neagerness = high\n")
    assert p.bootstrap_request() is None
    plan = p.connect_plan(None)
    assert plan.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert plan.headers == {"Authorization": f"Bearer {KEY}"}  # no OpenAI-Beta header
    assert plan.secrets == (KEY,) and not plan.stream_on_open
    assert KEY not in repr(plan)
    (update,) = (json.loads(m) for m in plan.first_messages)
    assert update == {"type": "session.update", "session": {
        "type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"],
        "instructions": "You are a kitchen helper.",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "gpt-4o-mini-transcribe"},
                            "turn_detection": {"type": "semantic_vad", "eagerness": "high",
                                               "create_response": True,
                                               "interrupt_response": True}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000},
                             "voice": "marin"}}}}


def test_server_vad_settings_and_transcription_language():
    p = provider(f"api_key = {KEY}\nvad_threshold = 0.6\nprefix_padding_ms = 200\n"
                 "silence_duration_ms = 700\nidle_timeout_ms = 6000\ninterrupt_response = no\n"
                 "transcription_model = whisper-1\ntranscription_language = de\n")
    audio_in = p.session_config()["audio"]["input"]
    assert audio_in["turn_detection"] == {"type": "server_vad", "threshold": 0.6,
                                          "prefix_padding_ms": 200, "silence_duration_ms": 700,
                                          "idle_timeout_ms": 6000, "create_response": True,
                                          "interrupt_response": False}
    assert audio_in["transcription"] == {"model": "whisper-1", "language": "de"}
    assert "transcription" not in provider(f"api_key = {KEY}\ntranscription_model =\n") \
        .session_config()["audio"]["input"]


def test_the_beta_switch_sends_the_flat_session_and_the_beta_header():
    plan = provider(f"api_key = {KEY}\nbeta = yes\nvoice = alloy\n").connect_plan(None)
    assert plan.headers["OpenAI-Beta"] == "realtime=v1"
    session = json.loads(plan.first_messages[0])["session"]
    assert session == {"modalities": ["audio", "text"], "input_audio_format": "pcm16",
                       "output_audio_format": "pcm16", "voice": "alloy",
                       "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"},
                       "turn_detection": {"type": "server_vad", "create_response": True,
                                          "interrupt_response": True}}


def test_azure_through_the_url_and_the_api_key_header():
    plan = provider(f"api_key = {KEY}\nauth_header = api-key\nmodel = my-realtime\n"
                    "url = wss://res.openai.azure.com/openai/v1/realtime\n").connect_plan(None)
    assert plan.url == "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime"
    assert plan.headers == {"api-key": KEY}
    preview = ("wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview"
               "&deployment=dep")
    assert provider(f"api_key = {KEY}\nurl = {preview}\n").connect_plan(None).url == preview


@pytest.mark.parametrize("body", [{"value": EPHEMERAL, "expires_at": 1767225600},
                                  {"client_secret": {"value": EPHEMERAL, "expires_at": 1}}])
def test_a_token_server_gives_a_short_lived_secret_in_either_shape(body):
    p = provider("token_url = https://home.example/openai-token\ntoken_key = device-key-42\n")
    req = p.bootstrap_request()
    assert (req.method, req.url) == ("POST", "https://home.example/openai-token")
    assert req.headers["Authorization"] == "Bearer device-key-42"
    assert req.json == {"model": "gpt-realtime"}
    assert "device-key-42" not in repr(req)
    plan = p.connect_plan(HttpResponse(200, body))
    assert plan.headers == {"Authorization": f"Bearer {EPHEMERAL}"}
    assert EPHEMERAL in plan.secrets and EPHEMERAL not in repr(plan)


@pytest.mark.parametrize("status,body,retry", [(401, None, "auth"), (429, None, "later"),
                                               (502, None, "soon"), (200, {"value": ""}, "soon"),
                                               (200, {"client_secret": "x"}, "soon"),
                                               (200, None, "soon")])
def test_token_server_failures(status, body, retry):
    with pytest.raises(SessionFailed) as info:
        provider("token_url = https://home.example/t\n").connect_plan(HttpResponse(status, body))
    assert info.value.outcome.retry == retry


def test_recent_user_turns_follow_the_session_update():
    plan = provider(history=("turn on the oven",)).connect_plan(None)
    assert json.loads(plan.first_messages[1]) == {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "turn on the oven"}]}}


# -- function calls ----------------------------------------------------------------------------
@pytest.mark.parametrize("content", [
    SCHEMAS,
    [{"type": "function", "name": "get_temperature", "description": "Room temperature",
      "parameters": SCHEMAS["get_temperature"]["parameters"]}]])
def test_tools_are_declared_from_the_schema_file_in_either_form(tmp_path, content):
    p = provider(f"api_key = {KEY}\ntool_schemas = {schema_file(tmp_path, content)}\n")
    session = p.session_config()
    assert session["tools"] == [{"type": "function", "name": "get_temperature",
                                 "description": "Room temperature",
                                 "parameters": SCHEMAS["get_temperature"]["parameters"]}]
    assert session["tool_choice"] == "auto"


@pytest.mark.parametrize("content,says", [
    ("{not json", "not valid JSON"), ('"a string"', "expected a JSON object"),
    ({"bad name!": {}}, "not a usable function name"),
    ({"f": {"parameters": {"type": "string"}}}, "JSON Schema of type object"),
    ({"f": {"description": 5}}, "description must be text"), ({"f": []}, "expected an object"),
    ([{"name": "f"}, {"name": "f"}], "declared twice")])
def test_a_bad_schema_file_is_a_config_problem(tmp_path, content, says):
    [problem] = problems(f"[agent]\nprovider = openai\n[openai]\napi_key = {KEY}\n"
                         f"tool_schemas = {schema_file(tmp_path, content)}\n")
    assert (problem.section, problem.key) == ("openai", "tool_schemas")
    assert says in problem.message


def test_a_relative_or_missing_schema_path_is_a_config_problem(tmp_path):
    for path, says in (("tools.json", "absolute path"), (str(tmp_path / "no.json"), "not a file")):
        [problem] = problems(f"[agent]\nprovider = openai\n[openai]\napi_key = {KEY}\n"
                             f"tool_schemas = {path}\n")
        assert problem.key == "tool_schemas" and says in problem.message


def test_a_function_call_is_answered_with_its_output_and_a_new_response():
    p = provider()
    (call,) = p.decode(msg(type="response.function_call_arguments.done", event_id="ev_5",
                           response_id="resp_1", item_id="item_fc", output_index=0,
                           call_id="call_123", name="get_temperature",
                           arguments='{"room": "kitchen"}'))
    assert call == ToolCall("call_123", "get_temperature", {"room": "kitchen"})
    assert p.decode(msg(type="response.function_call_arguments.done", call_id="call_123",
                        name="get_temperature", arguments="{}")) == []  # answered once
    item, create = (json.loads(m) for m in p.tool_result(call, '{"celsius": 21}', False))
    assert item == {"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_123", "output": '{"celsius": 21}'}}
    assert create == {"type": "response.create"}
    error = json.loads(p.tool_result(call, "timed out", True)[0])["item"]["output"]
    assert json.loads(error) == {"error": "timed out"}


# -- receiving ---------------------------------------------------------------------------------
PCM = (np.arange(2400) % 700).astype("<i2").tobytes()  # 100 ms at 24 kHz


@pytest.mark.parametrize("kind", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_deltas_in_both_namings_carry_their_item(kind):
    events = provider().decode(msg(type=kind, event_id="ev_1", response_id="resp_1",
                                   item_id="item_abc", output_index=0, content_index=0,
                                   delta=b64(PCM)))
    assert events == [AgentAudio(PCM, "item_abc")]


@pytest.mark.parametrize("kind", ["response.output_audio_transcript.done",
                                  "response.audio_transcript.done"])
def test_agent_transcripts_in_both_namings(kind):
    assert provider().decode(msg(type=kind, item_id="item_abc", transcript="It is ten.")) == [
        Transcript("agent", "It is ten.")]


@pytest.mark.parametrize("kind", ["response.output_audio_transcript.delta",
                                  "response.audio_transcript.delta", "response.output_text.delta",
                                  "response.text.delta", "response.output_audio.done",
                                  "response.audio.done", "rate_limits.updated",
                                  "session.created"])
def test_known_events_not_needed_are_skipped_silently(kind):
    assert provider().decode(msg(type=kind, delta="x")) == []


def test_user_transcripts_speech_started_and_session_updated():
    p = provider()
    assert p.decode(msg(type="conversation.item.input_audio_transcription.completed",
                        item_id="item_u1", content_index=0,
                        transcript="what's the time")) == [Transcript("user", "what's the time")]
    assert p.decode(msg(type="input_audio_buffer.speech_started", audio_start_ms=1000,
                        item_id="item_u2")) == [Interruption(None)]
    assert p.decode(msg(type="session.updated", session={
        "id": "sess_1", "type": "realtime",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}}})) == [
        Ready("sess_1", "session updated")]
    loud = p.decode(msg(type="session.updated", session={
        "audio": {"output": {"format": {"type": "audio/pcmu"}}}}))
    assert loud[0].level == logging.ERROR and isinstance(loud[1], Ready)


def test_response_done_ends_the_response_and_says_why_it_failed():
    p = provider()
    assert p.decode(msg(type="response.done", response={"status": "completed"})) == [
        ResponseDone()]
    done, notice = p.decode(msg(type="response.done", response={
        "status": "failed", "status_details": {"error": {"message": "boom"}}}))
    assert done == ResponseDone() and notice.level == logging.WARNING and "boom" in notice.text


def test_an_error_before_the_session_is_updated_means_the_settings_were_refused():
    (ended,) = provider().decode(msg(type="error", error={
        "type": "invalid_request_error", "code": "invalid_value",
        "message": "Invalid value: 'nova'.", "param": "session.audio.output.voice"}))
    assert isinstance(ended, Ended) and ended.outcome.retry == "long"
    assert "'nova'" in ended.outcome.reason and "session.audio.output.voice" in ended.outcome.reason


def test_errors_decide_what_happens():
    p = provider()
    p.decode(msg(type="session.updated", session={"id": "sess_1"}))
    (quiet,) = p.decode(msg(type="error", error={
        "type": "invalid_request_error", "code": "response_cancel_not_active",
        "message": "Cancellation failed: no active response found"}))
    assert quiet.level == logging.DEBUG
    (ended,) = p.decode(msg(type="error", error={"code": "session_expired", "message": "x"}))
    assert isinstance(ended, Ended) and ended.outcome.retry == "now"
    (auth,) = p.decode(msg(type="error", error={"code": "invalid_api_key", "message": "x"}))
    assert auth.outcome.retry == "auth"
    (other,) = p.decode(msg(type="error", error={"code": "invalid_value", "message": "bad"}))
    assert other.level == logging.WARNING and "bad" in other.text


@pytest.mark.parametrize("code,reason,retry", [
    (3000, "invalid_request_error.invalid_api_key", "auth"),
    (1001, "Your session hit the maximum duration of 60 minutes.", "now"),
    (1011, "internal", "soon")])
def test_close_codes(code, reason, retry):
    assert provider().close_outcome(code, reason).retry == retry


def test_a_refused_handshake_points_at_the_openai_key():
    outcome = provider().auth_outcome(401)
    assert outcome.retry == "auth" and "[openai] api_key" in outcome.reason


@pytest.mark.parametrize("message", [
    "nope", b"\x01\x02", "[]",
    '{"type":"response.output_audio.delta","item_id":"i","delta":"***"}',
    '{"type":"response.audio.delta","item_id":"i"}',
    '{"type":"response.output_audio_transcript.done"}',
    '{"type":"conversation.item.input_audio_transcription.completed"}',
    '{"type":"response.function_call_arguments.done","name":"f"}'])
def test_malformed_messages_are_reported_and_skipped(message):
    events = provider().decode(message)
    assert events and all(isinstance(e, Malformed) for e in events), events


# -- barge-in: cancel and truncate to what was heard -------------------------------------------
def delta(item: str, pcm: bytes = PCM) -> str:
    return msg(type="response.output_audio.delta", response_id="resp_1", item_id=item,
               output_index=0, content_index=0, delta=b64(pcm))


def test_interrupting_an_active_response_cancels_it_and_truncates_its_item():
    p = provider()
    p.decode(msg(type="response.created", response={"id": "resp_1"}))
    for _ in range(10):  # 1000 ms received
        p.decode(delta("item_abc"))
    cancel, truncate = (json.loads(m) for m in p.interrupt_messages("item_abc", 480.7))
    assert cancel == {"type": "response.cancel"}
    assert truncate == {"type": "conversation.item.truncate", "item_id": "item_abc",
                        "content_index": 0, "audio_end_ms": 480}
    assert p.interrupt_messages("item_abc", 480.0) == []  # said once


def test_a_finished_response_heard_to_the_end_needs_no_word():
    p = provider()
    p.decode(delta("item_abc"))
    p.decode(msg(type="response.done", response={"status": "completed"}))
    assert p.interrupt_messages("item_abc", 100.0) == []
    assert p.interrupt_messages("item_abc", 5000.0) == []  # never past what was received
    assert p.interrupt_messages(None, 0.0) == []


def test_a_finished_response_still_playing_is_truncated_but_not_cancelled():
    p = provider()
    p.decode(delta("item_abc"))
    p.decode(delta("item_abc"))
    p.decode(msg(type="response.done", response={"status": "completed"}))
    (truncate,) = (json.loads(m) for m in p.interrupt_messages("item_abc", 60.0))
    assert truncate["audio_end_ms"] == 60 and truncate["item_id"] == "item_abc"


class Wire:
    """The server's end of a socket pair carrying the session's WebSocket frames."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self.client = websocket.WebSocket()
        self.client.sock, self.client.connected = ours, True
        self.server = websocket.WebSocket()
        self.server.sock, self.server.connected = theirs, True
        theirs.settimeout(2.0)

    def received(self, count: int) -> list[dict]:
        return [json.loads(self.server.recv()) for _ in range(count)]


@pytest.mark.parametrize("how", ["server", "button"])
def test_a_session_truncates_the_item_at_the_milliseconds_that_reached_the_speaker(how):
    rig = Rig("openai")
    wire = Wire()
    rig.session._ws = wire.client
    rig.server(msg(type="response.created", response={"id": "resp_1"}))
    for _ in range(30):  # 3 s of answer arrive at once
        rig.server(delta("item_abc"))
    for _ in range(37):  # the speaker plays 37 blocks of 20 ms
        rig.tick(None)
    if how == "server":
        rig.server(msg(type="input_audio_buffer.speech_started", audio_start_ms=900,
                       item_id="item_u1"))
    else:
        rig.session.interrupt_now()
        for event in rig.pending():  # the session thread's part
            rig.session.handle(event)
    cancel, truncate = wire.received(2)
    assert cancel == {"type": "response.cancel"}
    assert truncate == {"type": "conversation.item.truncate", "item_id": "item_abc",
                        "content_index": 0, "audio_end_ms": 740}
    rig.server(delta("item_abc"))  # late audio of the cut item is dropped
    assert rig.engine.buffer.buffered_bytes == 0
    rig.server(delta("item_next"))  # the next answer plays
    assert rig.engine.buffer.buffered_bytes > 0


def test_speech_started_is_an_interruption_only_while_the_agent_is_heard_or_waiting():
    """The server VAD sends speech_started at every turn of the user's: only one over the
    agent's voice (playing, or paused and buffered) counts and is logged."""
    rig = Rig("openai")
    wire = Wire()
    rig.session._ws = wire.client
    started = msg(type="input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u1")
    stats = rig.session.stats
    rig.server(started)  # the user's first question, nothing playing
    assert stats.interruptions == 0
    for _ in range(10):  # 1 s of answer
        rig.server(delta("item_abc"))
    for _ in range(10):  # 200 ms of it heard
        rig.tick(None)
    rig.server(started)
    assert stats.interruptions == 1 and rig.engine.buffer.buffered_bytes == 0
    assert wire.received(2)[1]["audio_end_ms"] == 200
    rig.server(started)  # the user's next turn: nothing left to interrupt
    assert stats.interruptions == 1


def test_blocks_played_while_the_interruption_is_handled_count_in_the_truncate(monkeypatch):
    """The player thread runs on while the receive thread handles speech_started: what it
    hands the device until the flush was heard, so the truncate is read after the flush."""
    rig = Rig("openai")
    wire = Wire()
    rig.session._ws = wire.client
    for _ in range(10):  # 1 s of answer, 200 ms of it heard
        rig.server(delta("item_abc"))
    for _ in range(10):
        rig.tick(None)
    flush = rig.engine.flush_playback

    def late_flush():
        for _ in range(7):  # the receive thread was descheduled: 140 ms more played
            rig.tick(None)
        return flush()

    monkeypatch.setattr(rig.engine, "flush_playback", late_flush)
    rig.server(msg(type="input_audio_buffer.speech_started", audio_start_ms=0, item_id="u"))
    assert wire.received(2)[1]["audio_end_ms"] == 340


# -- the section -------------------------------------------------------------------------------
def test_check_config_names_the_missing_key(tmp_path):
    result = check_config(tmp_path, "[agent]\nprovider = openai\n")
    assert result.returncode == 78 and "[openai] api_key: missing" in result.stderr
    assert "token_url" in result.stderr
    for enough in (f"api_key = {KEY}\n", "token_url = https://home.example/t\n"):
        ok = check_config(tmp_path, f"[agent]\nprovider = openai\n[openai]\n{enough}")
        assert ok.returncode == 0, ok.stderr
        assert KEY not in ok.stdout + ok.stderr
