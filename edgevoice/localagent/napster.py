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
import logging
import math
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection

from .calls import CallingSession, PendingCall, user_text
from .listener import SpeechEnded
from .options import AgentOptions
from .reply import ReplyStream
from .session import b64 as _b64
from .session import dumps as _dumps

if TYPE_CHECKING:
    from .server import LocalAgent

log = logging.getLogger(__name__)

WS_PATH = "/napster/ws"
WS_CONNECTIONS_PATH = "/public/ws-connections"
AGENTS_PATH = "/public/agents"
TOKEN_PURPOSE = "napster"
TOKEN_TTL_S = 5 * 60
EXTERNAL_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

#: napster_audio_form -> (key of the event name, key of the base64 inside ``data``)
AUDIO_FORMS = {"event/data": ("event", "data"), "type/data": ("type", "data"), "event/audio": ("event", "audio")}
TOKEN_FORMS = ("authToken", "token")
URL_SCHEMES = ("ws", "http")


def check_options(options: AgentOptions) -> None:
    """Refuse option values this dialect cannot honour (raised when the agent is made)."""
    if options.napster_audio_form not in AUDIO_FORMS:
        raise ValueError(f"napster_audio_form must be one of {', '.join(AUDIO_FORMS)}")
    if options.napster_token_form not in TOKEN_FORMS:
        raise ValueError(f"napster_token_form must be one of {', '.join(TOKEN_FORMS)}")
    if options.napster_url_scheme not in URL_SCHEMES:
        raise ValueError(f"napster_url_scheme must be one of {', '.join(URL_SCHEMES)}")


class NapsterState:
    """Per-agent napster state: created agents, the rate-limit clock, token -> connection."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.agents: dict[str, dict[str, Any]] = {}
        self.channels: dict[tuple[str, str], dict[str, Any]] = {}
        self.last_connection_at: float | None = None
        self.connection_of_token: dict[str, str] = {}


def new_state(agent: LocalAgent) -> NapsterState:
    return NapsterState()




# --- REST -------------------------------------------------------------------------
Answer = tuple[Any, ...]


def _error(status: int, error: str, message: str) -> Answer:
    return status, {"error": error, "message": message}


def _json_body(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object ({} when empty), or None when it is not one."""
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def rest_route(
    agent: LocalAgent,
    method: str,
    path: str,
    query: dict[str, str],
    headers: Mapping[str, str],
    body: bytes = b"",
) -> Answer | None:
    """Answer a REST request, or None when the path is not part of this dialect."""
    if path == WS_CONNECTIONS_PATH:
        parts: list[str] = []
    elif path == AGENTS_PATH or path.startswith(AGENTS_PATH + "/"):
        parts = [p for p in path[len(AGENTS_PATH) :].split("/") if p]
    else:
        return None
    opts = agent.options
    if opts.reject_auth or headers.get("X-Api-Key") != opts.api_key:
        agent.log.record("auth_rejected", where="rest", reason="bad_api_key")
        return _error(401, "unauthorized", "invalid or missing X-Api-Key")
    state: NapsterState = agent.dialect_state

    if path == WS_CONNECTIONS_PATH:
        if method != "POST":
            return _error(405, "method_not_allowed", "use POST")
        return _ws_connection(agent, body)
    if not parts:  # /public/agents
        if method != "POST":
            return _error(405, "method_not_allowed", "use POST")
        return _create_agent(agent, state, body)

    agent_id = parts[0]
    with state.lock:
        known = agent_id == opts.agent_id or agent_id in state.agents
        stored = dict(state.agents.get(agent_id, {"id": agent_id, "companionId": opts.companion_id}))
    if not known:
        return _error(404, "not_found", f"agent {agent_id} not found")
    if len(parts) == 1:
        if method == "GET":
            return 200, stored
        if method != "PATCH":
            return _error(405, "method_not_allowed", "use GET or PATCH")
        return _update_agent(agent, state, agent_id, stored, body)
    if len(parts) == 2 and parts[1] == "connections":
        if method != "POST":
            return _error(405, "method_not_allowed", "use POST")
        return _agent_connection(agent, agent_id, body)
    if len(parts) == 3 and parts[1] == "channels":
        if method != "PUT":
            return _error(405, "method_not_allowed", "use PUT")
        fields = _json_body(body)
        if fields is None:
            return _error(400, "bad_request", "body must be a JSON object")
        with state.lock:
            state.channels[(agent_id, parts[2])] = fields
        agent.log.record("http_agent_channel", agent_id=agent_id, channel_type=parts[2], body=fields)
        return 200, {"agentId": agent_id, "channelType": parts[2], **fields}
    return None


