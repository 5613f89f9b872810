"""Every branch of navtalk's handling of what a server sends: the forms it accepts, what is
ignored, what is malformed, what ends a session and how long to wait; and the opening
step's failures. Events are compared whole; log texts only for what they name."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from edgevoice.providers.base import (AgentAudio, Ended, Interruption, Malformed,
                                      Notice, Ready, ResponseDone, ToolCall,
                                      Transcript)
from edgevoice.providers.navtalk import BUSY_RETRY_S, MAX_B64_CHARS
from tests.support.messages import DEBUG, INFO, WARNING, b64, msg, only
from tests.support.messages import call_event, napster, navtalk


def test_navtalk_url_keeps_its_query_and_hides_the_license():
    plan = navtalk("url = wss://h.example/rt?v=2\n").connect_plan(None)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(plan.url).query)
    assert query == {"v": ["2"], "license": ["nt lic/1"], "name": ["navtalk.Leo"]}
    assert plan.url.startswith("wss://h.example/rt?")
    assert set(plan.secrets) == {"nt lic/1", "nt%20lic%2F1"}
    assert plan.stream_on_open is False and plan.first_messages == ()
    avatar = navtalk("avatar_id = av9\n").connect_plan(None)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(avatar.url).query)
    assert query["avatarId"] == ["av9"] and "name" not in query


@pytest.mark.parametrize("size, messages", [(0, 0), (3, 1), (3072, 1), (3075, 2), (6144, 2),
                                            (6147, 3)])
def test_navtalk_audio_chunks_at_the_documented_limit(size, messages):
    frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sent = navtalk().encode_audio(frame)
    assert len(sent) == messages
    parts = [json.loads(s) for s in sent]
    assert all(p["type"] == "realtime.input_audio_buffer.append" for p in parts)
    assert all(len(p["data"]["audio"]) <= MAX_B64_CHARS for p in parts)
    assert "".join(p["data"]["audio"] for p in parts) == b64(frame)


def test_navtalk_session_flow_ids_and_history():
    p = navtalk(history=["first question", "second"])
    notice = only(p.decode(msg(type="conversation.connected.success", data={"sessionId": 42})), Notice, INFO)
    assert "42" in notice.text and p.session_id == "42"
    created = p.decode(msg(type="realtime.session.created"))
    assert [json.loads(e.message)["item"]["content"][0]["text"] for e in created[:-1]] == [
        "first question", "second"]
    assert isinstance(created[-1], Notice) and created[-1].level == DEBUG and "2" in created[-1].text
    assert p.decode(msg(type="realtime.session.updated")) == [Ready("42", "session updated")]
    q = navtalk()
    q.decode(msg(type="conversation.connected.success", sessionId="top"))
    assert q.session_id == "top"
    q.decode(msg(type="conversation.connected.success"))
    assert q.session_id is None
    assert q.decode(msg(type="realtime.session.created")) == [q.decode(msg(type="realtime.session.created"))[0]]


def test_navtalk_fields_under_data_win_unless_missing():
    pcm = b"\x01\x00\x02\x00"
    assert navtalk().decode(msg(type="realtime.response.audio.delta", data={"delta": b64(pcm)},
                                delta=b64(b"\x09\x00"))) == [AgentAudio(pcm, None)]
    assert navtalk().decode(msg(type="realtime.response.audio.delta", data={"delta": None},
                                delta=b64(pcm))) == [AgentAudio(pcm, None)]
    assert navtalk().decode(msg(type="realtime.response.audio.delta", data=[1],
                                delta=b64(pcm))) == [AgentAudio(pcm, None)]
    only(navtalk().decode(msg(type="realtime.response.audio.delta")), Malformed)


@pytest.mark.parametrize("kind, role", [
    ("realtime.conversation.item.input_audio_transcription.completed", "user"),
    ("realtime.response.audio_transcript.done", "agent")])
def test_navtalk_transcripts(kind, role):
    assert navtalk().decode(msg(type=kind, data={"content": "words"})) == [Transcript(role, "words")]
    only(navtalk().decode(msg(type=kind, data={"content": 5})), Malformed)


def test_navtalk_speech_and_response_events():
    assert navtalk().decode(msg(type="realtime.input_audio_buffer.speech_started")) == [Interruption(None)]
    assert navtalk().decode(msg(type="realtime.response.audio.done")) == [ResponseDone()]
    for quiet in ("realtime.response.audio_transcript.delta",
                  "realtime.input_audio_buffer.speech_stopped", "webrtc.signaling.offer",
                  "webrtc.signaling.x"):
        assert navtalk().decode(msg(type=quiet)) == [], quiet
    only(navtalk().decode(msg(type="realtime.something.new")), Notice, DEBUG)
    only(navtalk().decode(msg(type=5)), Notice, DEBUG)
    only(navtalk().decode(msg(data={})), Notice, DEBUG)
    only(navtalk().decode("[]"), Malformed)


@pytest.mark.parametrize("what, message, retry, after", [
    ("insufficient_balance", "", "long", None),
    ("fail", "invalid license", "auth", None),
    ("fail", "AUTH error", "auth", None),
    ("fail", "backend hiccup", "soon", None),
    ("fail", "", "soon", None),
    ("close", "", "soon", None),
    ("close", "bye", "soon", None),
    ("gpu_full", "busy", "later", BUSY_RETRY_S),
    ("connection_limit_exceeded", "", "later", BUSY_RETRY_S),
    ("backend_error", "", "later", BUSY_RETRY_S)])
def test_navtalk_connection_events_that_end_the_session(what, message, retry, after):
    ended = only(navtalk().decode(msg(type=f"conversation.connected.{what}", data={"message": message})), Ended)
    assert (ended.outcome.retry, ended.outcome.retry_after) == (retry, after)
    if message:
        assert message in ended.outcome.reason
    assert ("license" in ended.outcome.reason) == (retry == "auth")


@pytest.mark.parametrize("what", ["warning", "something_new"])
def test_navtalk_other_connection_events_are_warnings(what):
    notice = only(navtalk().decode(msg(type=f"conversation.connected.{what}", message="careful")),
                  Notice, WARNING)
    assert "careful" in notice.text


def test_navtalk_busy_retry_is_thirty_seconds():
    assert BUSY_RETRY_S == 30.0 and MAX_B64_CHARS == 4096


def test_navtalk_function_calls():
    p = navtalk()
    assert p.decode(call_event(1)) == [ToolCall("1", "lights", {"on": True})]
    assert p.decode(call_event(1)) == []  # repeated: answered once
    assert p.decode(call_event("n", key="name")) == [ToolCall("n", "lights", {"on": True})]
    assert p.decode(call_event("z", arguments=None)) == [ToolCall("z", "lights", {})]
    only(p.decode(call_event(None)), Malformed)
    only(p.decode(call_event("y", name=7)), Malformed)
    out = p.tool_result(ToolCall("c", "lights", {}), "done", False)
    assert [json.loads(m)["type"] for m in out] == ["conversation.item.create", "response.create"]
    assert json.loads(out[0])["item"] == {"type": "function_call_output", "call_id": "c", "output": "done"}


@pytest.mark.parametrize("dialect", ["navtalk", "napster"])
def test_the_last_64_call_ids_are_remembered(dialect):
    if dialect == "navtalk":
        p, event = navtalk(), call_event
    else:
        p = napster()

        def event(call_id):
            return msg(event="function_implicitly_called", data={"call_id": call_id, "name": "f"})
    for i in range(65):
        assert len(p.decode(event(f"c{i}"))) == 1
    assert p.decode(event("c1")) == []  # among the last 64
    assert len(p.decode(event("c0"))) == 1  # the oldest was forgotten
