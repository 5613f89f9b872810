"""The ``gemini`` dialect: the Gemini Live API over WebSocket, from
``docs/protocols/gemini-live.md``.

- ``POST /v1alpha/auth_tokens`` (``x-goog-api-key``): a one-use ephemeral token
  ``{"name": "auth_tokens/..."}`` (the daemon's ``token_url``).
- WebSocket ``…v1beta.GenerativeService.BidiGenerateContent`` with ``x-goog-api-key`` (or
  ``?key=``), or ``…v1alpha.GenerativeService.BidiGenerateContentConstrained`` with
  ``Authorization: Token auth_tokens/...`` (or ``?access_token=``); refused 403 otherwise.
- The first message must be ``setup`` (else close 1007); ``setupComplete`` answers it.
  Keys are read in camelCase and snake_case.
- ``realtimeInput.audio`` (or ``mediaChunks``) at 16 kHz; the emulated VAD answers with
  ``serverContent.inputTranscription``, then ``modelTurn`` parts of ``inlineData`` audio at
  24 kHz (every other one in a binary frame), ``outputTranscription`` and ``turnComplete``.
- Talking over the answer: ``serverContent.interrupted`` then ``turnComplete``.
- Function calls: on the first utterance, ``options.function_call`` or else the first
  declared function: ``toolCall`` and, once ``toolResponse.functionResponses[].id``
  answers it, the answer (see :mod:`.calls`); ``gemini_cancel_tool_calls`` takes each
  call back at once (``toolCallCancellation``, recorded as ``function_cancelled``).
- With ``sessionResumption`` in the setup: a ``sessionResumptionUpdate`` with a fresh
  handle after setup and after each turn; a later ``setup`` naming a known handle
  continues that conversation id (``setup`` ``resumed``: that id), an unknown one is closed 1007.
  ``options.gemini_go_away_after_s``: ``goAway {timeLeft: "1s"}``, then close 1000.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http import HTTPStatus
from typing import Any

from websockets.sync.server import ServerConnection

from .calls import CallingSession, PendingCall, user_text
from .context import DialectContext
from .dialect import Dialect, Handshake, HandshakeRefused, RestAnswer, RestRequest
from .listener import SpeechEnded
from .reply import ReplyStream
from .session import b64, dumps

SERVICE = "/ws/google.ai.generativelanguage.{}.GenerativeService.{}"
WS_PATH = SERVICE.format("v1beta", "BidiGenerateContent")
TOKEN_WS_PATH = SERVICE.format("v1alpha", "BidiGenerateContentConstrained")
TOKENS_PATH = "/v1alpha/auth_tokens"
TOKEN_PREFIX = "auth_tokens/"
TOKEN_PURPOSE = "gemini"
TOKEN_TTL_S = 30 * 60
OUTPUT_RATE = 24000
GO_AWAY_GRACE_S = 1.0
MAX_HANDLES = 256


def field(obj: Any, camel: str) -> Any:
    """``obj[camel]``, or ``obj[camel_in_snake_case]``: proto JSON takes both spellings."""
    if not isinstance(obj, dict):
        return None
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj[camel] if obj.get(camel) is not None else obj.get(snake)


class Handles:
    """Resumption handles the agent issued, by the conversation id each continues."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conversation: dict[str, str] = {}

    def issue(self, conversation_id: str) -> str:
        handle = "Cg" + secrets.token_urlsafe(18)
        with self._lock:
            self._conversation[handle] = conversation_id
            while len(self._conversation) > MAX_HANDLES:
                self._conversation.pop(next(iter(self._conversation)))
        return handle

    def conversation(self, handle: str) -> str | None:
        with self._lock:
            return self._conversation.get(handle)


