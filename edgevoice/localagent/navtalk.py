"""The ``navtalk`` dialect (NavTalk realtime digital human, audio part), from the seed spec.

WebSocket ``/wss/v2/realtime-chat?license=L&name=N`` or ``&avatarId=ID`` (avatarId wins).
No REST. JSON text both ways; audio is base64 PCM16 **24 kHz** mono both ways (resampled
to 16 kHz for the VAD only). Flow: ``conversation.connected.success {sessionId,
iceServers}`` → ``realtime.session.created`` → (client sends history items) →
``realtime.session.updated`` after ``navtalk_history_wait_s`` → audio. Per utterance:
``speech_started`` (at speech onset), ``speech_stopped``, the input transcription, then the
reply: a few ``audio_transcript.delta``, ``audio.delta`` chunks paced like the other
dialects, ``audio_transcript.done``, ``audio.done``.

Payloads go under ``data`` (the seed's form) or, with ``navtalk_top_level_payload``, at the
top level of the event. The ``message`` of the ``conversation.connected.*`` failure and
warning events is always top level.

Choices where the spec is silent:

- Failures are decided after the handshake (it always succeeds unless ``reject_auth``):
  a wrong or missing license sends ``conversation.connected.fail`` "invalid license" and
  closes with 1008; no ``name``/``avatarId`` sends the same event ("name or avatarId is
  required") and closes with 1008; ``navtalk_insufficient_balance`` sends
  ``conversation.connected.insufficient_balance`` and closes 1000 "Insufficient points";
  ``navtalk_fail_event="gpu_full"`` (or any name) sends ``conversation.connected.gpu_full``
  and closes 1000. Any name or avatarId is accepted.
- ``navtalk_warning`` sends ``conversation.connected.warning {message, data.avatarId}``
  right after the success event.
- ``realtime.session.created`` carries ``{"session": {"id", "input_audio_format",
  "output_audio_format"}}``; ``realtime.session.updated`` the same.
- ``realtime.input_audio_buffer.speech_started`` is sent at every speech onset (as the seed's
  event sequence shows) and at barge-in, once per utterance; barge-in sends nothing more.
- Audio before ``session.updated`` is recorded (``audio_before_ready``) and dropped. A
  base64 piece over 4096 characters is recorded as ``client_malformed`` but still used.
- The reply's transcript ``id`` (and the ``audio.done`` payload's) is ``resp_<n>``;
  ``audio.done`` carries ``{"id"}`` only.
- Function calls: the reply starts on the ``response.create`` that follows the output; a
  timeout (no output, or no ``response.create`` after it) sends nothing and replies anyway.
- ``realtime.input_text`` (``data.content``, ``data.text`` or top-level ``content``/``text``)
  and ``conversation.item.create`` message items after ``session.updated`` are recorded,
  never answered (there is no audio to parrot).
- WebRTC noise (``navtalk_webrtc_noise``): an offer and an ICE candidate right after
  ``session.updated``, another ICE candidate after the first audio chunk of every reply.
- A normal server-side close (``close_after_s``/``close_after_reply``) first sends
  ``conversation.connected.close {message}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.sync.server import ServerConnection

from .calls import PendingCall, user_text
from .context import DialectContext
from .dialect import Dialect, Handshake
from .listener import SpeechEnded
from .reply import ReplyStream
from .servervad import ServerVadSession
from .session import BAD_BASE64, BINARY_GARBAGE, ODD_LENGTH_PCM, b64, dumps

WS_PATH = "/wss/v2/realtime-chat"
MAX_AUDIO_B64_CHARS = 4096
ICE_SERVERS = [
    {"urls": ["stun:127.0.0.1:3478"]},
    {"urls": ["turn:127.0.0.1:3478"], "username": "local", "credential": "local"},
]
FAKE_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
FAKE_CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


class NavTalkSession(ServerVadSession):
    """A navtalk conversation: connect events, history window, 24 kHz audio, function calls."""

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.created_at: float | None = None
        self.ready = False
        self.history: list[dict[str, Any]] = []
        self.reply_texts: dict[int, str] = {}
        self.noise_sent: set[int] = set()

    # -- sending helpers ---
    def send_event(self, kind: str, payload: dict[str, Any] | None = None, **top: Any) -> None:
        """Send ``kind`` with ``payload`` under ``data`` (or flat); ``top`` fields always flat."""
        message: dict[str, Any] = {"type": kind, **top}
        if payload is not None:
            if self.options.navtalk_top_level_payload:
                message.update(payload)
            else:
                message["data"] = payload
        self.send_json(message)

    def _ice_candidate(self) -> None:
        self.send_event("webrtc.signaling.iceCandidate",
                        {"sessionId": self.conversation_id, "candidate": FAKE_CANDIDATE})

    def _fail(self, kind: str, message: str, code: int) -> None:
        self.send_json({"type": kind, "message": message})
        self.close(code, message)

    def _session_payload(self) -> dict[str, Any]:
        return {"session": {"id": self.conversation_id, "input_audio_format": "pcm16",
                            "output_audio_format": "pcm16"}}

    # -- opening ---
    def authenticate(self) -> bool:
        opts = self.options
        if self.auth.get("license") != "ok":
            missing = self.auth.get("license") == "missing"
            reason = "missing_license" if missing else "invalid_license"
            self.record("auth_rejected", where="ws", reason=reason)
            self._fail("conversation.connected.fail", "invalid license", 1008)
        if self.auth.get("by") is None:
            self.record("auth_rejected", where="ws", reason="missing_avatar")
            self._fail("conversation.connected.fail", "name or avatarId is required", 1008)
        if opts.navtalk_insufficient_balance:
            self.record("connect_failed", event="insufficient_balance")
            self._fail("conversation.connected.insufficient_balance", "Insufficient points", 1000)
        if opts.navtalk_fail_event:
            self.record("connect_failed", event=opts.navtalk_fail_event)
            kind = opts.navtalk_fail_event
            self._fail(f"conversation.connected.{kind}", f"simulated {kind}", 1000)
        return True

    def on_open(self) -> None:
        self.record("ws_open", by=self.auth.get("by"), avatar=self.auth.get("avatar"))
        self.send_event("conversation.connected.success",
                        {"sessionId": self.conversation_id, "iceServers": ICE_SERVERS})
        warning = self.options.navtalk_warning
        if warning:
            self.send_event("conversation.connected.warning", {"avatarId": "avatar_local"},
                            message=warning)
            self.record("warning_sent", message=warning)
        self.send_event("realtime.session.created", self._session_payload())
        self.created_at = time.monotonic()

    def on_tick(self, now: float) -> float | None:
        wake = super().on_tick(now)
        if not self.ready and self.created_at is not None:
            due = self.created_at + self.options.navtalk_history_wait_s
            if now < due:
                return due if wake is None else min(wake, due)
            self.ready = True
            self.send_event("realtime.session.updated", self._session_payload())
            self.record("session_updated", history_items=len(self.history))
            if self.options.navtalk_webrtc_noise:
                offer = {"type": "offer", "sdp": FAKE_SDP}
                self.send_event("webrtc.signaling.offer",
                                {"sessionId": self.conversation_id, "sdp": offer})
                self._ice_candidate()
        return wake

    def close_normally(self, reason: str) -> None:
        self.send_json({"type": "conversation.connected.close", "message": reason})
        self.close(1000, reason)

    # -- receive ---
    def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if message is None:
            return
        kind = message.get("type")
        payload = message.get("data") if isinstance(message.get("data"), dict) else message
        if kind == "realtime.input_audio_buffer.append":
            self._audio(payload.get("audio"))
        elif kind == "conversation.item.create":
            item = message.get("item", payload.get("item"))
            self._item(item)
        elif kind == "response.create":
            self.response_create()
        elif kind == "realtime.input_text":
            text_in = next((payload[key] for key in ("content", "text")
                            if isinstance(payload.get(key), str)), None)
            if text_in is None:
                self.record("client_malformed", reason="realtime.input_text without content")
            else:
                self.record("text_input", text=text_in)
        elif isinstance(kind, str) and kind.startswith("webrtc.signaling."):
            self.record("client_webrtc", type=kind)
        elif kind == "realtime.input_image":
            self.record("client_command", command=kind)
        else:
            self.record_unknown(kind)

    def _audio(self, payload: Any) -> None:
        if isinstance(payload, str) and len(payload) > MAX_AUDIO_B64_CHARS:
            self.record("client_malformed", reason="audio base64 over 4096 characters",
                        size=len(payload))
        pcm = self.decode_b64_audio(payload, "append without data.audio")
        if pcm is None:
            return
        if not self.ready:
            self.record("audio_before_ready", bytes=len(pcm))
            return
        self.take_user_audio(pcm)

    def _item(self, item: Any) -> None:
        if not isinstance(item, dict):
            self.record("client_malformed", reason="conversation.item.create without item")
            return
        item_type = item.get("type")
        if item_type == "function_call_output":
            if "call_id" not in item:
                self.record("client_malformed", reason="function_call_output without call_id")
                return
            self.take_function_output(item.get("call_id"), item.get("output"))
            return
        if item_type != "message":
            self.record("client_unknown", type=f"conversation.item.create/{item_type}")
            return
        texts = [
            part.get("text")
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "input_text"
            and isinstance(part.get("text"), str)
        ]
        if not texts:
            self.record("client_malformed", reason="message item without input_text content")
            return
        entry = {"role": item.get("role"), "text": "".join(texts)}
        self.history.append(entry)
        self.record("history_item", ready=self.ready, **entry)

    # -- turns ---
    def send_speech_started(self) -> None:
        self.send_event("realtime.input_audio_buffer.speech_started")

    def send_utterance_heard(self, utterance: SpeechEnded) -> None:
        self.speech_started_sent = False
        self.send_event("realtime.input_audio_buffer.speech_stopped")
        self.send_event(
            "realtime.conversation.item.input_audio_transcription.completed",
            {"content": user_text(utterance.seconds)},
        )

    def send_function_call(self, call: PendingCall) -> None:
        arguments = call.arguments
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        self.send_event(
            "realtime.response.function_call_arguments.done",
            {"call_id": call.call_id, "arguments": arguments, "function_name": call.name},
        )

    # -- replies ---
    @staticmethod
    def response_id(reply: ReplyStream) -> str:
        return f"resp_{reply.event_id}"

    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        text = self.reply_text(seconds)
        self.reply_texts[reply.event_id] = text
        words = text.split(" ")
        step = max(1, -(-len(words) // 3))
        for start in range(0, len(words), step):
            piece = " ".join(words[start : start + step])
            if start + step < len(words):
                piece += " "
            delta = {"content": piece, "id": self.response_id(reply)}
            self.send_event("realtime.response.audio_transcript.delta", delta)

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        self.send_event("realtime.response.audio.delta", {"delta": b64(chunk)})
        if self.options.navtalk_webrtc_noise and reply.event_id not in self.noise_sent:
            self.noise_sent.add(reply.event_id)
            self._ice_candidate()

    def send_reply_done(self, reply: ReplyStream) -> None:
        text = self.reply_texts.pop(reply.event_id, "")
        self.send_event("realtime.response.audio_transcript.done",
                        {"content": text, "id": self.response_id(reply)})
        self.send_event("realtime.response.audio.done", {"id": self.response_id(reply)})

    def send_interruption(self, reply: ReplyStream) -> None:
        self.reply_texts.pop(reply.event_id, None)
        self.speech_started()

    # -- misbehaviour ---
    def malformed_messages(self) -> list[str | bytes]:
        return [
            dumps({"type": "realtime.response.audio.delta", "data": {"delta": BAD_BASE64}}),
            dumps({"type": "realtime.response.audio.delta",
                   "data": {"delta": b64(ODD_LENGTH_PCM)}}),
            dumps({"type": "realtime.response.audio.delta"}),
            dumps({"type": "realtime.response.audio_transcript.delta", "data": None}),
            dumps({"type": "mystery.event.type", "data": {"x": 1}}),
            BINARY_GARBAGE,
        ]


class NavTalkDialect(Dialect):
    """navtalk: no REST; the handshake notes license and avatar for :class:`NavTalkSession`."""

    name = "navtalk"
    ws_path = WS_PATH
    session_class = NavTalkSession

    def authorize_handshake(self, handshake: Handshake) -> dict[str, Any]:
        """Note how the license and the avatar came; the session refuses after the handshake.

        The license travels in the query string: it is compared here and never stored or logged.
        """
        license_key = handshake.query.get("license")
        avatar_id, name = handshake.query.get("avatarId"), handshake.query.get("name")
        if license_key == self.options.api_key:
            license_state = "ok"
        else:
            license_state = "missing" if license_key is None else "bad"
        return {
            "license": license_state,
            "by": "avatarId" if avatar_id else ("name" if name else None),
            "avatar": avatar_id or name,
        }

    def config_section(self) -> dict[str, str]:
        opts = self.options
        return {"url": self.context.ws_base + WS_PATH, "license": opts.api_key,
                "name": opts.navtalk_name}