def _check_external_client_id(fields: dict[str, Any]) -> Answer | None:
    value = fields.get("externalClientId")
    if value is not None and not (isinstance(value, str) and EXTERNAL_CLIENT_ID.match(value)):
        return _error(400, "bad_request", "externalClientId must match ^[A-Za-z0-9_-]{1,32}$")
    return None


def _ws_connection(agent: LocalAgent, body: bytes) -> Answer:
    fields = _json_body(body)
    if fields is None:
        return _error(400, "bad_request", "body must be a JSON object")
    companion = fields.get("companionId")
    if not isinstance(companion, str) or not companion:
        return _error(400, "bad_request", "companionId is required")
    bad = _check_external_client_id(fields)
    if bad is not None:
        return bad
    return _issue_connection(agent, "http_ws_connection", {"body": fields})


def _agent_connection(agent: LocalAgent, agent_id: str, body: bytes) -> Answer:
    fields = _json_body(body)
    if fields is None:
        return _error(400, "bad_request", "body must be a JSON object")
    if fields.get("channelType") != "websocket":
        return _error(400, "bad_request", "channelType must be websocket on this endpoint")
    bad = _check_external_client_id(fields)
    if bad is not None:
        return bad
    return _issue_connection(agent, "http_agent_connection", {"agent_id": agent_id, "body": fields})


def _create_agent(agent: LocalAgent, state: NapsterState, body: bytes) -> Answer:
    fields = _json_body(body)
    if fields is None:
        return _error(400, "bad_request", "body must be a JSON object")
    companion = fields.get("companionId")
    if not isinstance(companion, str) or not companion:
        return _error(400, "bad_request", "companionId is required")
    fields.pop("id", None)
    agent_id = agent.next_id("agent")
    created = {"id": agent_id, **fields}
    with state.lock:
        state.agents[agent_id] = created
    agent.log.record("http_agent_create", agent_id=agent_id, body=fields)
    return 200, created


def _update_agent(
    agent: LocalAgent, state: NapsterState, agent_id: str, stored: dict[str, Any], body: bytes
) -> Answer:
    fields = _json_body(body)
    if fields is None:
        return _error(400, "bad_request", "body must be a JSON object")
    fields.pop("id", None)
    stored.update(fields)  # PATCH changes only the fields sent
    with state.lock:
        state.agents[agent_id] = stored
    agent.log.record("http_agent_update", agent_id=agent_id, body=fields)
    return 200, stored


def _issue_connection(agent: LocalAgent, kind: str, data: dict[str, Any]) -> Answer:
    """Apply the limits, then issue a single-use token and a connection id."""
    opts = agent.options
    state: NapsterState = agent.dialect_state
    with state.lock:
        now = time.monotonic()
        limit = opts.napster_rate_limit_s
        if limit and state.last_connection_at is not None and now - state.last_connection_at < limit:
            retry_after = max(1, math.ceil(limit - (now - state.last_connection_at)))
            agent.log.record("http_rate_limited", retry_after=retry_after)
            return (
                429,
                {"error": "too many requests", "message": f"retry after {retry_after} s"},
                {"Retry-After": str(retry_after)},
            )
        most = opts.napster_max_sessions
        open_now = agent.open_sessions
        if most is not None and open_now >= most:
            agent.log.record("http_session_limit", open=open_now)
            return 409, {"error": "concurrent session limit"}
        state.last_connection_at = now
        connection_id = agent.next_id("conn")
        token = agent.tokens.issue(TOKEN_PURPOSE, TOKEN_TTL_S)
        state.connection_of_token[token] = connection_id
    agent.log.record(kind, connection_id=connection_id, **data)
    return 200, {"token": _encode_token(agent, token), "connection": {"id": connection_id}}


