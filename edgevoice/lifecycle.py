"""The daemon's life, named: its states, the commands that steer it, the one queue those
commands (and a session's events) travel on to the session thread, and what a session
needs of the daemon (:class:`SessionHost`), what the service watches
(:class:`DaemonObserver`) and how long to wait before reconnecting (:class:`ReconnectPolicy`).

``DaemonState`` is a ``StrEnum``, so a listener written against the old strings
(``state == "listening"``) keeps working. The states, in the order a day goes::

    starting ──> connecting ──> listening <──> speaking   (always-on, push-to-talk)
       │             ^                 │
       │             └─── offline <────┘   (the session ended badly: "retry in N s")
       ├──> idle ──> connecting …            (toggle mode: waits for the button)
       └──> waiting for device ──> connecting | idle      (retried every 5 s)
    any state ──> muted ──> (the mode's start)   (privacy mute: no session, mic closed)
    any state ──> stopping ──> stopped

Push-to-talk is not a state of the daemon: it says what the microphone sends
(:attr:`Daemon.mic_enabled`) whatever the session is doing, and the LED shows it on top of
the state (:func:`edgevoice.device.led.led_state_for`). The privacy mute is a state: the
capture stream is closed and no session runs (:mod:`edgevoice.mute`).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import backoff

from edgevoice.providers.base import Outcome, Retry

if TYPE_CHECKING:  # types only: this module imports nothing of the daemon's
    from edgevoice.config.sections import BargeInSettings
    from edgevoice.audio.engine import AudioEngine
    from edgevoice.flow import Stats
    from edgevoice.history import History
    from edgevoice.session import Session
    from edgevoice.tools import ToolRunner

log = logging.getLogger(__name__)

HEALTHY_SESSION_S = 10.0   # streaming this long resets the reconnect backoff


class DaemonState(StrEnum):
    STARTING = "starting"
    WAITING_FOR_DEVICE = "waiting for device"  #: a sound device is missing; retried
    IDLE = "idle"                              #: toggle mode, no session wanted
    WAITING_FOR_WAKE = "waiting for wake word"  #: wake-word mode: only the detector hears
    CONNECTING = "connecting"                  #: bootstrap request, WebSocket handshake
    LISTENING = "listening"                    #: streaming; the agent is silent
    SPEAKING = "speaking"                      #: streaming; the agent's voice plays
    FOLLOW_UP = "follow-up"                    #: wake-word mode: the answer ended; the
    #:                                            session stays open for a question more
    OFFLINE = "offline"                        #: the last session failed; waiting to retry
    MUTED = "muted"                            #: privacy mute: the capture stream is closed
    STOPPING = "stopping"                      #: :meth:`Daemon.stop` was called
    STOPPED = "stopped"


class Command(StrEnum):
    """What the button, signals and the service may ask of the daemon. Each travels on
    the :class:`Inbox` and is applied by the session thread, in order."""

    MUTE = "mute"                      #: privacy mute; value: an edgevoice.mute.MuteRequest
    MIC = "mic"                        #: push-to-talk; value: True while the button is down
    INTERRUPT = "interrupt"            #: stop the agent's voice now
    WAKE = "wake"                      #: the wake word was heard; value: its model name
    VOLUME = "volume"                  #: value: (absolute level 0-100 | None, step)
    USER_ACTIVITY = "user activity"    #: tell the server the user is there
    START_SESSION = "start session"
    END_SESSION = "end session"
    RESTART_SESSION = "restart session"
    RELOAD = "reload"                  #: re-read the configuration (SIGHUP)
    STOP = "stop"                      #: wakes the session thread; the stop flag says why


class Reload(StrEnum):
    """What applying a re-read configuration asks of the daemon."""

    NOTHING = "nothing"   #: applied; nothing that needs a new session changed
    AGENT = "agent"       #: applied; start a new session
    AUDIO = "audio"       #: applied; reopen the sound devices
    REJECTED = "rejected"  #: invalid; the running configuration stays


class ReconnectPolicy:
    """How long to wait before the next attempt, from how the last one ended."""

    def __init__(self, max_delay: float, auth_delay: float, rng: random.Random | None = None):
        self.max_delay = max_delay
        self.auth_delay = auth_delay
        self._rng = rng or random.Random()
        self.reset()

    def reset(self) -> None:
        self._expo = backoff.expo(base=2, factor=1, max_value=self.max_delay)
        self._expo.send(None)

    def after_failure(self, outcome: Outcome, streamed_s: float, lasted_s: float) -> float:
        """The wait before the next attempt after a session that ended badly, logged with
        its reason: it streamed ``streamed_s`` (long enough resets the backoff) and lasted
        ``lasted_s`` in all."""
        if streamed_s >= HEALTHY_SESSION_S:
            self.reset()
        delay = self.next_delay(outcome)
        if outcome.retry is Retry.AUTH:
            log.error("%s; the key looks wrong, retrying in %.0f s", outcome.reason, delay,
                      extra={"event": "auth_failed"})
        elif outcome.retry is Retry.LONG:
            log.error("%s; retrying in %.0f s", outcome.reason, delay,
                      extra={"event": "session_failed"})
        else:
            log.warning("session ended after %.1f s: %s; reconnecting in %.1f s", lasted_s,
                        outcome.reason, delay, extra={"event": "session_ended"})
        return delay

    def next_delay(self, outcome: Outcome) -> float:
        if outcome.retry in (Retry.AUTH, Retry.LONG):  # a wrong key, an empty account
            return self.auth_delay * self._rng.uniform(0.9, 1.1)
        ceiling = next(self._expo)
        if outcome.retry is Retry.LATER and outcome.retry_after is not None:
            return max(outcome.retry_after, self._rng.uniform(0, ceiling))
        return self._rng.uniform(0, ceiling)  # full jitter, as backoff.full_jitter


class DaemonObserver:
    """What the service layer watches besides the state. Every method runs on the
    session thread and must return quickly; the defaults do nothing."""

    def audio_opened(self, engine: AudioEngine) -> None:
        """The sound devices are open and running (again, after a reopen)."""

    def waiting_for_device(self, problem: str) -> None:
        """A sound device is missing; the daemon retries every few seconds."""

    def tick(self, now: float) -> None:
        """Every round of the session thread (at least every 100 ms)."""

    def activity(self) -> None:
        """Speech either way in the conversation."""

    def controls_changed(self) -> None:
        """A command changed the mic (mute, push-to-talk) or whether a session is wanted."""

    def mute_applied(self, result: Any) -> None:
        """A :attr:`Command.MUTE` was applied (or refused): an
        :class:`edgevoice.mute.MuteResult`."""

    def session_ended(self, outcome: Outcome, delay: float | None) -> None:
        """A session (or an attempt at one) ended with ``outcome``; the next attempt comes
        after ``delay`` seconds (None: at once, or when the button asks for it). Not
        called when the daemon stops."""

    def session_event(self, event: object) -> None:
        """The session has handled ``event`` from its threads (a transcript, a tool call…)."""

    def tools_running(self, count: int) -> None:
        """``count`` [tools] programs are running now (one started or ended)."""

    def config_applied(self, config: Any) -> None:
        """A reloaded configuration was applied (SIGHUP)."""


@dataclass(frozen=True, slots=True)
class ToolsRunning:
    """On the inbox from a tool's thread: how many [tools] programs run now."""

    count: int


