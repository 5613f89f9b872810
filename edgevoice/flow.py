"""What flows through a session and what it counts: the bounded mic queue between the
capture and send threads, the filter that drops late audio of an interrupted response,
and the counters kept across sessions."""

from __future__ import annotations

import collections
import queue
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """Counters kept across sessions (the demo and the bench print them)."""

    sessions_started: int = 0
    sessions_streaming: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0          # oldest mic frames dropped because the network stalled
    agent_audio_bytes: int = 0       # at the agent's own rate
    agent_audio_seconds: float = 0.0
    late_chunks_dropped: int = 0     # agent audio of an interrupted response
    interruptions: int = 0           # by the server
    local_pauses: int = 0            # the device heard the user over the agent
    local_flushes: int = 0           # … and stopped the response itself (voiceapi)
    false_barge_ins: int = 0         # paused, nothing confirmed, resumed
    pongs_sent: int = 0
    malformed: int = 0
    # the last 2 minutes of frames: capture-to-wire latency and send instants
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6000))
    send_times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6000))

    def latency_percentiles(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {"p50_ms": float("nan"), "p99_ms": float("nan")}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000.0
        return {"p50_ms": round(pick(0.50), 3), "p99_ms": round(pick(0.99), 3)}


class MicQueue:
    """Bounded queue of (frame, t_captured). ``put`` never blocks: when full the oldest
    frame is dropped and counted. Built on the C-implemented ``queue.SimpleQueue`` so the
    20 ms path takes no Python-level locks."""

    def __init__(self, max_frames: int) -> None:
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._max = max_frames
        self.dropped = 0

    def put(self, frame: bytes, t: float) -> None:
        q = self._q
        q.put((frame, t))
        if q.qsize() > self._max:
            try:
                q.get_nowait()
                self.dropped += 1
            except queue.Empty:  # the send thread took it meanwhile
                pass

    def get(self, timeout: float) -> tuple[bytes, float] | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def wake(self) -> None:
        """Make a waiting :meth:`get` return None at once (the session is ending)."""
        self._q.put(None)

    def clear(self) -> None:
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass


class LateAudioFilter:
    """Drops agent audio that belongs to an interrupted response.

    xuna tags audio with an increasing ``event_id``; after an interruption every chunk whose
    id is at or below the interrupted one is late (ids compare as numbers, other ids by
    equality). Dialects without ids: after an interruption, audio is dropped until the
    provider says the response is done, or until the audio pauses for ``gap_s`` (the
    cancelled stream has ended and the next response starts).
    """

    def __init__(self, gap_s: float = 0.5) -> None:
        self.cutoff: Any = None
        self.last_id: Any = None
        self.gap_s = gap_s
        self.dropping = False
        self._last_arrival = 0.0

    def interrupt(self, response_id: Any) -> None:
        self.cutoff = response_id if response_id is not None else self.last_id
        if self.last_id is None:  # this dialect's audio carries no ids (napster, navtalk, …)
            self.dropping = True

    def response_done(self) -> None:
        self.dropping = False

    def admit(self, response_id: Any, now: float = 0.0) -> bool:
        if response_id is None:
            if self.dropping:
                if now - self._last_arrival < self.gap_s:
                    self._last_arrival = now
                    return False
                self.dropping = False
            self._last_arrival = now
            return True
        cutoff = self.cutoff
        if cutoff is not None:
            if isinstance(response_id, int) and isinstance(cutoff, int):
                if response_id <= cutoff:
                    return False
            elif response_id == cutoff:
                return False
        self.last_id = response_id
        return True


# -- events the session's own threads pass to its main loop ---------------------------------
@dataclass(frozen=True, slots=True)
class UserActivity:
    """The user is present (button): tell the server where the dialect can."""


@dataclass(frozen=True, slots=True)
class BargeInDone:
    """A barge-in decision carried out on the capture thread, to be logged."""

    decision: str   # pause | resume | flush
    played_s: float
    dropped_s: float


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection ended (close frame or error)."""

    code: int | None
    reason: str


def close_details(data: bytes) -> tuple[int | None, str]:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        return code, data[2:].decode("utf-8", "replace")[:120]
    return None, ""
