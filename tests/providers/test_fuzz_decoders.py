"""Property fuzzing of every provider's ``decode()``: nothing a server sends makes it raise,
and valid messages (with hostile ids and payloads) still decode to their events."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, Event, Interruption, Malformed, Ready, ToolCall,
                                      Transcript)
from tests.support.fuzz import FUZZ, messages

CONFIGS = {
    "xuna": "[xuna]\nagent_id = a\n",
    "voiceapi": "[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = http://x\napi_key = k123\n",
    "napster": "[agent]\nprovider = napster\n[napster]\napi_key = k123\ncompanion_id = c\n",
    "navtalk": "[agent]\nprovider = navtalk\n[navtalk]\nlicense = l123\nname = n\n",
}
EVENT_TYPES = Event.__args__


def provider(dialect: str):
    return make_provider(parse(CONFIGS[dialect]))


@pytest.mark.parametrize("dialect", list(CONFIGS))
def test_nothing_a_server_sends_makes_decode_raise(dialect):
    p = provider(dialect)

    @FUZZ
    @given(messages(dialect))
    def check(message):
        events = p.decode(message)
        assert isinstance(events, list)
        assert all(isinstance(e, EVENT_TYPES) for e in events)

    check()


ids = st.one_of(st.integers(0, 2**62), st.text(max_size=12), st.sampled_from(
    ["²", "٣", "007", "7", "-3", "9" * 40]), st.none(), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.floats(), st.booleans())
pcm = st.binary(min_size=2, max_size=64).map(lambda b: b[:len(b) // 2 * 2])


def _one(events, kind):
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


@FUZZ
@given(ids)
def test_every_interruption_decodes_whatever_its_id(event_id):
    """An interruption with an odd id still interrupts (and so still flushes playback)."""
    xuna = provider("xuna").decode(json.dumps(
        {"type": "interruption", "interruption_event": {"event_id": event_id}}))
    napster = provider("napster").decode(json.dumps(
        {"type": "message_received", "data": {"role": "assistant", "action": "cancelled",
                                              "response_id": event_id}}))
    for events in (xuna, napster):
        interruption = _one(events, Interruption)
        hash(interruption.response_id)  # usable as a key


@FUZZ
@given(pcm, ids)
def test_every_audio_chunk_decodes(data, event_id):
    b64 = base64.b64encode(data).decode()
    cases = {
        "xuna": {"type": "audio", "audio_event": {"audio_base_64": b64, "event_id": event_id}},
        "napster": {"event": "audio_received", "data": {"data": b64}},
        "navtalk": {"type": "realtime.response.audio.delta", "data": {"delta": b64}},
    }
    for dialect, message in cases.items():
        assert _one(provider(dialect).decode(json.dumps(message)), AgentAudio).pcm == data
    assert _one(provider("voiceapi").decode(data), AgentAudio).pcm == data


@FUZZ
@given(st.text(max_size=40), st.sampled_from(["user", "agent"]))
def test_every_transcript_decodes(text, role):
    cases = {
        "xuna": {"type": "user_transcript", "user_transcription_event": {"user_transcript": text}}
        if role == "user" else {"type": "agent_response",
                                "agent_response_event": {"agent_response": text}},
        "napster": {"event": "message_received", "data": {
            "role": "user" if role == "user" else "assistant", "action": "completed",
            "content": text}},
        "navtalk": {"type": "realtime.conversation.item.input_audio_transcription.completed"
                    if role == "user" else "realtime.response.audio_transcript.done",
                    "data": {"content": text}},
    }
    for dialect, message in cases.items():
        transcript = _one(provider(dialect).decode(json.dumps(message)), Transcript)
        assert (transcript.role, transcript.text) == (role, text)


@FUZZ
@given(st.one_of(st.text(min_size=1, max_size=20), st.integers()),
       st.text(min_size=1, max_size=20),
       st.one_of(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
                 st.text(max_size=20)))
def test_every_function_call_decodes(call_id, name, arguments):
    cases = {
        "xuna": {"type": "client_tool_call", "client_tool_call": {
            "tool_call_id": call_id, "tool_name": name, "parameters": arguments}},
        "napster": {"event": "function_implicitly_called", "data": {
            "call_id": call_id, "name": name, "arguments": arguments}},
        "navtalk": {"type": "realtime.response.function_call_arguments.done", "data": {
            "call_id": call_id, "function_name": name, "arguments": arguments}},
    }
    for dialect, message in cases.items():
        call = _one(provider(dialect).decode(json.dumps(message)), ToolCall)
        assert (call.call_id, call.name) == (str(call_id), name)


@pytest.mark.parametrize("dialect,message", [
    ("xuna", {"type": "conversation_initiation_metadata",
              "conversation_initiation_metadata_event": {"conversation_id": [[[]]]}}),
    ("voiceapi", {"type": "connected"}),
    ("navtalk", {"type": "realtime.session.updated"}),
    ("napster", {"event": "avatar_state_changed", "data": {"state": "ready"}}),
])
def test_ready_decodes(dialect, message):
    _one(provider(dialect).decode(json.dumps(message)), Ready)


@pytest.mark.parametrize("dialect", list(CONFIGS))
def test_deep_json_is_malformed_not_an_error(dialect):
    deep = '{"type": "interruption", "event": "speech_started", "x": ' + "[" * 100_000 + \
        "]" * 100_000 + "}"
    assert any(isinstance(e, Malformed) for e in provider(dialect).decode(deep))


@pytest.mark.parametrize("event_id", ['"²"', "{}", '"٣"', "[1]", '"9999999999999999999999"'])
def test_an_interruption_with_an_odd_id_still_flushes_playback(event_id):
    from tests.support.bargein import paused_rig
    rig = paused_rig("xuna")
    rig.server('{"type":"interruption","interruption_event":{"event_id":%s}}' % event_id)
    assert rig.engine.buffer.buffered_bytes == 0
    assert rig.session.stats.interruptions == 1
