"""Wake-word mode (``[agent] mode = wake-word``): the daemon's half that listens for the
wake word, holds the question while a session opens, and ends the session when the
conversation has gone quiet.

The states it drives (what the LED and the sounds follow)::

    waiting for wake word ──wake──> connecting ──> listening <──> speaking
            ^                                         ^              │
            │                                         └─ speech ─ follow-up <┘ (answer done)
            └──────── quiet, or no follow-up question within follow_up_s ──┘

Two sides, one object (:class:`WakeWord`, built by the daemon in wake-word mode):

- the **capture thread** calls the frame sink it is given: while waiting, each 20 ms frame
  goes to the :class:`~edgevoice.audio.wakeword.WakeWordDetector` and is dropped; after a
  detection the frames are kept in a bounded backlog (the voiced tail of the wake phrase
  right after the detection is dropped first), and once the session streams the backlog
  goes to its mic queue in order, then every live frame. A frame before the detection is
  never kept, so the audio before (and of) the wake word never leaves the device.
- the **session thread** calls :meth:`listen` (no session: show the wait, feed the
  detector), :meth:`woken` (the WAKE command), :meth:`sink` (a session opens),
  :meth:`check` (every round of a session: the follow-up window and the quiet timer) and
  :meth:`ended`.

A session is opened on the wake word, not kept open and un-muted: a held-open session is
billed by the minute while the cloud hears nothing, and the question is not lost while
connecting (it waits in the backlog and reaches the agent faster than real time). The
README's "Wake word" section has the measured wake → first-frame time.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import webrtcvad

from edgevoice.audio.wakeword import WakeWordDetector, WakeWordUnavailable
from edgevoice.lifecycle import DaemonState
from edgevoice.providers.base import Outcome, Retry

if TYPE_CHECKING:
    from edgevoice.audio.engine import AudioEngine
    from edgevoice.config import Config
    from edgevoice.session import Session

log = logging.getLogger(__name__)

FRAME_S = 0.02
WAKE_TAIL_S = 0.3      # voice just after a detection is the phrase's end: dropped (at most)
SPEECH_FRAMES = 8      # this many voiced frames in a row (160 ms) is the user speaking
ECHO_HOLD_S = 0.5      # the agent's voice may come back from the room this long after it played
BACKLOG_EXTRA_S = 2.0  # the backlog holds [session] connect_timeout plus this much
BUTTON = "button"      #: the model name of a wake by :meth:`edgevoice.daemon.Daemon.wake`


def spoken(model: str) -> str:
    """How a model's phrase reads: ``okay_nabu`` → ``okay nabu``."""
    name = model.rsplit("/", 1)[-1].removesuffix(".json")
    return name.replace("_", " ")


