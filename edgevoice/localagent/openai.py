"""The ``openai`` dialect: the OpenAI Realtime API over WebSocket, from
``docs/protocols/openai-realtime.md`` (GA event names; beta names with
``options.openai_beta_names``).

- ``POST /v1/realtime/client_secrets`` (``Authorization: Bearer <api_key>``): a one-use
  client secret ``{"value": "ek_...", "expires_at": ...}`` (the daemon's ``token_url``).
- WebSocket ``/v1/realtime?model=M`` with ``Authorization: Bearer <key or ek_ secret>`` (or
  Azure's ``api-key`` header). A missing header is refused at the handshake (401); a wrong
  key is accepted, told ``error`` ``invalid_api_key`` and closed 3000, as OpenAI does.
- ``session.created`` on open; ``session.update`` (GA or beta shape) answered with
  ``session.updated`` echoing it; its ``tools`` are the functions the agent may call.
- ``input_audio_buffer.append`` at 24 kHz; the server VAD sends ``speech_started``,
  ``speech_stopped``, ``committed``, the user's transcript, then the answer:
  ``response.created``, ``response.output_audio.delta`` (item ``item_N``), transcript
  delta/done, ``response.done``.
- Talking over the answer: ``speech_started`` and ``response.done`` ``cancelled``
  (``turn_detected``). ``response.cancel``: ``response.done`` ``cancelled``
  (``client_cancelled``), or ``error`` ``response_cancel_not_active`` when nothing is
  generating (recorded as ``response_cancel`` with ``active``).
  ``conversation.item.truncate``: recorded as ``truncate`` (item_id, audio_end_ms,
  sent_ms) and confirmed with ``conversation.item.truncated``; an ``audio_end_ms`` beyond
  the audio sent of that item is an ``error`` (``invalid_value``).
- ``options.close_after_s``: close 1001 "session hit the maximum duration".
- Function calls: on the first utterance, ``options.function_call`` or else the first tool
  the client declared is called (``response.function_call_arguments.done``); the answer
  starts on the ``response.create`` that follows its ``function_call_output`` item.
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from typing import Any

from websockets.sync.server import ServerConnection

from .calls import PendingCall, user_text
from .context import DialectContext
from .dialect import Dialect, Handshake, HandshakeRefused, RestAnswer, RestRequest
from .listener import SpeechEnded
from .reply import ReplyStream
from .servervad import RATE, ServerVadSession
from .session import b64

WS_PATH = "/v1/realtime"
SECRETS_PATH = "/v1/realtime/client_secrets"
SECRET_PREFIX = "ek_"
TOKEN_PURPOSE = "openai"
SECRET_TTL_S = 600
GA_NAMES = {"audio": "response.output_audio.delta",
            "audio_done": "response.output_audio.done",
            "transcript": "response.output_audio_transcript.delta",
            "transcript_done": "response.output_audio_transcript.done"}
BETA_NAMES = {"audio": "response.audio.delta", "audio_done": "response.audio.done",
              "transcript": "response.audio_transcript.delta",
              "transcript_done": "response.audio_transcript.done"}


class OpenAISession(ServerVadSession):
    """One Realtime session: server VAD turns, echo answers, cancels and truncates."""

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.item_of: dict[int, str] = {}  # reply event_id -> its audio item id
        self.sent_of: dict[str, ReplyStream] = {}  # item id -> its reply
        self.generating: ReplyStream | None = None  # response in progress (not done)
        self.transcript = ""  # of the reply under way, for its transcript.done
        self.names = BETA_NAMES if self.options.openai_beta_names else GA_NAMES

    def event(self, kind: str, **fields: Any) -> None:
        self.send_json({"type": kind, "event_id": self.context.next_id("event"), **fields})

    def error(self, code: str, message: str, kind: str = "invalid_request_error") -> None:
        self.event("error", error={"type": kind, "code": code, "message": message})

    # -- opening ---
    def on_open(self) -> None:
        self.record("ws_open", auth=self.auth.get("auth"), model=self.auth.get("model"))
        if self.auth.get("auth") == "bad_key":
            self.error("invalid_api_key", "Incorrect API key provided.")
            self.close(3000, "invalid_request_error.invalid_api_key")
        self.event("session.created", session=self._session({}))

    def _session(self, update: dict[str, Any]) -> dict[str, Any]:
        session = {"id": self.conversation_id, "object": "realtime.session",
                   "model": self.auth.get("model"), **update}
        if not self.options.openai_beta_names:
            audio = session.setdefault("audio", {})
            if isinstance(audio, dict):
                audio.setdefault("output", {})["format"] = {"type": "audio/pcm", "rate": RATE}
        return session

    def close_normally(self, reason: str) -> None:
        if reason == "close_after_s":  # what OpenAI does when a session reaches its limit
            self.close(1001, "Your session hit the maximum duration of 60 minutes.")
        super().close_normally(reason)

    # -- receive ---
    def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if message is None:
            return
        kind = message.get("type")
        if kind == "input_audio_buffer.append":
            pcm = self.decode_b64_audio(message.get("audio"), "append without audio")
            if pcm is not None:
                self.take_user_audio(pcm)
        elif kind == "session.update":
            self._session_update(message.get("session"))
        elif kind == "conversation.item.create":
            self._item(message.get("item"))
        elif kind == "response.create":
            self.response_create()
        elif kind == "response.cancel":
            self._cancel()
        elif kind == "conversation.item.truncate":
            self._truncate(message)
        else:
            self.record_unknown(kind)

    def _session_update(self, session: Any) -> None:
        if not isinstance(session, dict):
            self.error("missing_required_parameter", "session.update without session")
            self.record("client_malformed", reason="session.update without session")
            return
        tools = session.get("tools")
        if isinstance(tools, list):
            self.declared_functions = [str(t.get("name")) for t in tools if isinstance(t, dict)
                                       and t.get("type") == "function"]
        self.record("session_update", session=session, tools=self.declared_functions)
        self.event("session.updated", session=self._session(session))

    def _item(self, item: Any) -> None:
        if not isinstance(item, dict):
            self.record("client_malformed", reason="conversation.item.create without item")
            return
        if item.get("type") == "function_call_output":
            self.take_function_output(item.get("call_id"), item.get("output"))
        elif item.get("type") == "message":
            texts = [part.get("text") for part in item.get("content") or []
                     if isinstance(part, dict) and isinstance(part.get("text"), str)]
            self.record("history_item", role=item.get("role"), text="".join(texts))
        else:
            self.record("client_unknown", type=f"conversation.item.create/{item.get('type')}")
        self.event("conversation.item.added", item=item)

    def _cancel(self) -> None:
        reply = self.generating
        self.record("response_cancel", active=reply is not None)
        if reply is None:
            self.error("response_cancel_not_active",
                       "Cancellation failed: no active response found")
            return
        self._cut(reply, "client_cancelled", time.monotonic())

    def _truncate(self, message: dict[str, Any]) -> None:
        item_id, end_ms = message.get("item_id"), message.get("audio_end_ms")
        reply = self.sent_of.get(item_id) if isinstance(item_id, str) else None
        sent_ms = round(reply.sent_seconds * 1000) if reply is not None else None
        self.record("truncate", item_id=item_id, audio_end_ms=end_ms, sent_ms=sent_ms)
        if reply is None or not isinstance(end_ms, int) or isinstance(end_ms, bool):
            self.error("invalid_value", "truncate needs a known item_id and an audio_end_ms")
        elif end_ms > sent_ms:
            self.error("invalid_value", f"audio_end_ms {end_ms} is beyond the {sent_ms} ms "
                       "of audio sent")
        else:
            self.event("conversation.item.truncated", item_id=item_id, content_index=0,
                       audio_end_ms=end_ms)

    # -- turns ---
    def send_speech_started(self) -> None:
        ms = round(self.audio_seconds * 1000)
        self.event("input_audio_buffer.speech_started", audio_start_ms=ms,
                   item_id=self.context.next_id("item"))

    def send_utterance_heard(self, utterance: SpeechEnded) -> None:
        self.speech_started_sent = False
        item_id = self.context.next_id("item")
        self.event("input_audio_buffer.speech_stopped",
                   audio_end_ms=round(utterance.at * 1000), item_id=item_id)
        self.event("input_audio_buffer.committed", item_id=item_id)
        self.event("conversation.item.input_audio_transcription.completed", item_id=item_id,
                   content_index=0, transcript=user_text(utterance.seconds))

    def send_function_call(self, call: PendingCall) -> None:
        arguments = call.arguments
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        response_id, item_id = self.context.next_id("resp"), self.context.next_id("item")
        self.event("response.created", response={"id": response_id, "status": "in_progress"})
        self.event("response.function_call_arguments.done", response_id=response_id,
                   item_id=item_id, output_index=0, call_id=call.call_id, name=call.name,
                   arguments=arguments)
        self.event("response.done", response={
            "id": response_id, "status": "completed",
            "output": [{"type": "function_call", "id": item_id, "call_id": call.call_id,
                        "name": call.name, "arguments": arguments}]})

    # -- replies ---
    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        item_id = self.context.next_id("item")
        self.item_of[reply.event_id] = item_id
        self.sent_of[item_id] = reply
        if len(self.sent_of) > 32:
            self.sent_of.pop(next(iter(self.sent_of)))
        self.generating = reply
        self.event("response.created",
                   response={"id": f"resp_{reply.event_id}", "status": "in_progress"})
        self.event("response.output_item.added", response_id=f"resp_{reply.event_id}",
                   output_index=0, item={"id": item_id, "type": "message", "role": "assistant"})
        text = self.reply_text(seconds)
        self.transcript = text
        self.event(self.names["transcript"], response_id=f"resp_{reply.event_id}",
                   item_id=item_id, output_index=0, content_index=0, delta=text)

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        self.event(self.names["audio"], response_id=f"resp_{reply.event_id}",
                   item_id=self.item_of[reply.event_id], output_index=0, content_index=0,
                   delta=b64(chunk))

    def send_reply_done(self, reply: ReplyStream) -> None:
        response_id, item_id = f"resp_{reply.event_id}", self.item_of[reply.event_id]
        self.event(self.names["audio_done"], response_id=response_id, item_id=item_id,
                   output_index=0, content_index=0)
        self.event(self.names["transcript_done"], response_id=response_id, item_id=item_id,
                   output_index=0, content_index=0, transcript=self.transcript)
        self._done(reply, "completed", None)

    def _done(self, reply: ReplyStream, status: str, reason: str | None) -> None:
        if self.generating is reply:
            self.generating = None
        details = {"type": status, "reason": reason} if reason else None
        self.event("response.done", response={
            "id": f"resp_{reply.event_id}", "status": status, "status_details": details,
            "output": [{"id": self.item_of[reply.event_id], "type": "message",
                        "role": "assistant"}]})

    def send_interruption(self, reply: ReplyStream) -> None:
        """The server VAD heard the user over its answer (``turn_detected``)."""
        self.speech_started()
        if self.generating is reply:
            self._done(reply, "cancelled", "turn_detected")
        self.send_late_audio(reply)

    def _cut(self, reply: ReplyStream, reason: str, now: float) -> None:
        """Cancel the response in progress at the client's request."""
        reply.cancel()
        self._done(reply, "cancelled", reason)
        self.record("interrupted", event_id=reply.event_id, t=now, by="client",
                    played_s=round(now - reply.start, 3) if reply.start else 0.0,
                    sent_s=reply.sent_seconds)
        self._record_reply_end(reply, interrupted=True)
        self.send_late_audio(reply)


