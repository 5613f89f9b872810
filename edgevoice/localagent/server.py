"""Lifecycle of the local agent: one WebSocket server and one REST server on loopback.

::

    agent = LocalAgent(dialect="xuna")
    agent.start()
    ...  # point a client at agent.ws_base / agent.http_base, or agent.config_values()
    agent.wait_for("reply_end")
    agent.stop()

Both servers run in daemon threads. The agent makes one
:class:`~edgevoice.localagent.dialect.Dialect` (from :mod:`.registry`) with a
:class:`~edgevoice.localagent.context.DialectContext`, and hands it every REST request,
every WebSocket handshake and every accepted connection; each connection runs the
dialect's :class:`~edgevoice.localagent.session.Session` in the websockets library's
per-connection thread.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 (see _stop_at_exit)
import logging
import socket
import threading
import weakref
from typing import Any, Callable

from websockets.sync.server import Server, ServerConnection, serve

from .context import DialectContext
from .events import Event, EventLog
from .options import AgentOptions
from .registry import dialect_class
from .rest import RestServer

log = logging.getLogger(__name__)

# The logger handed to the websockets library, which logs request lines (with ?token=...)
# at DEBUG: kept above that so tokens never reach a log, whatever the root level.
_websockets_log = logging.getLogger(__name__ + ".wire")
_websockets_log.setLevel(logging.INFO)

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
        self.dialect_name = dialect
        #: All a dialect sees of this agent; ``options.agent_id`` is filled in by the dialect.
        options = options if options is not None else AgentOptions()
        self.context = DialectContext(options, host, ws_port, http_port)
        self.dialect = dialect_class(dialect)(self.context)
        self._ws_server: Server | None = None
        self._rest_server: RestServer | None = None
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopped = False

    # -- addresses and config ------------------------------------------------------------
    @property
    def options(self) -> AgentOptions:
        """The live options: flip a field and the sessions act on it."""
        return self.context.options

    def config_values(self) -> dict[str, dict[str, str]]:
        """Daemon config sections -> keys -> values that point a daemon at this agent."""
        section = self.dialect.config_section()
        return {"agent": {"provider": self.dialect_name}, self.dialect_name: section}

    @property
    def ws_base(self) -> str:
        """``ws://host:port`` once started (the bound ports: ``context.ws_port``, ``http_port``)."""
        return self.context.ws_base

    @property
    def http_base(self) -> str:
        return self.context.http_base

    # -- events ----------------------------------------------------------------------------
    @property
    def event_log(self) -> EventLog:
        """What happened in this agent, in order; tests wait on it."""
        return self.context.events

    def wait_for(self, kind: str, *args: Any, **kwargs: Any) -> list[Event]:
        """Block until events of ``kind`` exist; return all matching ones
        (``count=1, timeout=10.0, predicate=None``: :meth:`EventLog.wait_for`)."""
        return self.context.events.wait_for(kind, *args, **kwargs)

    def count(self, kind: str) -> int:
        """How many events of ``kind`` were recorded."""
        return self.context.events.count(kind)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for each new event (from server threads)."""
        self.context.events.add_listener(listener)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalAgent:
        """Bind both servers (port 0 picks a free one) and serve in daemon threads."""
        if self._started:
            raise RuntimeError("LocalAgent.start() called twice")
        self._started = True
        self._ws_server = serve(
            self._handle_connection,
            self.context.host,
            self.context.ws_port,
            process_request=self.dialect.process_request,
            compression=None,
            ping_interval=None,  # xuna pings at application level; the others have none
            close_timeout=CLOSE_TIMEOUT_S,
            open_timeout=5,
            max_size=4 * 1024 * 1024,
            logger=_websockets_log,
        )
        self.context.ws_port = self._ws_server.socket.getsockname()[1]
        try:
            self._rest_server = RestServer(self.dialect, self.context.host, self.context.http_port)
        except Exception:
            self._ws_server.shutdown()
            raise
        self.context.http_port = self._rest_server.server_address[1]
        self._spawn("localagent-ws", self._ws_server.serve_forever)
        self._spawn("localagent-http", lambda: self._rest_server.serve_forever(poll_interval=0.1))
        _stop_at_exit(self)
        log.info("local %s agent listening: ws %s, http %s", self.dialect_name, self.ws_base,
                 self.http_base)
        return self

    def stop(self) -> None:
        """Close every connection and both servers (about a second at most); idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self.context.stopping.set()
        if self._rest_server is not None:
            self._rest_server.shutdown()
            self._rest_server.server_close()
        if self._ws_server is not None:
            closer = threading.Thread(target=self._ws_server.shutdown, name="localagent-stop",
                                      daemon=True)
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
        log.info("local %s agent stopped", self.dialect_name)

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

    # -- WebSocket connections (run in the websockets library's connection threads) -------
    def _handle_connection(self, connection: ServerConnection) -> None:
        self.context.session_opened()
        try:
            try:
                session = self.dialect.open_session(connection)
            except Exception:
                log.exception("could not set up a %s session", self.dialect_name)
                return
            session.run()
        finally:
            self.context.session_closed()


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


__all__ = ["LocalAgent"]