class GeminiSession(CallingSession):
    """One Live session: setup, emulated VAD turns, echo answers, tool calls, resumption."""

    output_rate = OUTPUT_RATE

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.handles: Handles = auth.pop("handles", None) or Handles()
        self.setup: dict[str, Any] | None = None
        self.resumption = False
        self.go_away_at: float | None = None
        self.close_at: float | None = None
        self.frames_sent = 0

    def send_content(self, content: dict[str, Any]) -> None:
        self.send_json({"serverContent": content})

    def on_open(self) -> None:
        self.record("ws_open", auth=self.auth.get("auth"))

    # -- receive ---
    def on_binary(self, data: bytes) -> None:
        try:
            self.on_text(data.decode("utf-8"))
        except UnicodeDecodeError:
            self.record("client_malformed", reason="binary frame is not UTF-8 JSON")

    def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if message is None:
            return
        setup = field(message, "setup")
        if self.setup is None:
            if not isinstance(setup, dict):
                self.record("client_malformed", reason="first message is not setup")
                self.close(1007, "Request contains an invalid argument.")
            self._setup(setup)
            return
        realtime = field(message, "realtimeInput")
        tool_response = field(message, "toolResponse")
        if isinstance(realtime, dict):
            self._realtime(realtime)
        elif isinstance(tool_response, dict):
            self._tool_response(tool_response)
        elif field(message, "clientContent") is not None:
            self.record("client_command", command="clientContent")
        else:
            self.record_unknown(next(iter(message), None))

    def _setup(self, setup: dict[str, Any]) -> None:
        self.setup = setup
        resumption = field(setup, "sessionResumption")
        self.resumption = isinstance(resumption, dict)
        handle = field(resumption, "handle")
        resumed = None
        if isinstance(handle, str) and handle:
            resumed = self.handles.conversation(handle)
            if resumed is None:
                self.record("resume_refused")
                self.close(1007, "Session resumption handle is invalid or expired.")
            self.conversation_id = resumed
        for tool in field(setup, "tools") or []:
            declared = field(tool, "functionDeclarations")
            if isinstance(declared, list):
                self.declared_functions += [str(field(f, "name")) for f in declared
                                            if isinstance(f, dict)]
        self.record("setup", setup=setup, model=field(setup, "model"), resumed=resumed)
        self.send_json({"setupComplete": {}})
        self._resumption_update()
        after = self.options.gemini_go_away_after_s
        if after is not None:
            self.go_away_at = self.opened_at + after

    def _resumption_update(self) -> None:
        if self.resumption:
            self.send_json({"sessionResumptionUpdate": {
                "newHandle": self.handles.issue(self.conversation_id), "resumable": True}})

    def _realtime(self, realtime: dict[str, Any]) -> None:
        audio = field(realtime, "audio")
        chunks = [audio] if isinstance(audio, dict) else field(realtime, "mediaChunks")
        if not isinstance(chunks, list):
            self.record("client_unknown", type=f"realtimeInput/{next(iter(realtime), None)}")
            return
        for chunk in chunks:
            mime = field(chunk, "mimeType")
            if not (isinstance(mime, str) and mime.startswith("audio/pcm")):
                self.record("client_malformed", reason=f"realtimeInput mimeType {mime!r}")
                continue
            pcm = self.decode_b64_audio(field(chunk, "data"), "realtimeInput without data")
            if pcm is not None:
                self.take_user_audio(pcm)

    def _tool_response(self, tool_response: dict[str, Any]) -> None:
        responses = field(tool_response, "functionResponses")
        if not isinstance(responses, list):
            self.record("client_malformed", reason="toolResponse without functionResponses")
            return
        for response in responses:
            result = field(response, "response")
            output = field(result, "result")
            if output is None:
                output = json.dumps(result)
            if self.take_function_output(field(response, "id"), output):
                self.finish_call()

    # -- timed ---
    def on_tick(self, now: float) -> float | None:
        wakes = [CallingSession.on_tick(self, now)]
        if self.go_away_at is not None:
            if now >= self.go_away_at:
                self.go_away_at = None
                self.close_at = now + GO_AWAY_GRACE_S
                self.send_json({"goAway": {"timeLeft": f"{GO_AWAY_GRACE_S:g}s"}})
                self.record("go_away_sent")
            wakes.append(self.go_away_at)
        if self.close_at is not None:
            if now >= self.close_at:
                self.close(1000, "session over after goAway")
            wakes.append(self.close_at)
        due = [wake for wake in wakes if wake is not None]
        return min(due) if due else None

    # -- turns ---
    def send_utterance_heard(self, utterance: SpeechEnded) -> None:
        self.send_content({"inputTranscription": {"text": user_text(utterance.seconds)}})

    def send_function_call(self, call: PendingCall) -> None:
        args = call.arguments
        if isinstance(args, str):
            args = json.loads(args or "{}")
        self.send_json({"toolCall": {"functionCalls": [
            {"id": call.call_id, "name": call.name, "args": args}]}})
        if self.options.gemini_cancel_tool_calls:  # answered now, as on a timeout
            self.send_json({"toolCallCancellation": {"ids": [call.call_id]}})
            self.record("function_cancelled", call_id=call.call_id)
            call.deadline = time.monotonic()

    # -- replies ---
    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        self.send_content({"outputTranscription": {"text": self.reply_text(seconds)}})

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        part = {"inlineData": {"mimeType": f"audio/pcm;rate={OUTPUT_RATE}", "data": b64(chunk)}}
        text = dumps({"serverContent": {"modelTurn": {"parts": [part]}}})
        self.frames_sent += 1
        self.send(text.encode() if self.frames_sent % 2 else text)  # both frame kinds

    def send_reply_done(self, reply: ReplyStream) -> None:
        self.send_content({"generationComplete": True})
        self.send_content({"turnComplete": True})
        self._resumption_update()

    def send_interruption(self, reply: ReplyStream) -> None:
        self.send_content({"interrupted": True})
        self.send_content({"turnComplete": True})


