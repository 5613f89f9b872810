"""The token + binary-frame Voice API.

Spec: ``shared/seeds/002_…`` and ``shared/protocols.md`` §2. A token from
``POST {api_url}/api/v1/sdk/token`` (Bearer key), ``{"token": T}`` as the first message,
raw 640-byte PCM frames both ways, a few JSON control messages. No interruption or
transcript messages exist: barge-in here is local only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from edgevoice import redact
from edgevoice.config.errors import Problem, missing
from edgevoice.config.types import Secret, Url, key
from edgevoice.providers.base import (brief, AgentAudio, ConnectPlan, Dialect, Ended, Event,
                                      HttpRequest, HttpResponse, Malformed, Notice, Outcome,
                                      Provider, Ready, SessionFailed, dig, http_failure,
                                      parse_json_object)

TOKEN_PATH = "/api/v1/sdk/token"
HEARTBEAT_PATH = "/api/v1/sdk/heartbeat"

_SESSION_ENDED = {
    "agent_disconnected": Outcome("session ended: the agent disconnected"),
    "session_closed": Outcome("session ended: closed by the server"),
    "room_closed": Outcome("session ended: room closed"),
    "server_shutdown": Outcome("session ended: server shutting down"),
}
_ERRORS = {
    "AUTH_TIMEOUT": Outcome("server says the token came too late (AUTH_TIMEOUT)"),
    "INVALID_AUTH": Outcome("server rejected the token (INVALID_AUTH): check [voiceapi] api_key",
                            "auth"),
    "AUTH_FAILED": Outcome("server rejected the token (AUTH_FAILED): check [voiceapi] api_key",
                           "auth"),
    "SESSION_SETUP_FAILED": Outcome("server could not set up the session (SESSION_SETUP_FAILED)",
                                    "later", 2.0),
}
_CLOSE_CODES = {
    4001: Outcome("closed 4001: authentication timeout"),
    4002: Outcome("closed 4002: token required"),
    4003: Outcome("closed 4003: authentication failed; check [voiceapi] api_key", "auth"),
    4500: Outcome("closed 4500: session setup failed", "later", 2.0),
    1000: Outcome("server closed the session normally"),
}


@dataclass(frozen=True)
class VoiceApiSettings:
    """The [voiceapi] section."""

    api_url: str = key("REST base URL; the token is fetched from {api_url}/api/v1/sdk/token.",
                       "", Url("http", "https"))
    api_key: redact.Secret | None = key("API key (Bearer).", None, Secret())

    def check(self) -> list[Problem]:
        return missing("voiceapi", [
            (not self.api_url, "api_url", "set the Voice API base URL (api_url = https://...)"),
            (not self.api_key, "api_key", "set api_key or api_key_file")])


class VoiceApiProvider(Provider):
    name = "voiceapi"
    interrupts = False  # no interruption message: local barge-in confirms by itself
    mic_rate = 16000
    output_rate = 16000

    def __init__(self, settings) -> None:
        self.settings = settings

    def bootstrap_request(self) -> HttpRequest:
        key = self.settings.api_key.reveal() if self.settings.api_key else ""
        return HttpRequest("POST", self.settings.api_url.rstrip("/") + TOKEN_PATH,
                           {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                           what="session token request")

    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        if response is None or response.status != 200:
            if response is not None and response.status == 403:
                raise SessionFailed(Outcome("session token request rejected with HTTP 403: the "
                                            "key is valid but this device is disabled", "auth"))
            raise http_failure(response or HttpResponse(0, None), "session token request",
                               "the [voiceapi] api_key is wrong")
        token, ws_url = dig(response.body, "token"), dig(response.body, "ws_url")
        if not isinstance(token, str) or not token:
            raise SessionFailed(Outcome("token response has no token"))
        if not isinstance(ws_url, str) or not ws_url.startswith(("ws://", "wss://")):
            raise SessionFailed(Outcome("token response has no usable ws_url"))
        return ConnectPlan(ws_url, {}, (json.dumps({"token": token}),), stream_on_open=False,
                           secrets=(token,))

    def encode_audio(self, frame: bytes) -> tuple[bytes]:
        return (frame,)

    def decode(self, message) -> list[Event]:
        if isinstance(message, (bytes, bytearray)):
            if len(message) % 2:
                return [Malformed(f"audio frame of odd length {len(message)}; last byte dropped"),
                        AgentAudio(bytes(message[:-1]))]
            return [AgentAudio(bytes(message))]
        msg = parse_json_object(message)
        del message  # a large text is freed before its payload is decoded (see Provider.decode)
        if isinstance(msg, Malformed):
            return [msg]
        kind = msg.get("type")
        if kind == "connected":
            return [Ready(None, "connected")]
        if kind == "agent_ready":
            return [Notice("agent ready")]
        if kind == "session_ended":
            reason = msg.get("reason")
            outcome = _SESSION_ENDED.get(reason) if isinstance(reason, str) else None
            return [Ended(outcome or Outcome(f"session ended: {brief(reason, 60)}"))]
        if kind == "error":
            code, text = msg.get("code"), brief(msg.get("message", ""), 200)
            outcome = _ERRORS.get(code) if isinstance(code, str) else None
            if outcome is None:
                return [Notice(f"server error {brief(code, 40)}: {text}", logging.WARNING)]
            return [Notice(f"server error {code}: {text}", logging.WARNING), Ended(outcome)]
        return [Notice(f"ignoring message type {brief(kind, 40)!r}", logging.DEBUG)]

    def close_outcome(self, code: int | None, reason: str) -> Outcome:
        known = _CLOSE_CODES.get(code) if code is not None else None
        return known or super().close_outcome(code, reason)


DIALECT = Dialect("voiceapi", VoiceApiSettings, VoiceApiProvider)
