"""The ``xuna`` dialect (mirrors ElevenLabs Conversational AI), written from the seed spec.

WebSocket ``/v1/convai/conversation?agent_id=ID`` (public) or ``?token=T`` (signed URL
from ``GET /v1/convai/conversation/get-signed-url?agent_id=ID`` with ``xi-api-key``).
JSON text frames both ways; audio is base64 PCM16 inside ``audio`` events. The server
pings, transcribes (fakes it), answers with the user's own utterance and announces
barge-in with ``interruption``.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

from websockets.sync.server import ServerConnection

from .context import DialectContext
from .dialect import Dialect, Handshake, HandshakeRefused, RestAnswer, RestRequest
from .reply import ReplyStream
from .session import BAD_BASE64, BINARY_GARBAGE, ODD_LENGTH_PCM, Session, b64, dumps

WS_PATH = "/v1/convai/conversation"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
TOKEN_PURPOSE = "xuna"
SIGNED_URL_TTL_S = 15 * 60


class XunaSession(Session):
    """A xuna conversation: metadata, pings, transcripts, echo replies, interruptions."""

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.output_rate = int(self.options.output_rate)
        self.next_ping_at: float | None = None
        self.pings_sent = 0
        self.outstanding_pings: dict[int, float] = {}
        self.messages_seen = 0

    def on_open(self) -> None:
        self.record("ws_open", **self.auth)
        self.send_json(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": self.conversation_id,
                    "agent_output_audio_format": f"pcm_{self.output_rate}",
                },
            }
        )

    # -- receive ---
    def on_text(self, text: str) -> None:
        self.messages_seen += 1
        message = self.parse_json(text)
        if message is None:
            return
        self.on_message(message.get("type"), message)

    def on_message(self, kind: Any, message: dict[str, Any]) -> None:
        """One client message (a JSON object) of type ``kind``."""
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
            self.record_unknown(kind)

    def _audio(self, payload: Any) -> None:
        pcm = self.decode_b64_audio(payload, "audio without base64 payload")
        if pcm is not None:
            self.take_user_audio(pcm)

    def _pong(self, message: dict[str, Any]) -> None:
        event_id = message.get("event_id")
        if event_id is None and isinstance(message.get("pong_event"), dict):
            event_id = message["pong_event"].get("event_id")
        if isinstance(event_id, int) and event_id in self.outstanding_pings:
            sent = self.outstanding_pings.pop(event_id)
            rtt_ms = round((time.monotonic() - sent) * 1000, 1)
            self.record("pong_ok", event_id=event_id, rtt_ms=rtt_ms)
        else:
            self.record("pong_bad", event_id=event_id)

    # -- timed ---
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
            self.send_json({"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": None}})
            self.record("ping_sent", event_id=event_id)
            self.next_ping_at = now + interval
        return self.next_ping_at

    # -- replies ---
    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        transcript = f"I said something for {seconds:.1f} seconds"
        self.send_json({"type": "user_transcript",
                        "user_transcription_event": {"user_transcript": transcript}})
        response = f"You spoke for {seconds:.1f} seconds. Here it is back."
        self.send_json({"type": "agent_response",
                        "agent_response_event": {"agent_response": response}})

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        self.send_json({"type": "audio",
                        "audio_event": {"audio_base_64": b64(chunk), "event_id": reply.event_id}})

    def send_interruption(self, reply: ReplyStream) -> None:
        self.send_json({"type": "interruption", "interruption_event": {"event_id": reply.event_id}})
        self.send_late_audio(reply)

    # -- misbehaviour ---
    def malformed_messages(self) -> list[str | bytes]:
        return [
            dumps({"type": "audio", "audio_event": {"audio_base_64": BAD_BASE64, "event_id": 0}}),
            dumps({"type": "audio",
                   "audio_event": {"audio_base_64": b64(ODD_LENGTH_PCM), "event_id": 0}}),
            dumps({"type": "mystery_event_type", "mystery_event": {"x": 1}}),
            dumps({"type": "ping"}),
            dumps({"type": "user_transcript"}),
            BINARY_GARBAGE,
        ]


class XunaDialect(Dialect):
    """xuna: a signed-URL endpoint, public or signed WebSocket handshakes, :class:`XunaSession`."""

    name = "xuna"
    ws_path = WS_PATH
    session_class = XunaSession

    def rest_route(self, request: RestRequest) -> RestAnswer | None:
        """``GET`` the signed URL (``xi-api-key``, ``?agent_id=``): a single-use token in it."""
        if request.path != SIGNED_URL_PATH:
            return None
        if request.method != "GET":
            return _rest_error(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "use GET")
        opts = self.options
        if self.rest_key_refused(request.headers.get("xi-api-key"), opts.api_key):
            return _rest_error(HTTPStatus.UNAUTHORIZED, "invalid_api_key", "Invalid API key")
        agent_id = request.query.get("agent_id")
        if not agent_id:
            return _rest_error(HTTPStatus.UNPROCESSABLE_ENTITY, "missing_agent_id",
                               "agent_id is required")
        if agent_id != opts.agent_id:
            return _rest_error(HTTPStatus.NOT_FOUND, "agent_not_found",
                               f"agent {agent_id} not found")
        token = self.context.tokens.issue(TOKEN_PURPOSE, SIGNED_URL_TTL_S)
        self.context.record("http_signed_url", agent_id=agent_id)
        signed_url = f"{self.context.ws_base}{WS_PATH}?token={token}"
        return RestAnswer(HTTPStatus.OK, {"signed_url": signed_url})

    def authorize_handshake(self, handshake: Handshake) -> dict[str, Any]:
        """A signed URL's ``?token=`` (single use), or ``?agent_id=`` of a public agent."""
        token = handshake.query.get("token")
        if token is not None:
            status = self.context.tokens.redeem(token, TOKEN_PURPOSE)
            if status != "ok":
                raise HandshakeRefused(HTTPStatus.FORBIDDEN, f"token_{status}")
            return {"auth": "signed", "token": token}
        agent_id = handshake.query.get("agent_id")
        if agent_id is None:
            raise HandshakeRefused(HTTPStatus.FORBIDDEN, "missing_agent_id")
        if agent_id != self.options.agent_id:
            raise HandshakeRefused(HTTPStatus.FORBIDDEN, "unknown_agent_id")
        if self.options.private:
            raise HandshakeRefused(HTTPStatus.FORBIDDEN, "private_agent_needs_signed_url")
        return {"auth": "public"}

    def config_section(self) -> dict[str, str]:
        opts = self.options
        section = {"agent_id": str(opts.agent_id), "url": self.context.ws_base + WS_PATH,
                   "api_url": self.context.http_base}
        if opts.private:
            section["api_key"] = opts.api_key
        return section


def _rest_error(status: int, error: str, message: str) -> RestAnswer:
    """xuna's error body: ``{"detail": {"status", "message"}}``."""
    return RestAnswer(status, {"detail": {"status": error, "message": message}})
