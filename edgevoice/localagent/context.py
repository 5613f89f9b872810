"""What a dialect of the local agent may use: the narrow view it gets of the agent.

A :class:`~edgevoice.localagent.dialect.Dialect` and each of its sessions receive one
:class:`DialectContext` and nothing else of the server::

    context = DialectContext(AgentOptions(), host="127.0.0.1")
    context.record("http_token", token=token)       # the event log tests wait on
    token = context.tokens.issue("xuna", 900)        # single-use session tokens
    context.next_id("conn")                          # "conn_1", "conn_2", ...

The dialect's own state (napster's agents, its rate-limit clock) lives on the dialect
object itself. The server fills in the bound ports and counts the open sessions.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from .events import EventLog
from .options import AgentOptions
from .tokens import TokenStore


class DialectContext:
    """Options, tokens, events, addresses and counters of one agent, for its dialect."""

    def __init__(
        self, options: AgentOptions, host: str = "127.0.0.1", ws_port: int = 0, http_port: int = 0
    ) -> None:
        #: How the agent behaves; mutable on purpose: tests flip fields and sessions read them live.
        self.options = options
        self.tokens = TokenStore()
        #: Everything noteworthy that happened, in order (tests wait on it).
        self.events = EventLog()
        #: Set when the agent stops: sessions close with 1001, waits end early.
        self.stopping = threading.Event()
        self.host = host
        self.ws_port = ws_port  #: the bound port once the agent has started (0 before: pick one)
        self.http_port = http_port
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}
        self._audio_seconds = 0.0
        self._open_sessions = 0

    # -- addresses ---------------------------------------------------------------------
    @property
    def ws_base(self) -> str:
        """``ws://host:port`` of the WebSocket server."""
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def http_base(self) -> str:
        """``http://host:port`` of the REST server."""
        return f"http://{self.host}:{self.http_port}"

    # -- events and ids ----------------------------------------------------------------
    def record(self, kind: str, **data: Any) -> None:
        """Add an event of ``kind`` to the log (see :mod:`.events` for the kinds)."""
        self.events.record(kind, **data)

    def next_id(self, prefix: str) -> str:
        """``"<prefix>_<n>"``, n counting from 1 per prefix over the agent's life."""
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(1))
            return f"{prefix}_{next(counter)}"

    # -- counters ----------------------------------------------------------------------
    def add_audio_seconds(self, seconds: float) -> None:
        """Account for user audio a session received."""
        with self._lock:
            self._audio_seconds += seconds

    @property
    def audio_seconds(self) -> float:
        """User audio received over all sessions so far."""
        with self._lock:
            return self._audio_seconds

    def session_opened(self) -> None:
        """A WebSocket session got past the handshake (the server calls this)."""
        with self._lock:
            self._open_sessions += 1

    def session_closed(self) -> None:
        """A session counted by :meth:`session_opened` ended."""
        with self._lock:
            self._open_sessions -= 1

    @property
    def open_sessions(self) -> int:
        """WebSocket sessions past the handshake and not yet ended."""
        with self._lock:
            return self._open_sessions
