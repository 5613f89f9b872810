"""The ``voiceapi`` dialect (token + raw binary frames), written from the seed spec.

REST ``POST /api/v1/sdk/token`` (``Authorization: Bearer KEY``) gives ``{"token", "ws_url"}``;
the client opens ``/ws`` and sends ``{"token": T}`` as its first message within 10 s.
Control messages are JSON text; audio is raw 640-byte PCM16 binary frames both ways.
There is no interruption message: on barge-in the server just stops sending.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection

from .listener import FRAME_BYTES, FRAME_MS
from .options import VOICEAPI_ERROR_CLOSE_CODES
from .reply import ReplyStream
from .session import MAX_WAIT_S, Session
from .session import dumps as _dumps

if TYPE_CHECKING:
    from .server import LocalAgent

log = logging.getLogger(__name__)

WS_PATH = "/ws"
TOKEN_PATH = "/api/v1/sdk/token"
HEARTBEAT_PATH = "/api/v1/sdk/heartbeat"
TOKEN_PURPOSE = "voiceapi"
TOKEN_TTL_S = 5 * 60
DEFAULT_ERROR_CLOSE = 4500



# --- REST -------------------------------------------------------------------------
def rest_route(
    agent: LocalAgent,
    method: str,
    path: str,
    query: dict[str, str],
    headers: Mapping[str, str],
    body: bytes = b"",
) -> tuple[int, dict[str, Any]] | None:
    """Answer a REST request, or None when the path is not part of this dialect."""
    if path not in (TOKEN_PATH, HEARTBEAT_PATH):
        return None
    if method != "POST":
        return 405, {"error": "method_not_allowed", "message": "use POST"}
    opts = agent.options
    if opts.reject_auth or headers.get("Authorization") != f"Bearer {opts.api_key}":
        agent.log.record("auth_rejected", where="rest", reason="bad_api_key")
        return 401, {"error": "unauthorized", "message": "invalid API key"}
    if path == HEARTBEAT_PATH:
        agent.log.record("http_heartbeat")
        return 200, {"status": "ok"}
    if opts.device_disabled:
        agent.log.record("auth_rejected", where="rest", reason="device_disabled")
        return 403, {"error": "device_disabled", "message": "this device is disabled"}
    token = agent.tokens.issue(TOKEN_PURPOSE, TOKEN_TTL_S)
    agent.log.record("http_token", token=token)
    return 200, {"token": token, "ws_url": f"{agent.ws_base}{WS_PATH}"}


# --- WebSocket handshake -----------------------------------------------------------
def process_request(agent: LocalAgent, connection: ServerConnection, request: Request) -> Response | None:
    """Check the path (auth happens in-band, first message); a Response refuses."""
    path = urlsplit(request.path).path
    if path != WS_PATH:
        agent.log.record("ws_bad_path", path=path)
        return connection.respond(404, "Not Found\n")
    if agent.options.reject_auth:
        agent.log.record("auth_rejected", where="ws", reason="reject_auth")
        return connection.respond(403, "Forbidden\n")
    connection.localagent_auth = {}
    return None


# --- session ------------------------------------------------------------------------
class VoiceApiSession(Session):
    """A voiceapi conversation: token first message, binary audio, silent barge-in."""

    dialect = "voiceapi"
    output_rate = 16000

    def __init__(self, agent: LocalAgent, ws: ServerConnection, auth: dict[str, Any]) -> None:
        super().__init__(agent, ws, auth)
        self.conversation_id = agent.new_conversation_id()
        self.token: str | None = None

    def _error(self, code: str, message: str) -> None:
        self.send(_dumps({"type": "error", "code": code, "message": message}))

    def authenticate(self) -> bool:
        deadline = time.monotonic() + self.options.auth_timeout_s
        while True:
            if self.agent.stopping.is_set():
                self.close(1001, "local agent stopping")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.record("auth_rejected", where="ws", reason="timeout")
                self._error("AUTH_TIMEOUT", "no token received in time")
                self.close(4001, "auth timeout")
            try:
                first = self.ws.recv(timeout=min(remaining, MAX_WAIT_S * 2))
                break
            except TimeoutError:
                continue
        token = None
        if isinstance(first, str):
            try:
                parsed = json.loads(first)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("token"), str) and parsed["token"]:
                token = parsed["token"]
        if token is None:
            self.record("auth_rejected", where="ws", reason="token_required")
            self.close(4002, "token required")
        status = self.agent.tokens.redeem(token, TOKEN_PURPOSE)
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
            close_code = VOICEAPI_ERROR_CLOSE_CODES.get(code, DEFAULT_ERROR_CLOSE)
            self._error(code, f"simulated {code}")
            self.record("error_sent", code=code, close_code=close_code)
            self.close(close_code, code.lower())
        self.send(_dumps({"type": "connected"}))
        self.send(_dumps({"type": "agent_ready"}))

    def close_normally(self, reason: str) -> None:
        ended = "server_shutdown" if reason == "close_after_s" else "session_closed"
        self.send(_dumps({"type": "session_ended", "reason": ended}))
        self.close(1000, reason)

    # --- receive ---
    def on_binary(self, data: bytes) -> None:
        self.take_user_audio(data)

    def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if message is None:
            return
        kind = message.get("type")
        self.record("client_unknown", type=kind if isinstance(kind, str) else repr(kind))

    # --- replies: whole 640-byte frames only ---
    def chunk_bytes(self) -> int:
        return max(1, round(self.options.chunk_ms / FRAME_MS)) * FRAME_BYTES

    def reply_audio(self, utterance_pcm: bytes) -> bytes:
        short = -len(utterance_pcm) % FRAME_BYTES
        return utterance_pcm + bytes(short)

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        for start in range(0, len(chunk), FRAME_BYTES):
            frame = chunk[start : start + FRAME_BYTES]
            self.send(frame + bytes(FRAME_BYTES - len(frame)))

    # --- misbehaviour ---
    def garbage(self) -> list[str | bytes]:
        return [
            "this is not JSON {",
            "[1, 2, 3]",
            bytes(range(256)) * 2 + bytes(127),  # 639 bytes: odd-length PCM
            _dumps({"type": "mystery_event_type", "mystery_event": {"x": 1}}),
            _dumps({"type": "error"}),  # known type, code and message missing
            _dumps({"type": 42}),  # type that is not even a string
            self.oversized_garbage(),
        ]

