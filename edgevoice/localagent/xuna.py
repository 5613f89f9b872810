"""The ``xuna`` dialect (mirrors ElevenLabs Conversational AI), written from the seed spec.

WebSocket ``/v1/convai/conversation?agent_id=ID`` (public) or ``?token=T`` (signed URL
from ``GET /v1/convai/conversation/get-signed-url?agent_id=ID`` with ``xi-api-key``).
JSON text frames both ways; audio is base64 PCM16 inside ``audio`` events. The server
pings, transcribes (fakes it), answers with the user's own utterance and announces
barge-in with ``interruption``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection

from .reply import ReplyStream
from .session import Session
from .session import b64 as _b64
from .session import dumps as _dumps

if TYPE_CHECKING:
    from .server import LocalAgent

log = logging.getLogger(__name__)

WS_PATH = "/v1/convai/conversation"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
TOKEN_PURPOSE = "xuna"
SIGNED_URL_TTL_S = 15 * 60
LATE_CHUNKS = 3





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
    if path != SIGNED_URL_PATH:
        return None
    if method != "GET":
        return 405, {"detail": {"status": "method_not_allowed", "message": "use GET"}}
    opts = agent.options
    if opts.reject_auth or headers.get("xi-api-key") != opts.api_key:
        agent.log.record("auth_rejected", where="rest", reason="bad_api_key")
        return 401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
    agent_id = query.get("agent_id")
    if not agent_id:
        return 422, {"detail": {"status": "missing_agent_id", "message": "agent_id is required"}}
    if agent_id != opts.agent_id:
        return 404, {"detail": {"status": "agent_not_found", "message": f"agent {agent_id} not found"}}
    token = agent.tokens.issue(TOKEN_PURPOSE, SIGNED_URL_TTL_S)
    agent.log.record("http_signed_url", agent_id=agent_id)
    return 200, {"signed_url": f"{agent.ws_base}{WS_PATH}?token={token}"}


# --- WebSocket handshake -----------------------------------------------------------
def process_request(agent: LocalAgent, connection: ServerConnection, request: Request) -> Response | None:
    """Authenticate the opening handshake; a Response refuses it."""
    url = urlsplit(request.path)
    if url.path != WS_PATH:
        agent.log.record("ws_bad_path", path=url.path)
        return connection.respond(404, "Not Found\n")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    opts = agent.options

    def refuse(reason: str) -> Response:
        agent.log.record("auth_rejected", where="ws", reason=reason)
        return connection.respond(403, "Forbidden\n")

    if opts.reject_auth:
        return refuse("reject_auth")
    token = query.get("token")
    if token is not None:
        status = agent.tokens.redeem(token, TOKEN_PURPOSE)
        if status != "ok":
            return refuse(f"token_{status}")
        connection.localagent_auth = {"auth": "signed", "token": token}
        return None
    agent_id = query.get("agent_id")
    if agent_id is None:
        return refuse("missing_agent_id")
    if agent_id != opts.agent_id:
        return refuse("unknown_agent_id")
    if opts.private:
        return refuse("private_agent_needs_signed_url")
    connection.localagent_auth = {"auth": "public"}
    return None


# --- session ------------------------------------------------------------------------
class XunaSession(Session):
    """A xuna conversation: metadata, pings, transcripts, echo replies, interruptions."""

    dialect = "xuna"

    def __init__(self, agent: LocalAgent, ws: ServerConnection, auth: dict[str, Any]) -> None:
        super().__init__(agent, ws, auth)
        self.output_rate = int(self.options.output_rate)
        self.conversation_id = agent.new_conversation_id()
        self.next_ping_at: float | None = None
        self.pings_sent = 0
        self.outstanding_pings: dict[int, float] = {}
        self.messages_seen = 0

    def on_open(self) -> None:
        self.record("ws_open", **self.auth)
        self.send(
            _dumps(
                {
                    "type": "conversation_initiation_metadata",
                    "conversation_initiation_metadata_event": {
                        "conversation_id": self.conversation_id,
                        "agent_output_audio_format": f"pcm_{self.output_rate}",
                    },
                }
            )
        )

    # --- receive ---
    def on_binary(self, data: bytes) -> None:
        self.record("client_unknown", binary_bytes=len(data))

    def on_text(self, text: str) -> None:
        self.messages_seen += 1
        message = self.parse_json(text)
        if message is None:
            return
        kind = message.get("type")
        if "user_audio_chunk" in message and kind in (None, "user_audio_chunk"):
            self._audio(message.get("user_audio_chunk"))
        elif kind == "audio":
            event = message.get("audio_event")
            self._audio(event.get("audio_base_64") if isinstance(event, dict) else None)
        elif kind == "conversation_initiation_client_data":
            self.record("client_init", message=message, first=self.messages_seen == 1)
        elif kind == "user_activity":
            self.record("user_activity")
        elif kind == "pong":
            self._pong(message)
        elif kind == "client_tool_result":
            self.record("tool_result", message=message)
        else:
            self.record("client_unknown", type=kind if isinstance(kind, str) else repr(kind))

    def _audio(self, b64: Any) -> None:
        pcm = self.decode_b64_audio(b64, "audio without base64 payload")
        if pcm is not None:
            self.take_user_audio(pcm)

    def _pong(self, message: dict[str, Any]) -> None:
        event_id = message.get("event_id")
        if event_id is None and isinstance(message.get("pong_event"), dict):
            event_id = message["pong_event"].get("event_id")
        if isinstance(event_id, int) and event_id in self.outstanding_pings:
            sent = self.outstanding_pings.pop(event_id)
            self.record("pong_ok", event_id=event_id, rtt_ms=round((time.monotonic() - sent) * 1000, 1))
        else:
            self.record("pong_bad", event_id=event_id)

    # --- timed ---
    def on_tick(self, now: float) -> float | None:
        interval = self.options.ping_interval
        if not interval or interval <= 0:
            self.next_ping_at = None
            return None
        if self.next_ping_at is None:
            self.next_ping_at = now + interval
        if now >= self.next_ping_at:
            self.pings_sent += 1
            event_id = self.pings_sent
            self.outstanding_pings[event_id] = now
            if len(self.outstanding_pings) > 100:  # a client that never answers
                self.outstanding_pings.pop(min(self.outstanding_pings))
            self.send(_dumps({"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": None}}))
            self.record("ping_sent", event_id=event_id)
            self.next_ping_at = now + interval
        return self.next_ping_at

    # --- replies ---
    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        self.send(
            _dumps(
                {
                    "type": "user_transcript",
                    "user_transcription_event": {"user_transcript": f"I said something for {seconds:.1f} seconds"},
                }
            )
        )
        self.send(
            _dumps(
                {
                    "type": "agent_response",
                    "agent_response_event": {
                        "agent_response": f"You spoke for {seconds:.1f} seconds. Here it is back."
                    },
                }
            )
        )

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        self.send(_dumps({"type": "audio", "audio_event": {"audio_base_64": _b64(chunk), "event_id": reply.event_id}}))

    def send_interruption(self, reply: ReplyStream) -> None:
        self.send(_dumps({"type": "interruption", "interruption_event": {"event_id": reply.event_id}}))
        if self.options.late_audio_after_interrupt:
            late = reply.remaining()[:LATE_CHUNKS]
            late += [bytes(self.chunk_bytes())] * (LATE_CHUNKS - len(late))
            for chunk in late:
                self.send_reply_chunk(reply, chunk)
            self.record("late_audio_sent", event_id=reply.event_id, chunks=len(late))

    # --- misbehaviour ---
    def garbage(self) -> list[str | bytes]:
        return [
            "this is not JSON {",
            "[1, 2, 3]",
            _dumps({"type": "audio", "audio_event": {"audio_base_64": "@@not*base64@@", "event_id": 0}}),
            _dumps({"type": "audio", "audio_event": {"audio_base_64": _b64(b"\x01\x02\x03"), "event_id": 0}}),
            _dumps({"type": "mystery_event_type", "mystery_event": {"x": 1}}),
            _dumps({"type": "ping"}),
            _dumps({"type": "user_transcript"}),
            b"\x00\x01\x02 binary garbage \xff",
            self.oversized_garbage(),
        ]

