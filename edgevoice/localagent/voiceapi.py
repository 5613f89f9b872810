"""The ``voiceapi`` dialect (token + raw binary frames), written from the seed spec.

REST ``POST /api/v1/sdk/token`` (``Authorization: Bearer KEY``) gives ``{"token", "ws_url"}``;
the client opens ``/ws`` and sends ``{"token": T}`` as its first message within 10 s.
Control messages are JSON text; audio is raw 640-byte PCM16 binary frames both ways.
There is no interruption message: on barge-in the server just stops sending.
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from typing import Any

from websockets.sync.server import ServerConnection

from .context import DialectContext
from .dialect import Dialect, RestAnswer, RestRequest
from .listener import FRAME_BYTES, FRAME_MS
from .reply import ReplyStream
from .session import MAX_WAIT_S, Session, dumps

WS_PATH = "/ws"
TOKEN_PATH = "/api/v1/sdk/token"
HEARTBEAT_PATH = "/api/v1/sdk/heartbeat"
TOKEN_PURPOSE = "voiceapi"
TOKEN_TTL_S = 5 * 60
#: error code (``options.error_code``) -> WebSocket close code used after sending it
ERROR_CLOSE_CODES = {
    "AUTH_TIMEOUT": 4001,
    "AUTH_FAILED": 4003,
    "INVALID_AUTH": 4003,
    "SESSION_SETUP_FAILED": 4500,
}
DEFAULT_ERROR_CLOSE = 4500


class VoiceApiSession(Session):
    """A voiceapi conversation: token first message, binary audio, silent barge-in."""

    output_rate = 16000

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.token: str | None = None

    def _error(self, code: str, message: str) -> None:
        self.send_json({"type": "error", "code": code, "message": message})

    def authenticate(self) -> bool:
        deadline = time.monotonic() + self.options.auth_timeout_s
        while True:
            if self.context.stopping.is_set():
                self.close(1001, "local agent stopping")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.record("auth_rejected", where="ws", reason="timeout")
                self._error("AUTH_TIMEOUT", "no token received in time")
                self.close(4001, "auth timeout")
            try:
                first = self.connection.recv(timeout=min(remaining, MAX_WAIT_S * 2))
                break
            except TimeoutError:
                continue
        token = None
        if isinstance(first, str):
            try:
                parsed = json.loads(first)
            except ValueError:
                parsed = None
            candidate = parsed.get("token") if isinstance(parsed, dict) else None
            if isinstance(candidate, str) and candidate:
                token = candidate
        if token is None:
            self.record("auth_rejected", where="ws", reason="token_required")
            self.close(4002, "token required")
        status = self.context.tokens.redeem(token, TOKEN_PURPOSE)
        if status != "ok":
            self.record("auth_rejected", where="ws", reason=f"token_{status}")
            self._error("AUTH_FAILED", "invalid or expired token")
            self.close(4003, "auth failed")
        self.token = token
        return True

    def on_open(self) -> None:
        self.record("ws_open", token=self.token)
        code = self.options.error_code
        if code:
            close_code = ERROR_CLOSE_CODES.get(code, DEFAULT_ERROR_CLOSE)
            self._error(code, f"simulated {code}")
            self.record("error_sent", code=code, close_code=close_code)
            self.close(close_code, code.lower())
        self.send_json({"type": "connected"})
        self.send_json({"type": "agent_ready"})

    def close_normally(self, reason: str) -> None:
        ended = "server_shutdown" if reason == "close_after_s" else "session_closed"
        self.send_json({"type": "session_ended", "reason": ended})
        self.close(1000, reason)

    # -- receive ---
    def on_binary(self, data: bytes) -> None:
        self.take_user_audio(data)

    def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if message is None:
            return
        self.record_unknown(message.get("type"))

    # -- replies: whole 640-byte frames only ---
    def chunk_bytes(self) -> int:
        return max(1, round(self.options.chunk_ms / FRAME_MS)) * FRAME_BYTES

    def reply_audio(self, utterance_pcm: bytes) -> bytes:
        short = -len(utterance_pcm) % FRAME_BYTES
        return utterance_pcm + bytes(short)

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        for start in range(0, len(chunk), FRAME_BYTES):
            frame = chunk[start : start + FRAME_BYTES]
            self.send(frame + bytes(FRAME_BYTES - len(frame)))

    # -- misbehaviour ---
    def malformed_messages(self) -> list[str | bytes]:
        return [
            bytes(range(256)) * 2 + bytes(127),  # 639 bytes: odd-length PCM
            dumps({"type": "mystery_event_type", "mystery_event": {"x": 1}}),
            dumps({"type": "error"}),  # known type, code and message missing
            dumps({"type": 42}),  # type that is not even a string
        ]


class VoiceApiDialect(Dialect):
    """voiceapi: token and heartbeat endpoints, in-band token auth, :class:`VoiceApiSession`."""

    name = "voiceapi"
    ws_path = WS_PATH
    session_class = VoiceApiSession

    def config_section(self) -> dict[str, str]:
        return {"api_url": self.context.http_base, "api_key": self.options.api_key}

    def rest_route(self, request: RestRequest) -> RestAnswer | None:
        """``POST`` the token endpoint (``device_disabled``: 403) or the heartbeat."""
        if request.path not in (TOKEN_PATH, HEARTBEAT_PATH):
            return None
        if request.method != "POST":
            return RestAnswer.error(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
        opts = self.options
        if self.rest_key_refused(request.headers.get("Authorization"), f"Bearer {opts.api_key}"):
            return RestAnswer.error(HTTPStatus.UNAUTHORIZED, "unauthorized", "invalid API key")
        if request.path == HEARTBEAT_PATH:
            self.context.record("http_heartbeat")
            return RestAnswer(HTTPStatus.OK, {"status": "ok"})
        if opts.device_disabled:
            self.context.record("auth_rejected", where="rest", reason="device_disabled")
            return RestAnswer.error(HTTPStatus.FORBIDDEN, "device_disabled",
                                    "this device is disabled")
        token = self.context.tokens.issue(TOKEN_PURPOSE, TOKEN_TTL_S)
        self.context.record("http_token", token=token)
        ws_url = f"{self.context.ws_base}{WS_PATH}"
        return RestAnswer(HTTPStatus.OK, {"token": token, "ws_url": ws_url})

    # The handshake only checks the path: the token comes in-band (VoiceApiSession.authenticate).
