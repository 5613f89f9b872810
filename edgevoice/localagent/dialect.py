"""The interface every dialect of the local agent implements.

A dialect is one class, registered once in :mod:`.registry` under the name the CLI offers.
The server makes one instance per agent and hands it the agent's
:class:`~edgevoice.localagent.context.DialectContext`, which is all of the server a dialect
sees. What the server calls, in order of a client's visit:

- :meth:`Dialect.rest_route` for each REST request (None: not this dialect's, a 404),
- :meth:`Dialect.process_request` on each WebSocket opening handshake: the path, the
  ``reject_auth`` switch, then the dialect's :meth:`Dialect.authorize_handshake`,
- :meth:`Dialect.open_session` for each accepted connection: a
  :class:`~edgevoice.localagent.session.Session` of the dialect's ``session_class`` that
  runs it in the connection's thread,
- :meth:`Dialect.config_section` for ``LocalAgent.config_values()``.

Hooks with a default here (override only what the dialect needs): :meth:`check_options`,
:meth:`rest_route` (no REST), :meth:`authorize_handshake` (anyone may connect). A new
dialect writes::

    class EchoDialect(Dialect):
        name = "echo"
        ws_path = "/ws"
        session_class = EchoSession

        def config_section(self) -> dict[str, str]:
            return {"url": self.context.ws_base + self.ws_path}
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, ClassVar, Mapping
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection

from .context import DialectContext
from .options import AgentOptions
from .session import Session


@dataclass(frozen=True)
class RestRequest:
    """One REST request; ``query`` holds the first value of each parameter, ``body`` the bytes."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class RestAnswer:
    """A JSON answer to a REST request, with any extra headers (``Retry-After``)."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, error: str, message: str) -> RestAnswer:
        """The common error body ``{"error", "message"}`` (voiceapi, napster)."""
        return cls(status, {"error": error, "message": message})


@dataclass(frozen=True)
class Handshake:
    """The parts of a WebSocket opening handshake a dialect judges."""

    path: str
    query: Mapping[str, str]  #: first value of each query parameter
    headers: Mapping[str, str]


class HandshakeRefused(Exception):
    """Raised by :meth:`Dialect.authorize_handshake`: answer ``status`` and record ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Dialect(ABC):
    """One protocol the local agent speaks: REST routes, handshake, sessions, daemon config."""

    #: The name the CLI and the daemon's ``[agent] provider`` use.
    name: ClassVar[str]
    #: The path clients open the WebSocket on; any other path is answered 404.
    ws_path: ClassVar[str]
    #: Further paths the WebSocket is served on (gemini: the ephemeral-token endpoint).
    extra_ws_paths: ClassVar[tuple[str, ...]] = ()
    #: The session class that runs each accepted connection.
    session_class: ClassVar[type[Session]]
    #: ``AgentOptions.agent_id`` when left at None.
    default_agent_id: ClassVar[str] = "local-agent"

    def __init__(self, context: DialectContext) -> None:
        self.context = context
        if context.options.agent_id is None:  # filled in place: tests hold and flip this object
            context.options.agent_id = self.default_agent_id
        self.check_options(context.options)
        self._auth_lock = threading.Lock()
        # what authorize_handshake said of each connection, until open_session takes it
        self._auth_of: weakref.WeakKeyDictionary[ServerConnection, dict[str, Any]] = (
            weakref.WeakKeyDictionary())

    @property
    def options(self) -> AgentOptions:
        return self.context.options

    # -- hooks -------------------------------------------------------------------------
    def check_options(self, options: AgentOptions) -> None:
        """Refuse (ValueError) option values this dialect cannot honour; called on creation."""

    def rest_route(self, request: RestRequest) -> RestAnswer | None:
        """Answer a REST request, or None when its path is not part of this dialect (404)."""
        return None

    def authorize_handshake(self, handshake: Handshake) -> dict[str, Any]:
        """Judge a handshake on ``ws_path``: the session's auth details (recorded in ``ws_open``
        by most dialects) or :class:`HandshakeRefused`. By default anyone may connect."""
        return {}

    @abstractmethod
    def config_section(self) -> dict[str, str]:
        """The keys of the daemon's ``[<name>]`` section that point it at this agent."""

    # -- what the server calls -----------------------------------------------------------
    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Judge an opening handshake; a Response refuses it (websockets' ``process_request``)."""
        url = urlsplit(request.path)
        if url.path != self.ws_path and url.path not in self.extra_ws_paths:
            self.context.record("ws_bad_path", path=url.path)
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        try:
            if self.options.reject_auth:
                raise HandshakeRefused(HTTPStatus.FORBIDDEN, "reject_auth")
            auth = self.authorize_handshake(Handshake(url.path, query, request.headers))
        except HandshakeRefused as refused:
            self.context.record("auth_rejected", where="ws", reason=refused.reason)
            return connection.respond(refused.status, HTTPStatus(refused.status).phrase + "\n")
        with self._auth_lock:
            self._auth_of[connection] = auth
        return None

    def open_session(self, connection: ServerConnection) -> Session:
        """The session that serves an accepted connection (not started yet: call ``run()``)."""
        with self._auth_lock:
            auth = self._auth_of.pop(connection, {})
        return self.session_class(self.context, connection, auth)

    # -- helpers for dialects ------------------------------------------------------------
    def rest_key_refused(self, presented: str | None, expected: str) -> bool:
        """True, recorded as ``auth_rejected``, when ``reject_auth`` is on or the key a REST
        request ``presented`` is not the ``expected`` one."""
        if self.options.reject_auth or presented != expected:
            self.context.record("auth_rejected", where="rest", reason="bad_api_key")
            return True
        return False

    def issue_token(self, request: RestRequest, presented: str | None, purpose: str,
                    ttl_s: float, error: Callable[[int, str, str], RestAnswer]) -> str | RestAnswer:
        """A token endpoint (openai's client secrets, gemini's ephemeral tokens): a ``POST``
        showing the REST key (``presented``) gets a one-use token of ``purpose``, recorded as
        ``http_token``; otherwise ``error(status, code, message)`` (405 or 401)."""
        if request.method != "POST":
            return error(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
        if self.rest_key_refused(presented, self.options.api_key):
            return error(HTTPStatus.UNAUTHORIZED, "invalid_api_key", "API key not valid")
        token = self.context.tokens.issue(purpose, ttl_s)
        self.context.record("http_token", token=token)
        return token
