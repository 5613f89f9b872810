"""What happened inside the local agent, in order, for tests to wait on.

Every noteworthy thing (a connection, an utterance, a reply chunk run, an interruption)
is recorded as an :class:`Event`. Tests block on :meth:`EventLog.wait_for` instead of
sleeping::

    agent.wait_for("user_speech_end", timeout=10)
    agent.wait_for("interrupted", predicate=lambda e: e.data["event_id"] == 1)

Kinds (session events also carry ``conversation``: ``"conv_3"``; napster the connection
id ``"conn_3"``; navtalk the sessionId ``"sess_3"``):

- REST: ``http_signed_url`` (agent_id), ``http_token`` (token; openai client secrets and
  gemini ephemeral tokens too), ``http_heartbeat``;
  napster: ``http_ws_connection`` (connection_id, body), ``http_agent_connection``
  (connection_id, agent_id, body), ``http_agent_create`` (agent_id, body),
  ``http_agent_update`` (agent_id, body), ``http_agent_channel`` (agent_id, channel_type,
  body), ``http_rate_limited`` (retry_after), ``http_session_limit`` (open)
- auth: ``auth_rejected`` (where: rest|ws, reason), ``ws_bad_path`` (path); navtalk:
  ``connect_failed`` (event: insufficient_balance | navtalk_fail_event)
- lifecycle: ``ws_open`` (xuna: auth public|signed [+ token]; voiceapi: token; napster:
  auth header|query|both, connection_id; navtalk: by avatarId|name, avatar),
  ``ws_closed`` (by: server|client, code, reason, audio_s), ``stalled``,
  ``garbage_sent`` (count), ``error_sent`` (voiceapi, elevenlabs: code, close_code;
  napster: message),
  navtalk: ``warning_sent`` (message), ``session_updated`` (history_items)
- client messages: ``client_init`` (message, first), ``user_activity``, ``pong_ok``
  (event_id, rtt_ms), ``pong_bad`` (event_id), ``tool_result`` (message),
  ``client_unknown`` (type | binary_bytes), ``client_malformed`` (reason);
  napster: ``client_command`` (command, message), ``audio_form`` (key: data|audio, once
  per key); navtalk: ``history_item`` (role, text, ready), ``audio_before_ready`` (bytes),
  ``text_input`` (text), ``response_create`` (call_id or None), ``client_webrtc`` (type),
  ``client_command`` (command)
- elevenlabs: ``contextual_update`` (text); openai: ``session_update`` (session, tools),
  ``history_item`` (role, text), ``response_create`` (call_id or None), ``response_cancel``
  (active), ``truncate`` (item_id, audio_end_ms, sent_ms); gemini: ``setup`` (setup,
  model, resumed: the conversation id a handle continued, or None), ``resume_refused``,
  ``go_away_sent``, ``client_command`` (command), ``function_cancelled`` (call_id)
- function calls (napster, navtalk, elevenlabs, openai, gemini): ``function_called``
  (call_id, name, arguments),
  ``function_output`` (call_id, output), ``function_output_unexpected`` (call_id, output),
  ``function_timeout`` (call_id, got_output)
- audio: ``audio_first`` (bytes), ``user_speech_start`` (at: onset, session-audio
  seconds; recorded once speech has lasted min_speech_ms), ``user_speech_end``
  (seconds, at)
- replies: ``reply_start`` (event_id, seconds), ``reply_end`` (event_id, seconds sent,
  interrupted) exactly once per reply, ``interrupted`` (event_id, t, played_s, sent_s),
  ``late_audio_sent`` (event_id, chunks), ``ping_sent`` (event_id), napster:
  ``speech_started_sent`` (key, event_id)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)

#: Event data keys whose values are secrets and must never reach a log line.
SECRET_KEYS = frozenset({"token", "api_key", "signed_url"})


@dataclass(frozen=True)
class Event:
    """One recorded happening: monotonic time, kind (e.g. ``"reply_start"``) and details."""

    t: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` safe to log: secret values replaced by ``"***"``."""
    return {k: ("***" if k in SECRET_KEYS else v) for k, v in data.items()}


class EventLog:
    """Thread-safe append-only list of events with blocking waits."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._listeners: list[Callable[[Event], None]] = []

    def record(self, kind: str, **data: Any) -> Event:
        """Append an event, wake waiters, then tell listeners (outside the lock)."""
        event = Event(time.monotonic(), kind, data)
        with self._cond:
            self.events.append(event)
            listeners = list(self._listeners)
            self._cond.notify_all()
        log.debug("event %s %s", kind, redacted(data))
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", kind)
        return event

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for every event recorded from now on (any thread)."""
        with self._cond:
            self._listeners.append(listener)

    def matching(self, kind: str, predicate: Callable[[Event], bool] | None = None) -> list[Event]:
        """Events of ``kind`` recorded so far (that satisfy ``predicate``, if given)."""
        with self._cond:
            return self._matching(kind, predicate)

    def _matching(self, kind: str, predicate: Callable[[Event], bool] | None) -> list[Event]:
        return [e for e in self.events if e.kind == kind and (predicate is None or predicate(e))]

    def count(self, kind: str) -> int:
        with self._cond:
            return sum(1 for e in self.events if e.kind == kind)

    def wait_for(
        self,
        kind: str,
        count: int = 1,
        timeout: float = 10.0,
        predicate: Callable[[Event], bool] | None = None,
    ) -> list[Event]:
        """Block until at least ``count`` events of ``kind`` exist; return all of them.

        Raises :class:`TimeoutError` naming what was seen instead.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._matching(kind, predicate)
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = Counter(e.kind for e in self.events)
                    summary = ", ".join(f"{k}x{n}" for k, n in seen.items()) or "none"
                    raise TimeoutError(
                        f"waited {timeout:.1f} s for {count} {kind!r} event(s)"
                        f"{' matching the predicate' if predicate else ''}, found {len(found)};"
                        f" kinds seen so far: {summary}"
                    )
                self._cond.wait(remaining)
