"""NavTalk realtime digital human, audio only.

Spec: ``shared/seeds/004_…`` and ``shared/protocols.md`` §4. The license travels in the
URL's query string, so the URL is registered as a secret and logged redacted. Flow:
``conversation.connected.success`` → ``realtime.session.created`` (we send the recent
user turns as history) → ``realtime.session.updated`` (mic audio starts). Audio is 24 kHz
PCM16 both ways. Payload fields may sit under ``data`` or at the top level: both are read.
WebRTC signalling is for video and is ignored.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import urllib.parse
from typing import Any, Sequence
from dataclasses import dataclass

from edgevoice import redact
from edgevoice.config.errors import Problem, missing
from edgevoice.config.types import Secret, Url, key
from edgevoice.providers.base import (Dialect, brief, ConnectPlan, Ended, Event, HttpResponse,
                                      Interruption, Malformed, Notice, Outcome, Ready,
                                      Reply, ResponseDone, ToolCall, Transcript, parse_arguments,
                                      pcm_from_base64, TypedJsonProvider)

MAX_B64_CHARS = 4096  # the documented limit of one append message's audio
BUSY_RETRY_S = 30.0
_BUSY = ("gpu_full", "connection_limit_exceeded", "backend_error")


@dataclass(frozen=True)
class NavTalkSettings:
    """The [navtalk] section."""

    url: str = key("WebSocket endpoint.", "wss://transfer.navtalk.ai/wss/v2/realtime-chat",
                   Url("ws", "wss"))
    license: redact.Secret | None = key("License (API key); it travels in the URL's query, "
                                        "which edgevoice never logs.", None, Secret())
    name: str = key("Digital human's name, e.g. navtalk.Leo.")
    avatar_id: str = key("Avatar id (wins over name when both are set).")

    def check(self) -> list[Problem]:
        return missing("navtalk", [
            (not self.license, "license", "set license or license_file"),
            (not self.name and not self.avatar_id, "name",
             "set name (e.g. navtalk.Leo) or avatar_id")])


class NavTalkProvider(TypedJsonProvider):
    name = "navtalk"
    mic_rate = 24000
    output_rate = 24000

    def __init__(self, settings, history: Sequence[str] = ()) -> None:
        self.settings = settings
        self.history = tuple(history)
        self.session_id: str | None = None
        self._calls_seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    # -- opening ----------------------------------------------------------------------------
    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        s = self.settings
        license_ = s.license.reveal() if s.license else ""
        query = {"license": license_}
        if s.avatar_id:
            query["avatarId"] = s.avatar_id
        else:
            query["name"] = s.name
        parts = urllib.parse.urlsplit(s.url)
        extra = urllib.parse.parse_qsl(parts.query)
        url = urllib.parse.urlunsplit(parts._replace(
            query=urllib.parse.urlencode(extra + list(query.items()))))
        return ConnectPlan(url, {}, (), stream_on_open=False,
                           secrets=(license_, urllib.parse.quote(license_, safe="")))

    # -- sending ----------------------------------------------------------------------------
    def encode_audio(self, frame: bytes) -> list[str]:
        b64 = base64.b64encode(frame).decode("ascii")
        return ['{"type":"realtime.input_audio_buffer.append","data":{"audio":"'
                + b64[i:i + MAX_B64_CHARS] + '"}}' for i in range(0, len(b64), MAX_B64_CHARS)]

    def history_messages(self) -> list[str]:
        """``conversation.item.create`` for each recent user turn (user turns only, as the
        NavTalk documentation sends them)."""
        return [json.dumps({"type": "conversation.item.create",
                            "item": {"type": "message", "role": "user",
                                     "content": [{"type": "input_text", "text": text}]}})
                for text in self.history]

    def tool_result(self, call: ToolCall, output: str, is_error: bool) -> tuple[str, str]:
        return (json.dumps({"type": "conversation.item.create",
                            "item": {"type": "function_call_output", "call_id": call.call_id,
                                     "output": output}}),
                json.dumps({"type": "response.create"}))

    # -- receiving --------------------------------------------------------------------------
    def decode_typed(self, kind: str, msg: dict) -> list[Event]:
        if kind.startswith("webrtc.signaling."):
            return []
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}

        def field(key: str) -> Any:
            value = data.get(key)
            return msg.get(key) if value is None else value

        if kind.startswith("conversation.connected."):
            return self._connection_event(kind[len("conversation.connected."):], field, msg)
        if kind == "realtime.session.created":
            return [Reply(m) for m in self.history_messages()] + [
                Notice(f"session created; sent {len(self.history)} history turn(s)",
                       logging.DEBUG)]
        if kind == "realtime.session.updated":
            return [Ready(self.session_id, "session updated")]
        if kind == "realtime.response.audio.delta":
            return self._audio(field("delta"))
        if kind == "realtime.input_audio_buffer.speech_started":
            return [Interruption(None)]
        if kind == "realtime.conversation.item.input_audio_transcription.completed":
            return self._transcript("user", field("content"), kind)
        if kind == "realtime.response.audio_transcript.done":
            return self._transcript("agent", field("content"), kind)
        if kind == "realtime.response.function_call_arguments.done":
            return self._function_call(field)
        if kind == "realtime.response.audio.done":
            return [ResponseDone()]
        if kind in ("realtime.response.audio_transcript.delta",
                    "realtime.input_audio_buffer.speech_stopped"):
            return []
        return [Notice(f"ignoring event {kind[:60]!r}", logging.DEBUG)]

    def _connection_event(self, what: str, field, msg: dict) -> list[Event]:
        text = brief(field("message") or "", 200)
        if what == "success":
            sid = field("sessionId")
            self.session_id = brief(sid, 128) if sid is not None else None
            return [Notice(f"navtalk session {self.session_id}")]
        if what == "warning":
            return [Notice(f"navtalk warning: {text}", logging.WARNING)]
        if what == "insufficient_balance":
            return [Ended(Outcome("NavTalk says the account balance is used up; recharge it",
                                  "long"))]
        if what == "fail":
            auth = "license" in text.lower() or "auth" in text.lower()
            return [Ended(Outcome(f"NavTalk refused the connection: {text or 'no reason given'}"
                                  + ("; check [navtalk] license" if auth else ""),
                                  "auth" if auth else "soon"))]
        if what == "close":
            return [Ended(Outcome(f"NavTalk closed the session: {text or 'normal closure'}"))]
        if what in _BUSY:
            return [Ended(Outcome(f"NavTalk is busy ({what}): {text}", "later", BUSY_RETRY_S))]
        return [Notice(f"navtalk {what}: {text}", logging.WARNING)]

    def _audio(self, b64: Any) -> list[Event]:
        return pcm_from_base64(b64, "audio delta")

    @staticmethod
    def _transcript(role: str, content: Any, kind: str) -> list[Event]:
        if not isinstance(content, str):
            return [Malformed(f"{kind} without content")]
        return [Transcript(role, content)]

    def _function_call(self, field) -> list[Event]:
        call_id = field("call_id")
        name = field("function_name") or field("name")
        if call_id is None or not isinstance(name, str):
            return [Malformed("function call without call_id or function_name")]
        call_id = brief(call_id, 128)
        if call_id in self._calls_seen:
            return []
        self._calls_seen[call_id] = None
        while len(self._calls_seen) > 64:
            self._calls_seen.popitem(last=False)
        return [ToolCall(call_id, name, parse_arguments(field("arguments")))]


DIALECT = Dialect("navtalk", NavTalkSettings, NavTalkProvider, takes_history=True)