def _encode_token(agent: LocalAgent, token: str) -> str:
    opts = agent.options
    url = f"{opts.napster_url_scheme}://{agent.host}:{agent.ws_port}{WS_PATH}"
    if opts.napster_token_form == "token":
        decoded = {"url": f"{url}?token={token}", "token": token}
    else:
        decoded = {"url": url, "authToken": token}
    return base64.b64encode(json.dumps(decoded).encode()).decode("ascii")


# --- WebSocket handshake -----------------------------------------------------------
def process_request(agent: LocalAgent, connection: ServerConnection, request: Request) -> Response | None:
    """Authenticate the opening handshake (Bearer header or ?token=); a Response refuses it."""
    url = urlsplit(request.path)
    if url.path != WS_PATH:
        agent.log.record("ws_bad_path", path=url.path)
        return connection.respond(404, "Not Found\n")

    def refuse(status: int, reason: str) -> Response:
        agent.log.record("auth_rejected", where="ws", reason=reason)
        return connection.respond(status, "Unauthorized\n" if status == 401 else "Forbidden\n")

    if agent.options.reject_auth:
        return refuse(403, "reject_auth")
    query_token = parse_qs(url.query).get("token", [None])[0]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, header_token = header.partition(" ")
        header_token = header_token.strip()
        if scheme.lower() != "bearer" or not header_token:
            return refuse(401, "bad_authorization_header")
        token, how = header_token, ("both" if query_token == header_token else "header")
    elif query_token:
        token, how = query_token, "query"
    else:
        return refuse(401, "missing_token")
    status = agent.tokens.redeem(token, TOKEN_PURPOSE)
    if status != "ok":
        return refuse(403, f"token_{status}")
    state: NapsterState = agent.dialect_state
    with state.lock:
        connection_id = state.connection_of_token.pop(token, None)
    connection.localagent_auth = {"auth": how, "connection_id": connection_id or agent.next_id("conn")}
    return None