class OpenAIDialect(Dialect):
    """openai: client secrets over REST, Bearer / api-key handshakes, :class:`OpenAISession`."""

    name = "openai"
    ws_path = WS_PATH
    session_class = OpenAISession

    def rest_route(self, request: RestRequest) -> RestAnswer | None:
        return self.client_secret(request) if request.path == SECRETS_PATH else None

    def client_secret(self, request: RestRequest) -> RestAnswer:
        """``POST`` a client secret (``Authorization: Bearer <api_key>``)."""
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = self.issue_token(request, presented, TOKEN_PURPOSE, SECRET_TTL_S, _error)
        if isinstance(token, RestAnswer):
            return token
        value = SECRET_PREFIX + token
        return RestAnswer(HTTPStatus.OK, {"value": value,
                                          "expires_at": int(time.time()) + SECRET_TTL_S,
                                          "session": {"type": "realtime"}})

    def authorize_handshake(self, handshake: Handshake) -> dict[str, Any]:
        """A Bearer key or one-use ``ek_`` secret, or Azure's ``api-key`` header."""
        header = handshake.headers.get("Authorization")
        key = header.removeprefix("Bearer ") if header else handshake.headers.get("api-key")
        if not key:
            raise HandshakeRefused(HTTPStatus.UNAUTHORIZED, "missing_authorization")
        model = handshake.query.get("model") or handshake.query.get("deployment")
        if key.startswith(SECRET_PREFIX):
            status = self.context.tokens.redeem(key.removeprefix(SECRET_PREFIX), TOKEN_PURPOSE)
            if status != "ok":
                raise HandshakeRefused(HTTPStatus.UNAUTHORIZED, f"client_secret_{status}")
            return {"auth": "client_secret", "token": key, "model": model}
        return {"auth": "api_key" if key == self.options.api_key else "bad_key", "model": model}

    def config_section(self) -> dict[str, str]:
        return {"url": self.context.ws_base + WS_PATH,
                "token_url": self.context.http_base + SECRETS_PATH,
                "token_key": self.options.api_key}


def _error(status: int, code: str, message: str) -> RestAnswer:
    """OpenAI's error body ``{"error": {"type", "code", "message"}}``."""
    return RestAnswer(status, {"error": {"type": "invalid_request_error", "code": code,
                                         "message": message}})