class GeminiDialect(Dialect):
    """gemini: ephemeral tokens over REST, key or token handshakes, :class:`GeminiSession`."""

    name = "gemini"
    ws_path = WS_PATH
    extra_ws_paths = (TOKEN_WS_PATH,)
    session_class = GeminiSession

    def __init__(self, context: DialectContext) -> None:
        super().__init__(context)
        self.handles = Handles()

    def rest_route(self, request: RestRequest) -> RestAnswer | None:
        """``POST`` an ephemeral token (``x-goog-api-key``, or ``Authorization: Bearer``)."""
        if request.path != TOKENS_PATH:
            return None
        presented = request.headers.get("x-goog-api-key") or request.headers.get(
            "Authorization", "").removeprefix("Bearer ")
        token = self.issue_token(request, presented, TOKEN_PURPOSE, TOKEN_TTL_S, _error)
        if isinstance(token, RestAnswer):
            return token
        name = TOKEN_PREFIX + token
        return RestAnswer(HTTPStatus.OK, {"name": name, "uses": 1})

    def authorize_handshake(self, handshake: Handshake) -> dict[str, Any]:
        if handshake.path == TOKEN_WS_PATH:
            header = handshake.headers.get("Authorization") or ""
            token = header.removeprefix("Token ") if header.startswith("Token ") else \
                handshake.query.get("access_token")
            if not token:
                raise HandshakeRefused(HTTPStatus.FORBIDDEN, "missing_token")
            status = self.context.tokens.redeem(token.removeprefix(TOKEN_PREFIX),
                                                TOKEN_PURPOSE)
            if status != "ok":
                raise HandshakeRefused(HTTPStatus.FORBIDDEN, f"token_{status}")
            return {"auth": "token", "handles": self.handles}
        key = handshake.headers.get("x-goog-api-key") or handshake.query.get("key")
        if key != self.options.api_key:
            raise HandshakeRefused(HTTPStatus.FORBIDDEN, "bad_api_key")
        return {"auth": "api_key", "handles": self.handles}

    def config_section(self) -> dict[str, str]:
        return {"url": self.context.ws_base + WS_PATH,
                "token_ws_url": self.context.ws_base + TOKEN_WS_PATH,
                "token_url": self.context.http_base + TOKENS_PATH,
                "token_key": self.options.api_key}


def _error(status: int, code: str, message: str) -> RestAnswer:
    """Google's error body ``{"error": {"code", "message", "status"}}`` (``code`` unused)."""
    return RestAnswer(status, {"error": {"code": int(status), "message": message,
                                         "status": HTTPStatus(status).name}})