@dataclass(frozen=True, slots=True)
class Order:
    """A command with its value, as it waits on the inbox."""

    command: Command
    value: Any = None


class Inbox:
    """The session thread's one queue: :class:`Order` from any thread, and
    ``(session, event)`` pairs from a session's own threads. Bounded; ``put`` never
    blocks (a full inbox means the session thread is far behind: the item is dropped and
    the caller told so)."""

    def __init__(self, size: int = 2000) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=size)

    def put(self, item: Any) -> bool:
        try:
            self._q.put_nowait(item)
            return True
        except queue.Full:
            return False

    def order(self, command: Command, value: Any = None) -> None:
        if not self.put(Order(command, value)):
            log.warning("the session thread is behind; the %s command was dropped", command)

    def get(self, timeout: float) -> Any:
        """The next item, or None after ``timeout`` seconds of nothing."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[Any]:
        """Everything waiting now (tests, and the shutdown)."""
        items = []
        while True:
            try:
                items.append(self._q.get_nowait())
            except queue.Empty:
                return items


class SessionHost(Protocol):
    """What a session needs from whoever runs it (the daemon; tests pass a small double)."""

    stats: Stats            #: counters kept across sessions
    halt: threading.Event   #: set when the daemon stops: a connect in progress is abandoned

    def deliver(self, session: Session, event: object) -> bool:
        """Hand an event to the session thread (from the send, receive and capture
        threads; never blocks). False: the inbox was full and the event is lost."""

    def state_changed(self, state: DaemonState, detail: str) -> None: ...

    def beat(self) -> None:
        """Still alive (called while the session thread is blocked in a connect)."""

    def activity(self) -> None:
        """Speech either way (toggle mode's idle timer starts again)."""


@dataclass(frozen=True)
class SessionOptions:
    """What one session uses besides the provider, the devices and its settings."""

    mic_frames: int = 50                    #: the mic queue's bound (frames of 20 ms)
    tools: ToolRunner | None = None
    history: History | None = None
    barge_in: BargeInSettings | None = None  #: None: no local barge-in