class WakeWord:
    """Wake-word mode for one daemon (see the module's docstring for who calls what)."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.detector: WakeWordDetector | None = None
        self._built_for: tuple | None = None
        self.model: str | None = None     # what woke the session being opened or running
        self.woken_at: float | None = None
        self._heard_at = 0.0              # capture instant of the frame the detector fired in
        self.streaming_after_s: float | None = None  # the last wake → streaming time (s)
        self._session: Session | None = None
        self._agent_at = 0.0              # the last round the agent was speaking
        self._problem = ""                # why the last session failed, for the wait's detail
        self.tools = 0                    # [tools] programs running (set by the daemon)
        self._busy_at = 0.0               # the last round a tool was running
        # capture thread (set up by the session thread before it hands over a sink)
        self._backlog: collections.deque = collections.deque()
        self._fresh = False               # listen() asked for a clean start
        self._holding = False             # woken: keep the frames for the session
        self._tail = 0                    # frames of the wake phrase's tail still dropped
        self._vad = webrtcvad.Vad(3)
        self._vad_rate, self._decimate = 16000, 1
        self._voiced_run = 0
        self._decimated = np.empty(0, dtype="<i2")  # the VAD's 8 kHz copy, reused per frame
        self.user_spoke_at = 0.0          # capture instant of the user's last speech frame

    # -- session thread -----------------------------------------------------------------------
    def listen(self, engine: AudioEngine) -> None:
        """No session: the detector hears the mic, nothing else does."""
        self._session = None
        self.model = None
        config = self.daemon.config
        limit = int((config.session.connect_timeout + BACKLOG_EXTRA_S) / FRAME_S)
        if self._backlog.maxlen != limit:  # first wait, or a reload changed the timeout
            engine.frame_sink = _discard
            self._backlog = collections.deque(maxlen=limit)
        settings = config.section("wake_word")
        built_for = (settings.engine, settings.models, settings.cutoff, settings.refractory_s,
                     engine.wire_rate)
        if built_for != self._built_for:
            engine.frame_sink = _discard  # the capture thread lets go of the old detector
            self._build(settings, engine.wire_rate, built_for)
        self._fresh = True
        if self.detector is None:
            engine.frame_sink = self._hold_only
            detail = "the wake word engine is unavailable (see the log); the button still wakes"
        else:
            engine.frame_sink = self._listen_sink
            detail = "say " + " or ".join(f'"{spoken(m)}"' for m in settings.models)
        if self._problem:
            detail += f" (the last session failed: {self._problem})"
        self.daemon.state_changed(DaemonState.WAITING_FOR_WAKE, detail)

    def _build(self, settings, rate: int, built_for: tuple) -> None:
        # not closed here: a capture-thread call may still be inside the old detector, whose
        # own __del__ frees it once the last reference (that call's) is gone
        self.detector = None
        self._built_for = built_for
        self._vad_rate, self._decimate = ((rate, 1) if rate in (8000, 16000, 32000, 48000)
                                          else (8000, rate // 8000))
        try:
            self.detector = WakeWordDetector(settings.models, rate, engine=settings.engine,
                                             cutoff=settings.cutoff or None,
                                             refractory_s=settings.refractory_s)
        except WakeWordUnavailable as exc:
            log.error("%s; only the button can wake the device", exc,
                      extra={"event": "wake_word_unavailable"})
            return
        log.info("listening for %s", ", ".join(settings.models))

    def woken(self, model: str) -> bool:
        """The WAKE command, on the session thread: True when it opens a session (False:
        one is already open, or being opened)."""
        if self.model is not None:
            return False
        self.model = model or BUTTON
        self.woken_at = self._heard_at if model != BUTTON else time.monotonic()
        self._holding = True  # the detector set it already; the button sets it here
        self.streaming_after_s = None
        self._problem = ""
        log.info("woken by %s", "the button" if self.model == BUTTON else
                 f'"{spoken(self.model)}"', extra={"event": "wake_word"})
        return True

    def config_for(self, config: Config) -> Config:
        """``config`` with [agent] provider set to the agent of the model that woke it."""
        settings = config.section("wake_word")
        provider = settings.agent_for(self.model or "", config.agent.provider)
        if provider == config.agent.provider:
            return config
        agent = dataclasses.replace(config.agent, provider=provider)
        return dataclasses.replace(config, sections={**config.sections, "agent": agent})

    def sink(self, session: Session):
        """The capture thread's sink for ``session``: the backlog first, then live frames."""
        self._session = session
        self._agent_at = self._busy_at = 0.0
        self.user_spoke_at = 0.0
        if self.model is None:  # a session the wake word did not open (a long press)
            self.model = BUTTON
        if self.woken_at is None:  # ... or a fresh one for the same wake (a restart)
            self.woken_at, self.streaming_after_s = time.monotonic(), None
        return self._session_sink

    def shown(self, state: DaemonState) -> DaemonState:
        """The state to show: "listening" after an answer is the follow-up window (not
        while a [tools] program runs: the agent is still working on the answer)."""
        if (state is DaemonState.LISTENING and self._session is not None
                and self._agent_at > self.user_spoke_at and self.tools == 0):
            return DaemonState.FOLLOW_UP
        return state

    def check(self, session: Session, now: float) -> Outcome | None:
        """Every round of the session thread: end the session when it has gone quiet (never
        while a [tools] program runs: the agent waits for its output)."""
        started = session.streamed_since
        if started is None:
            return None
        if self.streaming_after_s is None and self.woken_at is not None:
            self.streaming_after_s = started - self.woken_at
        daemon = self.daemon
        if daemon.state is DaemonState.SPEAKING:
            self._agent_at = now
            return None
        if self.tools > 0:  # the agent waits for a tool's output: so does the session
            self._busy_at = now
            return None
        settings = daemon.config.section("wake_word")
        spoke = self.user_spoke_at
        if self._agent_at > spoke:  # the agent answered last: the follow-up window
            if now - max(self._agent_at, self._busy_at) > settings.follow_up_s:
                return Outcome(f"no follow-up question within {settings.follow_up_s:g} s",
                               Retry.IDLE)
            return None
        if daemon.state is DaemonState.FOLLOW_UP:  # the user speaks again
            daemon.state_changed(DaemonState.LISTENING, "")
        if now - max(spoke, self._agent_at, started, self._busy_at) > settings.quiet_s:
            return Outcome(f"nobody spoke for {settings.quiet_s:g} s", Retry.IDLE)
        return None

    def ended(self, outcome: Outcome) -> bool:
        """The session ended (the daemon has taken its sink away). True: open another at
        once (a restart); False: wait for the wake word again."""
        woken_by, self._session = self.model, None
        self._holding = False
        self._backlog.clear()
        latency, self.woken_at = self.streaming_after_s, None
        if outcome.retry is Retry.NOW:  # the same wake word's agent again
            return True
        self.model = None
        if outcome.retry is Retry.IDLE:
            log.info("session woken by %s ended: %s%s", woken_by, outcome.reason,
                     "" if latency is None else f" (it streamed {latency * 1000:.0f} ms after "
                     "the wake)", extra={"event": "wake_session_ended"})
            return False
        self._problem = outcome.reason
        log.warning("session woken by %s failed: %s; waiting for the wake word again",
                    woken_by, outcome.reason, extra={"event": "session_failed"})
        self.daemon.state_changed(DaemonState.OFFLINE, outcome.reason)
        return False

    # -- capture thread -----------------------------------------------------------------------
    def _start(self) -> None:
        """The first frame after :meth:`listen`: forget the last session and the detector's
        memory of it."""
        self._fresh = False
        self._backlog.clear()
        self._holding = False
        if self.detector is not None:
            self.detector.reset()

    def _listen_sink(self, frame: bytes, t: float) -> None:
        if self._fresh:
            self._start()
        if self._holding:  # woken: the session is on its way
            self._hold(frame, t)
            return
        detector = self.detector  # (a reload may be replacing it on the session thread)
        heard = detector.process(frame) if detector is not None else None
        if heard is not None:
            self._heard_at = t
            self._tail = int(WAKE_TAIL_S / FRAME_S)
            self._holding = True
            self.daemon.wake(heard)

    def _hold_only(self, frame: bytes, t: float) -> None:
        """No detector: only the button wakes; until then frames are dropped."""
        if self._fresh:
            self._start()
        if self._holding:
            self._hold(frame, t)

    def _hold(self, frame: bytes, t: float) -> None:
        if self._tail:
            if self._voiced(frame):
                self._tail -= 1
                return
            self._tail = 0
        self._backlog.append(frame)
        self._track(frame, t)

    def _session_sink(self, frame: bytes, t: float) -> None:
        session = self._session
        if session is None:
            return
        if self._backlog or not session.streaming:
            self._hold(frame, t)
            if session.streaming:
                self._drain(session)
            return
        session.offer_frame(frame, t)
        self._track(frame, t)

    def _drain(self, session: Session) -> None:
        """Hand the backlog to the session's mic queue, as much as fits, stamped now: the
        capture-to-wire figures measure the live path (the backlog's age is the wake →
        streaming time, logged when the session ends)."""
        backlog, mic = self._backlog, session.mic
        if not session.mic_open:
            backlog.clear()
            return
        now = time.monotonic()
        for _ in range(min(len(backlog), mic.room)):
            mic.put(backlog.popleft(), now)

    def _track(self, frame: bytes, t: float) -> None:
        """Is the user speaking? (skipped while the agent's voice may be in the mic)"""
        if t - self.daemon.engine.speaker.last_audible < ECHO_HOLD_S:
            self._voiced_run = 0
            return
        if self._voiced(frame):
            self._voiced_run += 1
            if self._voiced_run >= SPEECH_FRAMES:
                self.user_spoke_at = t
        else:
            self._voiced_run = 0

    def _voiced(self, frame: bytes) -> bool:
        step = self._decimate
        if step > 1:  # 24 kHz (openai, navtalk): every third sample is 8 kHz enough for VAD
            samples = np.frombuffer(frame, dtype="<i2")[::step]
            out = self._decimated
            if len(out) != len(samples):  # once per frame size, not per frame
                out = self._decimated = np.empty(len(samples), dtype="<i2")
            np.copyto(out, samples)
            frame = out.data
        try:
            return self._vad.is_speech(frame, self._vad_rate)
        except Exception:  # a frame webrtcvad cannot take is not speech
            return False


def _discard(frame: bytes, t: float) -> None:
    pass