# --- session ------------------------------------------------------------------------
class NapsterSession(CallingSession):
    """A napster conversation: avatar/talk states, messages, parroted audio, function calls."""

    dialect = "napster"

    def __init__(self, agent: LocalAgent, ws: ServerConnection, auth: dict[str, Any]) -> None:
        super().__init__(agent, ws, auth)
        self.conversation_id = auth.get("connection_id") or agent.next_id("conn")
        self.items = 0
        self.audio_keys: set[str] = set()
        self.reply_texts: dict[int, str] = {}
        self.deltas_sent: set[int] = set()

    # --- sending helpers ---
    def send_event(self, name: str, data: dict[str, Any], key: str = "event") -> None:
        self.send(_dumps({key: name, "data": data}))

    def send_message(self, **fields: Any) -> None:
        """``message_received`` with ``fields`` flat under ``data`` or under ``data.message``."""
        data = {"message": fields} if self.options.napster_nested_messages else fields
        self.send(_dumps({"type": "message_received", "data": data}))

    def on_open(self) -> None:
        self.record("ws_open", **self.auth)
        self.send_event("avatar_state_changed", {"state": "preparing"})
        self.send_message(type="session", id=self.conversation_id, status="started")
        self.send_event("avatar_state_changed", {"state": "ready"})
        self.send_event("avatar_state_changed", {"state": "ready"})
        error = self.options.napster_error_after_open
        if error:
            self.send(_dumps({"type": "error", "data": {"message": error}}))
            self.record("error_sent", message=error)

    # --- receive ---
    def on_binary(self, data: bytes) -> None:
        self.record("client_unknown", binary_bytes=len(data))

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
            self.record("client_unknown", type=kind if isinstance(kind, str) else repr(kind))

    def _audio(self, data: Any) -> None:
        key = next((k for k in ("data", "audio") if isinstance(data, dict) and k in data), None)
        b64 = data[key] if key is not None else None
        pcm = self.decode_b64_audio(b64, "send_audio without data.data or data.audio")
        if pcm is None:
            return
        if key not in self.audio_keys:
            self.audio_keys.add(key)
            self.record("audio_form", key=key)
        self.take_user_audio(pcm)

    # --- turns ---
    def send_utterance_heard(self, utterance: SpeechEnded) -> None:
        self.items += 1
        self.send_event("talk_state_changed", {"state": "preparing"})
        self.send_message(
            role="user", action="completed", content=user_text(utterance.seconds), item_id=f"item_{self.items}"
        )

    def send_function_call(self, call: PendingCall) -> None:
        data = {"call_id": call.call_id, "name": call.name, "arguments": call.arguments}
        self.send_event("function_implicitly_called", data, key="event")
        self.send_event("function_implicitly_called", data, key="type")  # the documented repeat

    def send_function_timeout(self, call: PendingCall) -> None:
        self.send_event("function_call_timeout", {"call_id": call.call_id})

    # --- replies ---
    @staticmethod
    def response_id(reply: ReplyStream) -> str:
        return f"resp_{reply.event_id}"

    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        self.reply_texts[reply.event_id] = self.reply_text(seconds)
        self.send_event("talk_state_changed", {"state": "started"})

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        name_key, payload_key = AUDIO_FORMS.get(self.options.napster_audio_form, AUDIO_FORMS["event/data"])
        self.send(_dumps({name_key: "audio_received", "data": {payload_key: _b64(chunk)}}))
        if reply.event_id not in self.deltas_sent:
            self.deltas_sent.add(reply.event_id)
            words = self.reply_texts.get(reply.event_id, "").split(" ")
            half = max(1, len(words) // 2)
            for piece in (" ".join(words[:half]) + " ", " ".join(words[half:])):
                self.send_message(role="assistant", action="delta", content=piece, response_id=self.response_id(reply))

    def send_reply_done(self, reply: ReplyStream) -> None:
        self.send_message(
            role="assistant",
            action="completed",
            content=self.reply_texts.pop(reply.event_id, ""),
            response_id=self.response_id(reply),
        )
        self.send_event("talk_state_changed", {"state": "ended"})

    def send_interruption(self, reply: ReplyStream) -> None:
        self.send(_dumps({"type": "speech_started"}))
        self.record("speech_started_sent", key="type", event_id=reply.event_id)
        if reply.end_recorded:  # "completed" already went out: only the flush is news
            return
        self.reply_texts.pop(reply.event_id, None)
        self.send_message(
            role="assistant", action="cancelled", reason="turn_detected", response_id=self.response_id(reply)
        )
        self.send_event("talk_state_changed", {"state": "ended"})

    # --- misbehaviour ---
    def garbage(self) -> list[str | bytes]:
        return [
            "this is not JSON {",
            "[1, 2, 3]",
            _dumps({"event": "audio_received", "data": {"data": "@@not*base64@@"}}),
            _dumps({"event": "audio_received", "data": {"data": _b64(b"\x01\x02\x03")}}),
            _dumps({"event": "audio_received"}),
            _dumps({"type": "message_received", "data": None}),
            _dumps({"event": "mystery_event_type", "data": {"x": 1}}),
            _dumps({"type": "function_implicitly_called", "data": {}}),
            b"\x00\x01\x02 binary garbage \xff",
            self.oversized_garbage(),
        ]
