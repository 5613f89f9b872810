"""What flows through a session and what it counts: the bounded mic queue between the
capture and send threads, the filter that drops late audio of an interrupted response,
the counters kept across sessions, and the events a session's own threads hand to the
session thread."""

from __future__ import annotations

import bisect
import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import websocket

from edgevoice import redact
from edgevoice.audio.bargein import Decision

log = logging.getLogger(__name__)


#: bucket bounds (s) of the two latency histograms (docs/metrics.md)
ONSET_TO_PAUSE_BUCKETS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
                          0.75, 1.0)
CAPTURE_TO_WIRE_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
                           0.1, 0.25)


class Buckets:
    """A histogram kept as plain numbers by the one thread that observes: ``counts[i]``
    values at or under ``bounds[i]`` (not cumulative; the last one: above every bound),
    and their sum. No lock and no allocation beyond the float sum: fit for the 20 ms path.
    The exporter reads it when scraped (a reader may see the count a value ahead of the
    sum)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class Tally:
    """Counts by label values, from any thread (tool threads): ``add(("get_time",
    "ok"))``; :meth:`snapshot` for the reader. Not for the audio path (it locks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}

    def add(self, labels: tuple[str, ...]) -> None:
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0) + 1

    def snapshot(self) -> dict[tuple[str, ...], int]:
        with self._lock:
            return dict(self._counts)


class Stats:
    """Counters kept across sessions (the demo, the bench and the metrics exporter read
    them). Each starts at zero; the threads that own a counter add to it."""

    def __init__(self) -> None:
        self.sessions_started = 0        # attempts (bootstrap or connect begun)
        self.sessions_connected = 0      # connected, first messages sent
        self.sessions_streaming = 0
        self.frames_sent = 0
        self.frames_dropped = 0          # oldest mic frames dropped: the network stalled
        self.agent_audio_bytes = 0       # at the agent's own rate
        self.agent_audio_seconds = 0.0
        self.late_chunks_dropped = 0     # agent audio of an interrupted response
        self.interruptions = 0           # by the server, over the agent's voice
        self.local_pauses = 0            # the device heard the user over the agent
        self.local_flushes = 0           # … and stopped the response itself (voiceapi)
        self.false_barge_ins = 0         # paused, nothing confirmed, resumed (echo included)
        self.echo_barge_ins = 0          # … of which paused on loudness alone: echo
        self.tool_calls = Tally()        # (tool name or "_unknown", result)
        self.onset_to_pause = Buckets(ONSET_TO_PAUSE_BUCKETS)     # capture thread
        self.capture_to_wire = Buckets(CAPTURE_TO_WIRE_BUCKETS)   # send thread
        self.pongs_sent = 0
        self.malformed = 0
        # the last 2 minutes of frames: capture-to-wire latency and send instants
        self.latencies: collections.deque = collections.deque(maxlen=6000)
        self.send_times: collections.deque = collections.deque(maxlen=6000)

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

    @property
    def room(self) -> int:
        """Frames that fit before the oldest is dropped."""
        return max(0, self._max - self._q.qsize())

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


AUDIBLE_S = 0.3  # the agent counts as audible this long after its last block (as speaking)


def stop_playback(engine, response_id: Any) -> tuple[float, float, bool]:
    """Flush the agent's voice: (seconds of ``response_id`` that reached the speaker,
    seconds dropped, whether the agent was audible or had audio waiting). What played is
    read after the flush, the only moment it is final (read before, the player may hand
    the device more blocks in between: a truncate would then be short of what was heard)."""
    per_s = 2.0 * engine.playback.rate
    dropped = engine.flush_playback()
    played = engine.buffer.played_of(response_id)
    audible = dropped > 0 or engine.speaker.last_audible >= time.monotonic() - AUDIBLE_S
    return played / per_s, dropped / per_s, audible


# -- events the session's own threads pass to its main loop ---------------------------------
@dataclass(frozen=True, slots=True)
class BargeInDone:
    """A barge-in decision carried out on the capture thread, to be logged."""

    decision: Decision
    played_s: float
    dropped_s: float
    echo: bool = False  #: RESUME of a pause on loudness alone that voice never confirmed

    def record(self, stats: Stats, echo: Any = None) -> bool:
        """Count and log it (on the session thread); True when playback was paused, so
        the state is "listening" again. ``echo``: the engine's canceller, or None."""
        if self.decision is Decision.PAUSE:
            stats.local_pauses += 1
            log.info("user talks over the agent: paused after %.2f s of its answer (%s)",
                     self.played_s, "no echo canceller" if echo is None else
                     f"echo canceller removes {echo.reduction_db:.0f} dB, speaker delay "
                     f"{echo.delay_s * 1000:+.0f} ms", extra={"event": "barge_in"})
            return True
        if self.decision is Decision.RESUME:
            stats.echo_barge_ins += self.echo  # first: a scrape never sees more resumed
            stats.false_barge_ins += 1
            log.info("no interruption followed: the agent resumes (%d false barge-in(s) so "
                     "far)", stats.false_barge_ins, extra={"event": "barge_in_resumed"})
        else:
            stats.local_flushes += 1
            log.info("barge-in confirmed on the device: %.2f s of the answer reached the "
                     "speaker, %.2f s dropped", self.played_s, self.dropped_s,
                     extra={"event": "barge_in_confirmed"})
        return False


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


class ToolReply:
    """Sends a ``[tools]`` program's answer to the agent (on the tool's thread), unless the
    session has ended meanwhile; a send that fails is a warning, not an error."""

    def __init__(self, call, provider, send, closed: threading.Event) -> None:
        self.call, self.provider, self.send, self.closed = call, provider, send, closed

    def __call__(self, output: str, is_error: bool) -> None:
        name = self.call.name
        if self.closed.is_set():
            log.info("session ended before %s answered; result dropped", name)
            return
        try:
            for message in self.provider.tool_result(self.call, output, is_error):
                self.send(message)
        except (websocket.WebSocketException, OSError) as exc:
            log.warning("could not send the result of %s: %s", name, redact.describe_error(exc))
