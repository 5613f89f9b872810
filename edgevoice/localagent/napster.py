"""The ``napster`` dialect (Napster Companion API, audio-only WebSocket), from the seed specs.

REST, every call with header ``X-Api-Key`` (wrong or missing: 401):

- ``POST /public/ws-connections`` (per session; body needs ``companionId``: 400 otherwise),
- ``POST /public/agents/{agentId}/connections`` (Omniagent; ``{"channelType": "websocket",
  "externalClientId"?, "externalClientProfile"?, "tags"?}``; unknown agent 404, another
  channelType 400),

both answering ``{"token": B64, "connection": {"id": "conn_<n>"}}``. ``B64`` is base64 of JSON
``{"url": WS_URL, "authToken": T}`` (seed form; connect with ``Authorization: Bearer T``) or,
with ``napster_token_form="token"``, ``{"url": WS_URL + "?token=" + T, "token": T}`` (newer
form: the client adds nothing). ``napster_url_scheme="http"`` issues ``http://`` urls, as
real servers issue ``https://``: clients must rewrite them. Agents: ``POST /public/agents``
(body needs ``companionId``; answers ``{"id": "agent_<n>", ...body}``), ``PATCH`` and ``GET
/public/agents/{agentId}``, ``PUT /public/agents/{agentId}/channels/{channelType}``.
``options.agent_id`` always exists as an agent.

WebSocket ``/napster/ws``, token ``T`` single use, from the header or ``?token=``. JSON text
both ways; audio is base64 PCM16 16 kHz mono. On open: ``avatar_state_changed preparing``,
the ``message_received`` session marker, ``avatar_state_changed ready`` twice. Per
utterance: ``talk_state_changed preparing``, the user's ``message_received``, [function
call], ``talk_state_changed started``, ``audio_received`` chunks (the utterance, parroted)
with the assistant's ``delta`` message after the first chunk, then the assistant's
``completed`` message and ``talk_state_changed ended`` once the last chunk is out.

Choices where the specs are silent:

- Key of the event name: ``"event"`` for ``avatar_state_changed``, ``talk_state_changed``,
  ``function_call_timeout`` and (by default) ``audio_received``; ``"type"`` for
  ``message_received``, ``speech_started`` and ``error``. ``function_implicitly_called`` is
  sent twice with the same call_id: first under ``"event"``, then under ``"type"``.
- The session marker is ``{"type": "session", "id": <connection id>, "status": "started"}``,
  nested under ``data.message`` like every message when ``napster_nested_messages`` is on.
- Barge-in sends ``{"type": "speech_started"}`` (recorded as ``speech_started_sent`` with
  key ``"type"``); if the assistant's ``completed`` message has not gone out yet, also
  ``message_received {role: assistant, action: cancelled, reason: turn_detected,
  response_id}`` and ``talk_state_changed ended``.
- Handshake: no token 401, an ``Authorization`` header that is not ``Bearer`` 401, an
  unknown, used or expired token 403. The header wins when both header and query carry a
  token; ``ws_open.auth`` says ``header``, ``query`` or ``both`` (same token in each).
- Limits (off unless switched on): ``napster_rate_limit_s`` is measured between
  *successful* connection requests (both endpoints); 429 carries ``Retry-After`` in whole
  seconds (at least 1). ``napster_max_sessions`` counts open WebSocket sessions only.
  Order of checks: key, body/agent (400/404), rate (429), concurrency (409).
- ``externalClientId`` must match ``^[A-Za-z0-9_-]{1,32}$`` (400 otherwise); any non-empty
  ``companionId`` is accepted.
- ``napster_error_after_open`` sends the error after the opening messages and keeps the
  session open. ``send_message`` and ``set_settings`` are recorded, never answered.
- Tokens live 5 minutes.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from http import HTTPStatus
from typing import Any

from websockets.sync.server import ServerConnection

from .calls import CallingSession, PendingCall, user_text
from .context import DialectContext
from .dialect import Dialect, Handshake, HandshakeRefused, RestAnswer, RestRequest
from .listener import SpeechEnded
from .options import AgentOptions
from .reply import ReplyStream
from .session import BAD_BASE64, BINARY_GARBAGE, ODD_LENGTH_PCM, b64, dumps

WS_PATH = "/napster/ws"
WS_CONNECTIONS_PATH = "/public/ws-connections"
AGENTS_PATH = "/public/agents"
TOKEN_PURPOSE = "napster"
TOKEN_TTL_S = 5 * 60
EXTERNAL_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

#: napster_audio_form -> (key of the event name, key of the base64 inside ``data``)
AUDIO_FORMS = {"event/data": ("event", "data"), "type/data": ("type", "data"),
               "event/audio": ("event", "audio")}
TOKEN_FORMS = ("authToken", "token")
URL_SCHEMES = ("ws", "http")


class NapsterSession(CallingSession):
    """A napster conversation: avatar/talk states, messages, parroted audio, function calls."""

    conversation_prefix = "conn"

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.items = 0
        self.audio_keys: set[str] = set()
        self.reply_texts: dict[int, str] = {}
        self.deltas_sent: set[int] = set()

    def new_conversation_id(self) -> str:
        """The connection id the REST call issued with the token (the handshake looked it up)."""
        return self.auth.get("connection_id") or super().new_conversation_id()

    # -- sending helpers ---
    def send_event(self, name: str, data: dict[str, Any], key: str = "event") -> None:
        """``{key: name, "data": data}``; the key is ``"event"`` unless the specs say ``"type"``."""
        self.send_json({key: name, "data": data})

    def send_message(self, **fields: Any) -> None:
        """``message_received`` with ``fields`` flat under ``data`` or under ``data.message``."""
        data = {"message": fields} if self.options.napster_nested_messages else fields
        self.send_json({"type": "message_received", "data": data})

    def on_open(self) -> None:
        self.record("ws_open", **self.auth)
        self.send_event("avatar_state_changed", {"state": "preparing"})
        self.send_message(type="session", id=self.conversation_id, status="started")
        self.send_event("avatar_state_changed", {"state": "ready"})
        self.send_event("avatar_state_changed", {"state": "ready"})
        error = self.options.napster_error_after_open
        if error:
            self.send_json({"type": "error", "data": {"message": error}})
            self.record("error_sent", message=error)

    # -- receive ---
    def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if message is None:
            return
        kind = message.get("type")
        data = message.get("data")
        if kind == "send_audio":
            self._audio(data)
        elif kind in ("send_message", "set_settings"):
            self.record("client_command", command=kind, message=message)
        elif kind == "send_function_output":
            self.record("client_command", command=kind, message=message)
            if not isinstance(data, dict) or "call_id" not in data:
                self.record("client_malformed", reason="send_function_output without data.call_id")
                return
            if self.take_function_output(data.get("call_id"), data.get("output")):
                self.finish_call()
        else:
            self.record_unknown(kind)

    def _audio(self, data: Any) -> None:
        key = next((k for k in ("data", "audio") if isinstance(data, dict) and k in data), None)
        payload = data[key] if key is not None else None
        pcm = self.decode_b64_audio(payload, "send_audio without data.data or data.audio")
        if pcm is None:
            return
        if key not in self.audio_keys:
            self.audio_keys.add(key)
            self.record("audio_form", key=key)
        self.take_user_audio(pcm)

    # -- turns ---
    def send_utterance_heard(self, utterance: SpeechEnded) -> None:
        self.items += 1
        self.send_event("talk_state_changed", {"state": "preparing"})
        self.send_message(
            role="user", action="completed", content=user_text(utterance.seconds),
            item_id=f"item_{self.items}"
        )

    def send_function_call(self, call: PendingCall) -> None:
        data = {"call_id": call.call_id, "name": call.name, "arguments": call.arguments}
        self.send_event("function_implicitly_called", data, key="event")
        self.send_event("function_implicitly_called", data, key="type")  # the documented repeat

    def send_function_timeout(self, call: PendingCall) -> None:
        self.send_event("function_call_timeout", {"call_id": call.call_id})

    # -- replies ---
    @staticmethod
    def response_id(reply: ReplyStream) -> str:
        return f"resp_{reply.event_id}"

    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        self.reply_texts[reply.event_id] = self.reply_text(seconds)
        self.send_event("talk_state_changed", {"state": "started"})

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        form = self.options.napster_audio_form  # may be flipped live: fall back to the default
        name_key, payload_key = AUDIO_FORMS.get(form, AUDIO_FORMS["event/data"])
        self.send_json({name_key: "audio_received", "data": {payload_key: b64(chunk)}})
        if reply.event_id not in self.deltas_sent:
            self.deltas_sent.add(reply.event_id)
            words = self.reply_texts.get(reply.event_id, "").split(" ")
            half = max(1, len(words) // 2)
            for piece in (" ".join(words[:half]) + " ", " ".join(words[half:])):
                self.send_message(role="assistant", action="delta", content=piece,
                                  response_id=self.response_id(reply))

    def send_reply_done(self, reply: ReplyStream) -> None:
        self.send_message(
            role="assistant",
            action="completed",
            content=self.reply_texts.pop(reply.event_id, ""),
            response_id=self.response_id(reply),
        )
        self.send_event("talk_state_changed", {"state": "ended"})

    def send_interruption(self, reply: ReplyStream) -> None:
        self.send_json({"type": "speech_started"})
        self.record("speech_started_sent", key="type", event_id=reply.event_id)
        if reply.end_recorded:  # "completed" already went out: only the flush is news
            return
        self.reply_texts.pop(reply.event_id, None)
        self.send_message(
            role="assistant", action="cancelled", reason="turn_detected",
            response_id=self.response_id(reply)
        )
        self.send_event("talk_state_changed", {"state": "ended"})

    # -- misbehaviour ---
    def malformed_messages(self) -> list[str | bytes]:
        return [
            dumps({"event": "audio_received", "data": {"data": BAD_BASE64}}),
            dumps({"event": "audio_received", "data": {"data": b64(ODD_LENGTH_PCM)}}),
            dumps({"event": "audio_received"}),
            dumps({"type": "message_received", "data": None}),
            dumps({"event": "mystery_event_type", "data": {"x": 1}}),
            dumps({"type": "function_implicitly_called", "data": {}}),
            BINARY_GARBAGE,
        ]


class NapsterDialect(Dialect):
    """napster: connection and agent endpoints, Bearer/``?token=`` handshakes, NapsterSession.

    Holds the agent's napster state: created agents and their channels, the rate-limit
    clock and which connection id each issued token belongs to.
    """

    name = "napster"
    ws_path = WS_PATH
    session_class = NapsterSession
    default_agent_id = "agent_local"

    def __init__(self, context: DialectContext) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self.agents: dict[str, dict[str, Any]] = {}
        self.channels: dict[tuple[str, str], dict[str, Any]] = {}
        self.last_connection_at: float | None = None
        self.connection_of_token: dict[str, str] = {}

    def check_options(self, options: AgentOptions) -> None:
        for value, choices, what in (
            (options.napster_audio_form, AUDIO_FORMS, "napster_audio_form"),
            (options.napster_token_form, TOKEN_FORMS, "napster_token_form"),
            (options.napster_url_scheme, URL_SCHEMES, "napster_url_scheme"),
        ):
            if value not in choices:
                raise ValueError(f"{what} must be one of {', '.join(choices)}")

    def config_section(self) -> dict[str, str]:
        opts = self.options
        section = {"api_url": self.context.http_base, "api_key": opts.api_key,
                   "companion_id": opts.companion_id}
        if opts.omniagent:
            section["agent_id"] = str(opts.agent_id)
        return section

    # -- REST ----------------------------------------------------------------------------
    def rest_route(self, request: RestRequest) -> RestAnswer | None:
        """Connections (``/public/ws-connections``, ``/public/agents/{id}/connections``), agents."""
        path, method = request.path, request.method
        if path == WS_CONNECTIONS_PATH:
            parts: list[str] = []
        elif path == AGENTS_PATH or path.startswith(AGENTS_PATH + "/"):
            parts = [p for p in path[len(AGENTS_PATH) :].split("/") if p]
        else:
            return None
        opts = self.options
        if self.rest_key_refused(request.headers.get("X-Api-Key"), opts.api_key):
            return RestAnswer.error(HTTPStatus.UNAUTHORIZED, "unauthorized",
                                    "invalid or missing X-Api-Key")
        body = request.body
        if path == WS_CONNECTIONS_PATH:
            return _only(method, "POST") or self._ws_connection(body)
        if not parts:  # /public/agents
            return _only(method, "POST") or self._create_agent(body)

        agent_id = parts[0]
        with self._lock:
            known = agent_id == opts.agent_id or agent_id in self.agents
            default = {"id": agent_id, "companionId": opts.companion_id}
            stored = dict(self.agents.get(agent_id, default))
        if not known:
            return RestAnswer.error(HTTPStatus.NOT_FOUND, "not_found",
                                    f"agent {agent_id} not found")
        if len(parts) == 1:
            if method == "GET":
                return RestAnswer(HTTPStatus.OK, stored)
            return (_only(method, "PATCH", "use GET or PATCH")
                    or self._update_agent(agent_id, stored, body))
        if len(parts) == 2 and parts[1] == "connections":
            return _only(method, "POST") or self._agent_connection(agent_id, body)
        if len(parts) == 3 and parts[1] == "channels":
            return _only(method, "PUT") or self._put_channel(agent_id, parts[2], body)
        return None

    def _ws_connection(self, body: bytes) -> RestAnswer:
        fields = _body_fields(body, companion_required=True, check_client_id=True)
        if isinstance(fields, RestAnswer):
            return fields
        return self._issue_connection("http_ws_connection", {"body": fields})

    def _agent_connection(self, agent_id: str, body: bytes) -> RestAnswer:
        fields = _body_fields(body, channel_type="websocket", check_client_id=True)
        if isinstance(fields, RestAnswer):
            return fields
        return self._issue_connection("http_agent_connection",
                                      {"agent_id": agent_id, "body": fields})

    def _create_agent(self, body: bytes) -> RestAnswer:
        fields = _body_fields(body, companion_required=True)
        if isinstance(fields, RestAnswer):
            return fields
        fields.pop("id", None)
        agent_id = self.context.next_id("agent")
        created = {"id": agent_id, **fields}
        with self._lock:
            self.agents[agent_id] = created
        self.context.record("http_agent_create", agent_id=agent_id, body=fields)
        return RestAnswer(HTTPStatus.OK, created)

    def _update_agent(self, agent_id: str, stored: dict[str, Any], body: bytes) -> RestAnswer:
        fields = _body_fields(body)
        if isinstance(fields, RestAnswer):
            return fields
        fields.pop("id", None)
        stored.update(fields)  # PATCH changes only the fields sent
        with self._lock:
            self.agents[agent_id] = stored
        self.context.record("http_agent_update", agent_id=agent_id, body=fields)
        return RestAnswer(HTTPStatus.OK, stored)

    def _put_channel(self, agent_id: str, channel_type: str, body: bytes) -> RestAnswer:
        fields = _body_fields(body)
        if isinstance(fields, RestAnswer):
            return fields
        with self._lock:
            self.channels[(agent_id, channel_type)] = fields
        self.context.record("http_agent_channel", agent_id=agent_id, channel_type=channel_type,
                            body=fields)
        return RestAnswer(HTTPStatus.OK,
                          {"agentId": agent_id, "channelType": channel_type, **fields})

    def _issue_connection(self, kind: str, data: dict[str, Any]) -> RestAnswer:
        """Apply the limits, then issue a single-use token and a connection id."""
        opts = self.options
        with self._lock:
            now = time.monotonic()
            limit = opts.napster_rate_limit_s
            since = None if self.last_connection_at is None else now - self.last_connection_at
            if limit and since is not None and since < limit:
                retry_after = max(1, math.ceil(limit - since))
                self.context.record("http_rate_limited", retry_after=retry_after)
                body = {"error": "too many requests", "message": f"retry after {retry_after} s"}
                return RestAnswer(HTTPStatus.TOO_MANY_REQUESTS, body,
                                  {"Retry-After": str(retry_after)})
            most = opts.napster_max_sessions
            open_now = self.context.open_sessions
            if most is not None and open_now >= most:
                self.context.record("http_session_limit", open=open_now)
                return RestAnswer(HTTPStatus.CONFLICT, {"error": "concurrent session limit"})
            self.last_connection_at = now
            connection_id = self.context.next_id("conn")
            token = self.context.tokens.issue(TOKEN_PURPOSE, TOKEN_TTL_S)
            self.connection_of_token[token] = connection_id
        self.context.record(kind, connection_id=connection_id, **data)
        return RestAnswer(HTTPStatus.OK, {"token": self._encode_token(token),
                                          "connection": {"id": connection_id}})

    def _encode_token(self, token: str) -> str:
        opts = self.options
        url = f"{opts.napster_url_scheme}://{self.context.host}:{self.context.ws_port}{WS_PATH}"
        if opts.napster_token_form == "token":
            decoded = {"url": f"{url}?token={token}", "token": token}
        else:
            decoded = {"url": url, "authToken": token}
        return base64.b64encode(json.dumps(decoded).encode()).decode("ascii")

    # -- WebSocket handshake ---------------------------------------------------------------
    def authorize_handshake(self, handshake: Handshake) -> dict[str, Any]:
        """A single-use token from ``Authorization: Bearer T`` or ``?token=T`` (the header wins)."""
        query_token = handshake.query.get("token")
        header = handshake.headers.get("Authorization")
        if header is not None:
            scheme, _, header_token = header.partition(" ")
            header_token = header_token.strip()
            if scheme.lower() != "bearer" or not header_token:
                raise HandshakeRefused(HTTPStatus.UNAUTHORIZED, "bad_authorization_header")
            token, how = header_token, ("both" if query_token == header_token else "header")
        elif query_token:
            token, how = query_token, "query"
        else:
            raise HandshakeRefused(HTTPStatus.UNAUTHORIZED, "missing_token")
        status = self.context.tokens.redeem(token, TOKEN_PURPOSE)
        if status != "ok":
            raise HandshakeRefused(HTTPStatus.FORBIDDEN, f"token_{status}")
        with self._lock:
            connection_id = self.connection_of_token.pop(token, None)
        return {"auth": how, "connection_id": connection_id or self.context.next_id("conn")}


def _only(method: str, allowed: str, message: str = "") -> RestAnswer | None:
    """A 405 unless ``method`` is the ``allowed`` one."""
    if method == allowed:
        return None
    return RestAnswer.error(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed",
                            message or f"use {allowed}")


def _body_fields(body: bytes, companion_required: bool = False, channel_type: str | None = None,
                 check_client_id: bool = False) -> dict[str, Any] | RestAnswer:
    """The request body as a JSON object ({} when empty), or the 400 that refuses it: not an
    object, no ``companionId``, another ``channelType``, a bad ``externalClientId``."""
    fields: Any = {}
    if body.strip():
        try:
            fields = json.loads(body)
        except ValueError:
            fields = None
    if not isinstance(fields, dict):
        return _bad_request("body must be a JSON object")
    companion = fields.get("companionId")
    if companion_required and not (isinstance(companion, str) and companion):
        return _bad_request("companionId is required")
    if channel_type is not None and fields.get("channelType") != channel_type:
        return _bad_request(f"channelType must be {channel_type} on this endpoint")
    client_id = fields.get("externalClientId")
    valid_client_id = isinstance(client_id, str) and EXTERNAL_CLIENT_ID.match(client_id)
    if check_client_id and client_id is not None and not valid_client_id:
        return _bad_request("externalClientId must match ^[A-Za-z0-9_-]{1,32}$")
    return fields


def _bad_request(message: str) -> RestAnswer:
    return RestAnswer.error(HTTPStatus.BAD_REQUEST, "bad_request", message)
