"""Lifecycle of the local agent: one WebSocket server and one REST server on loopback.

::

    agent = LocalAgent(dialect="xuna")
    agent.start()
    ...  # point a client at agent.ws_base / agent.http_base, or agent.config_values()
    agent.wait_for("reply_end")
    agent.stop()

Both servers run in daemon threads. Each WebSocket connection runs a dialect
:class:`~edgevoice.localagent.session.Session` in the websockets library's
per-connection thread.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 (see _stop_at_exit)
import itertools
import logging
import socket
import threading
import weakref
from typing import Any, Callable, Mapping

from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from . import napster, navtalk, voiceapi, xuna
from .events import Event, EventLog
from .options import AgentOptions
from .rest import RestServer
from .session import Session
from .tokens import TokenStore

log = logging.getLogger(__name__)

# The websockets library logs request lines (with ?token=...) at DEBUG: keep its logger
# above that so tokens never reach a log, whatever the root level.
_wire_log = logging.getLogger(__name__ + ".wire")
_wire_log.setLevel(logging.INFO)

DIALECTS = {
    "xuna": (xuna, xuna.XunaSession),
    "voiceapi": (voiceapi, voiceapi.VoiceApiSession),
    "napster": (napster, napster.NapsterSession),
    "navtalk": (navtalk, navtalk.NavTalkSession),
}

#: ``AgentOptions.agent_id`` when left at None: the xuna agent, or napster's Omniagent.
DEFAULT_AGENT_IDS = {"napster": "agent_local"}
DEFAULT_AGENT_ID = "local-agent"

#: Seconds the server waits for a client's close-frame answer.
CLOSE_TIMEOUT_S = 0.5
#: How long stop() lets connections close politely before cutting their sockets.
STOP_GRACE_S = 1.0


class LocalAgent:
    """A fake cloud voice agent on loopback, speaking one dialect."""

    def __init__(
        self,
        dialect: str = "xuna",
        options: AgentOptions | None = None,
        host: str = "127.0.0.1",
        ws_port: int = 0,
        http_port: int = 0,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
        self.dialect = dialect
        self.options = options if options is not None else AgentOptions()
        if self.options.agent_id is None:  # filled in place: tests hold and flip this object
            self.options.agent_id = DEFAULT_AGENT_IDS.get(dialect, DEFAULT_AGENT_ID)
        self.host = host
        self.ws_port = ws_port
        self.http_port = http_port
        self.log = EventLog()
        self.tokens = TokenStore()
        self.stopping = threading.Event()
        self._module, self._session_class = DIALECTS[dialect]
        check = getattr(self._module, "check_options", None)
        if check is not None:
            check(self.options)
        self._conversations = itertools.count(1)
        self._lock = threading.Lock()
        self._audio_seconds = 0.0
        self._counters: dict[str, itertools.count[int]] = {}
        self._open_sessions = 0
        #: Per-agent dialect state (napster: agents, rate limit), from the module's ``new_state``.
        self.dialect_state: Any = getattr(self._module, "new_state", lambda agent: None)(self)
        self._ws_server: Server | None = None
        self._rest_server: RestServer | None = None
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopped = False

    # --- addresses and config ---------------------------------------------------------
    @property
    def ws_base(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def config_values(self) -> dict[str, dict[str, str]]:
        """Daemon config sections -> keys -> values that point a daemon at this agent."""
        opts = self.options
        section: dict[str, str]
        if self.dialect == "napster":
            section = {"api_url": self.http_base, "api_key": opts.api_key, "companion_id": opts.companion_id}
            if opts.omniagent:
                section["agent_id"] = str(opts.agent_id)
        elif self.dialect == "navtalk":
            section = {"url": self.ws_base + navtalk.WS_PATH, "license": opts.api_key, "name": opts.navtalk_name}
        elif self.dialect == "xuna":
            section = {
                "agent_id": opts.agent_id,
                "url": self.ws_base + xuna.WS_PATH,
                "api_url": self.http_base,
            }
            if opts.private:
                section["api_key"] = opts.api_key
        else:
            section = {"api_url": self.http_base, "api_key": opts.api_key}
        return {"agent": {"provider": self.dialect}, self.dialect: section}

    # --- events -----------------------------------------------------------------------
    @property
    def events(self) -> list[Event]:
        """Every event recorded so far (the live list: read it, do not modify it)."""
        return self.log.events

    def wait_for(
        self,
        kind: str,
        count: int = 1,
        timeout: float = 10.0,
        predicate: Callable[[Event], bool] | None = None,
    ) -> list[Event]:
        """Block until ``count`` events of ``kind`` exist; return all matching ones."""
        return self.log.wait_for(kind, count, timeout, predicate)

    def count(self, kind: str) -> int:
        return self.log.count(kind)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for each new event (from server threads)."""
        self.log.add_listener(listener)

    @property
    def audio_seconds(self) -> float:
        """User audio received over all sessions so far."""
        with self._lock:
            return self._audio_seconds

    # --- used by sessions and REST --------------------------------------------------------
    def new_conversation_id(self) -> str:
        return f"conv_{next(self._conversations)}"

    def add_audio_seconds(self, seconds: float) -> None:
        with self._lock:
            self._audio_seconds += seconds

    def next_id(self, prefix: str) -> str:
        """``"<prefix>_<n>"``, n counting from 1 per prefix over this agent's life."""
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(1))
            return f"{prefix}_{next(counter)}"

    @property
    def open_sessions(self) -> int:
        """WebSocket sessions past the handshake and not yet ended."""
        with self._lock:
            return self._open_sessions

    def rest_route(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[Any, ...] | None:
        return self._module.rest_route(self, method, path, query, headers, body)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> LocalAgent:
        """Bind both servers (port 0 picks a free one) and serve in daemon threads."""
        if self._started:
            raise RuntimeError("LocalAgent.start() called twice")
        self._started = True
        self._ws_server = serve(
            self._handle_connection,
            self.host,
            self.ws_port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,  # xuna pings at application level; the others have none
            close_timeout=CLOSE_TIMEOUT_S,
            open_timeout=5,
            max_size=4 * 1024 * 1024,
            logger=_wire_log,
        )
        self.ws_port = self._ws_server.socket.getsockname()[1]
        try:
            self._rest_server = RestServer(self, self.host, self.http_port)
        except Exception:
            self._ws_server.shutdown()
            raise
        self.http_port = self._rest_server.server_address[1]
        self._spawn("localagent-ws", self._ws_server.serve_forever)
        self._spawn("localagent-http", lambda: self._rest_server.serve_forever(poll_interval=0.1))
        _stop_at_exit(self)
        log.info("local %s agent listening: ws %s, http %s", self.dialect, self.ws_base, self.http_base)
        return self

    def stop(self) -> None:
        """Close every connection and both servers (about a second at most); idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self.stopping.set()
        if self._rest_server is not None:
            self._rest_server.shutdown()
            self._rest_server.server_close()
        if self._ws_server is not None:
            closer = threading.Thread(target=self._ws_server.shutdown, name="localagent-stop", daemon=True)
            closer.start()
            closer.join(STOP_GRACE_S)
            if closer.is_alive():
                # A handler is stuck in sendall() to a client that never reads: cut the
                # sockets under it so its send fails and the thread ends.
                self._cut_connections()
                closer.join(2.0)
            if closer.is_alive():
                log.warning("local agent: some connection threads did not finish")
        for thread in self._threads:
            thread.join(1.0)
        log.info("local %s agent stopped", self.dialect)

    def __enter__(self) -> LocalAgent:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _cut_connections(self) -> None:
        server = self._ws_server
        assert server is not None
        with server.lock:
            connections = list(server.all_connections)
        for connection in connections:
            try:
                connection.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- WebSocket callbacks (run in connection threads) -----------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return self._module.process_request(self, connection, request)

    def _handle_connection(self, connection: ServerConnection) -> None:
        auth = getattr(connection, "localagent_auth", {})
        with self._lock:
            self._open_sessions += 1
        try:
            try:
                session: Session = self._session_class(self, connection, auth)
            except Exception:
                log.exception("could not set up a %s session", self.dialect)
                return
            session.run()
        finally:
            with self._lock:
                self._open_sessions -= 1


def _stop_at_exit(agent: LocalAgent) -> None:
    """Stop ``agent`` before the interpreter waits for non-daemon threads at exit.

    The websockets server runs each connection in a non-daemon thread; without this a
    forgotten ``stop()`` would hang interpreter exit while a client stays connected.
    (``Server.shutdown`` lazily imports ``concurrent.futures.thread``, which cannot be
    imported during interpreter shutdown: hence the eager import at the top.)
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return
    ref = weakref.ref(agent)

    def stop_if_alive() -> None:
        still = ref()
        if still is not None:
            still.stop()

    try:
        register(stop_if_alive)
    except RuntimeError:  # interpreter already shutting down
        pass


__all__ = ["LocalAgent", "DIALECTS"]
