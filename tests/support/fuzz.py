"""Hypothesis strategies shared by the fuzz tests and ``scripts/fuzz``: server messages
shaped like each dialect's (its field names and type names, with hostile values), and
config files shaped like ours.

``FUZZ_EXAMPLES`` (environment) sets how many examples each property runs: the suite runs a
modest number; ``scripts/fuzz`` runs 100,000 messages per dialect and 10,000 configs.
"""

from __future__ import annotations

import base64
import json
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from edgevoice.config import documented_keys

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 1000,
                suppress_health_check=list(HealthCheck), database=None)

# every key and type name the decoders look at, per dialect
WORDS = {
    "xuna": ["type", "conversation_initiation_metadata", "conversation_initiation_metadata_event",
             "conversation_id", "agent_output_audio_format", "audio", "audio_event",
             "audio_base_64", "event_id", "ping", "ping_event", "interruption",
             "interruption_event", "agent_response", "agent_response_event",
             "agent_response_correction", "agent_response_correction_event",
             "corrected_agent_response", "user_transcript", "user_transcription_event",
             "client_tool_call", "tool_call_id", "tool_name", "parameters", "client_error",
             "error", "vad_score", "pcm_16000", "pcm_24000", "pcm_", "ulaw_8000"],
    "voiceapi": ["type", "connected", "agent_ready", "session_ended", "reason", "error", "code",
                 "message", "agent_disconnected", "AUTH_FAILED", "SESSION_SETUP_FAILED"],
    "napster": ["event", "type", "data", "audio_received", "audio", "message_received",
                "message", "role", "action", "content", "response_id", "cancelled", "completed",
                "failed", "reason", "turn_detected", "session", "speech_started",
                "function_implicitly_called", "call_id", "name", "arguments",
                "talk_state_changed", "state", "ended", "avatar_state_changed", "ready",
                "function_call_timeout", "error"],
    "navtalk": ["type", "data", "conversation.connected.success", "sessionId",
                "conversation.connected.fail", "conversation.connected.close",
                "conversation.connected.warning", "conversation.connected.gpu_full",
                "conversation.connected.insufficient_balance", "message",
                "realtime.session.created", "realtime.session.updated",
                "realtime.response.audio.delta", "delta",
                "realtime.input_audio_buffer.speech_started",
                "realtime.conversation.item.input_audio_transcription.completed",
                "realtime.response.audio_transcript.done", "content",
                "realtime.response.function_call_arguments.done", "call_id", "function_name",
                "name", "arguments", "realtime.response.audio.done", "webrtc.signaling.offer"],
}

HOSTILE_TEXT = ["²", "٣", "7", "007", "-1", "1e400", "NaN", "", " ", "\x00", "\ud800"[:0],
                "9" * 30, "AQACAA==", "AQA", "!!!", "é" * 3]


def _leaf(words: list[str]) -> st.SearchStrategy:
    return st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
        st.floats(allow_nan=False), st.sampled_from(words), st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=20),
        st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()))


def json_values(words: list[str]) -> st.SearchStrategy:
    keys = st.one_of(st.sampled_from(words), st.text(max_size=8))
    return st.recursive(_leaf(words), lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=12)


def _deep(depth: int, inner: str) -> str:
    return "[" * depth + inner + "]" * depth


def messages(dialect: str) -> st.SearchStrategy:
    """Text (and, for voiceapi, binary) frames: mostly JSON objects built from the dialect's
    own words, some deeply nested, some not JSON at all."""
    words = WORDS[dialect]
    keys = st.one_of(st.sampled_from(words), st.text(max_size=8))
    objects = st.dictionaries(keys, json_values(words), max_size=6)
    typed = st.builds(lambda kind, body, key: {**body, key: kind},
                      json_values(words), objects, st.sampled_from(["type", "event"]))
    deep = st.builds(lambda key, kind, field, depth: "{%s: %s, %s: %s}" % (
        json.dumps(key), json.dumps(kind), json.dumps(field), _deep(depth, "1")),
        st.sampled_from(["type", "event"]), st.sampled_from(words), st.sampled_from(words),
        st.integers(900, 200_000))
    text = st.one_of(objects.map(json.dumps), typed.map(json.dumps), deep,
                     st.text(max_size=60), st.integers(1, 300_000).map(lambda n: _deep(n, "")))
    if dialect == "voiceapi":
        return st.one_of(text, st.binary(max_size=64))
    return st.one_of(text, st.binary(max_size=16))


# -- config files ------------------------------------------------------------------------------
_KEYS = documented_keys()
CONFIG_VALUES = ["nan", "inf", "-inf", "1e999", "NaN", "0", "-1", "1", "10", "4", "yes", "no",
                 "xuna", "napster", "navtalk", "voiceapi", "file", "alsa", "rgb", "pwm",
                 "ws://127.0.0.1:1/x", "http://127.0.0.1:1", "/dev/zero", "/dev/null", "/tmp",
                 "/nonexistent/x", "a\x00b", "{}", '{"a": NaN}', "[" * 5000, "1" * 5000,
                 "x" * 70_000, "%(x)s", "abc_12", "²", "١٢", "1_0"]


def config_texts() -> st.SearchStrategy:
    sections = st.sampled_from(list(_KEYS) + ["tools", "agnet", "x"])

    def section_body(name: str) -> st.SearchStrategy:
        keys = st.sampled_from(_KEYS.get(name, ["k"]) + ["api_key_file", "license_file",
                                                      "bogus", "get_time"])
        value = st.one_of(st.sampled_from(CONFIG_VALUES), st.text(max_size=12).map(
            lambda t: t.replace("\n", " ").replace("\r", " ")))
        return st.dictionaries(keys, value, max_size=6).map(
            lambda kv: f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()))

    return st.one_of(
        st.lists(sections.flatmap(section_body), max_size=5).map("".join),
        st.text(max_size=200))
