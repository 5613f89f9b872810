"""The navtalk dialect against the seed's flow (004) and the tolerant forms."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, Ended, Interruption, Malformed, Notice, Ready,
                                      Reply, ToolCall, Transcript)
from edgevoice.redact import redact_url

CONFIG = """
[agent]
provider = navtalk
[navtalk]
license = nt-license-secret
name = navtalk.Leo
"""


def provider(extra: str = "", history=()):
    return make_provider(parse(CONFIG + extra), history)


def test_url_carries_license_and_name_and_is_logged_redacted():
    plan = provider().connect_plan(None)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(plan.url).query))
    assert query == {"license": "nt-license-secret", "name": "navtalk.Leo"}
    assert plan.url.startswith("wss://transfer.navtalk.ai/wss/v2/realtime-chat?")
    assert "nt-license-secret" in plan.secrets
    assert "nt-license-secret" not in redact_url(plan.url)
    assert not plan.stream_on_open  # audio waits for realtime.session.updated


def test_avatar_id_wins_over_name():
    plan = provider("avatar_id = av_42\n").connect_plan(None)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(plan.url).query))
    assert query == {"license": "nt-license-secret", "avatarId": "av_42"}


def test_seed_flow_history_then_audio():
    p = provider(history=["What are your opening hours?", "And on Sunday?"])
    (notice,) = p.decode('{"type":"conversation.connected.success","data":{"sessionId":"s-1",'
                         '"iceServers":[{"urls":"stun:x"}]}}')
    assert "s-1" in notice.text
    events = p.decode('{"type":"realtime.session.created"}')
    replies = [json.loads(e.message) for e in events if isinstance(e, Reply)]
    assert replies == [{"type": "conversation.item.create",
                        "item": {"type": "message", "role": "user",
                                 "content": [{"type": "input_text", "text": text}]}}
                       for text in ("What are your opening hours?", "And on Sunday?")]
    assert p.decode('{"type":"realtime.session.updated"}') == [Ready("s-1", "session updated")]


def test_audio_is_24k_and_split_at_4096_base64_characters():
    p = provider()
    assert (p.mic_rate, p.output_rate) == (24000, 24000)
    (msg,) = p.encode_audio(bytes(960))  # 20 ms at 24 kHz
    parsed = json.loads(msg)
    assert parsed["type"] == "realtime.input_audio_buffer.append"
    assert base64.b64decode(parsed["data"]["audio"]) == bytes(960)
    pieces = p.encode_audio(bytes(range(256)) * 24)  # 6144 bytes = 8192 base64 characters
    assert [len(json.loads(m)["data"]["audio"]) for m in pieces] == [4096, 4096]
    assert base64.b64decode("".join(json.loads(m)["data"]["audio"] for m in pieces)) == \
        bytes(range(256)) * 24


@pytest.mark.parametrize("payload", ['{"type":"realtime.response.audio.delta",'
                                     '"data":{"delta":"AQACAA=="}}',
                                     '{"type":"realtime.response.audio.delta","delta":"AQACAA=="}'])
def test_audio_delta_under_data_or_top_level(payload):
    assert provider().decode(payload) == [AgentAudio(b"\x01\x00\x02\x00")]


def test_transcripts_speech_events_and_webrtc_ignored():
    p = provider()
    assert p.decode('{"type":"realtime.conversation.item.input_audio_transcription.completed",'
                    '"data":{"content":"Hello"}}') == [Transcript("user", "Hello")]
    assert p.decode('{"type":"realtime.response.audio_transcript.delta",'
                    '"data":{"content":"Hi","id":"r1"}}') == []
    assert p.decode('{"type":"realtime.response.audio_transcript.done",'
                    '"data":{"content":"Hi there"}}') == [Transcript("agent", "Hi there")]
    assert p.decode('{"type":"realtime.input_audio_buffer.speech_started"}') == [
        Interruption(None)]
    assert p.decode('{"type":"realtime.input_audio_buffer.speech_stopped"}') == []
    assert p.decode('{"type":"webrtc.signaling.offer","data":{"sdp":"v=0"}}') == []
    assert p.decode('{"type":"webrtc.signaling.iceCandidate","data":{}}') == []


def test_function_call_round_trip():
    p = provider()
    (call,) = p.decode(json.dumps({"type": "realtime.response.function_call_arguments.done",
                                   "data": {"call_id": "c1", "function_name": "get_temperature",
                                            "arguments": '{"room":"hall"}'}}))
    assert call == ToolCall("c1", "get_temperature", {"room": "hall"})
    item, create = p.tool_result(call, "19 C", False)
    assert json.loads(item) == {"type": "conversation.item.create",
                                "item": {"type": "function_call_output", "call_id": "c1",
                                         "output": "19 C"}}
    assert json.loads(create) == {"type": "response.create"}


@pytest.mark.parametrize("kind,retry", [("fail", "soon"), ("close", "soon"),
                                        ("insufficient_balance", "long"), ("gpu_full", "later"),
                                        ("connection_limit_exceeded", "later")])
def test_failure_events_end_the_session(kind, retry):
    (event,) = provider().decode(json.dumps({"type": f"conversation.connected.{kind}",
                                             "message": "m"}))
    assert isinstance(event, Ended) and event.outcome.retry == retry


def test_bad_license_is_an_auth_failure_and_warning_is_a_log_line():
    (event,) = provider().decode('{"type":"conversation.connected.fail",'
                                 '"message":"Invalid license"}')
    assert event.outcome.retry == "auth"
    (warning,) = provider().decode('{"type":"conversation.connected.warning",'
                                   '"message":"several avatars named navtalk.Leo"}')
    assert isinstance(warning, Notice) and warning.level == 30


@pytest.mark.parametrize("message", ["{", '{"type":"realtime.response.audio.delta"}',
                                     '{"type":"realtime.response.audio.delta","data":{"delta":"!"}}',
                                     '{"type":"realtime.response.function_call_arguments.done"}'])
def test_malformed(message):
    events = provider().decode(message)
    assert events and all(isinstance(e, Malformed) for e in events)
