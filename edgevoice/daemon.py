"""The daemon: opens the sound devices once, then runs sessions for ever.

Reconnects use exponential backoff with full jitter (first retry within 1 s, capped by
``[session] reconnect_max_delay``); a session that streamed for a while resets the
backoff. A rejected key waits ``[session] auth_retry_delay`` and says so. :meth:`stop`
(SIGTERM/SIGINT in ``edgevoice run``) ends everything within about a second.

Other parts of the program (the demo's progress lines, later the LED and systemd) follow
the daemon through :meth:`Daemon.add_listener`: ``listener(state, detail)`` with state one
of ``starting``, ``connecting``, ``listening``, ``speaking``, ``offline``, ``stopped``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

import backoff
import requests

from edgevoice.audio.alsa_backend import DeviceError, open_alsa_backend
from edgevoice.audio.bargein import BargeInSettings
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.file_backend import AudioFileError, open_file_backend
from edgevoice.config import EX_CONFIG, Config, state_dir
from edgevoice.history import History
from edgevoice.providers import make_provider
from edgevoice.providers.base import Outcome
from edgevoice.redact import describe_error
from edgevoice.session import Session, Stats
from edgevoice.tools import ToolRunner

log = logging.getLogger(__name__)

HEALTHY_SESSION_S = 10.0   # streaming this long resets the reconnect backoff
DEVICE_RETRY_S = 5.0


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

    def next_delay(self, outcome: Outcome) -> float:
        if outcome.retry in ("auth", "long"):  # a wrong key, an empty account: wait long
            return self.auth_delay * self._rng.uniform(0.9, 1.1)
        ceiling = next(self._expo)
        if outcome.retry == "later" and outcome.retry_after is not None:
            return max(outcome.retry_after, self._rng.uniform(0, ceiling))
        return self._rng.uniform(0, ceiling)  # full jitter, as backoff.full_jitter


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.engine: AudioEngine | None = None
        self.session: Session | None = None
        self.state = "starting"
        self._stop = threading.Event()
        self._listeners: list[Callable[[str, str], None]] = []
        self._state_lock = threading.Lock()
        self.ready = threading.Event()  # audio devices open and running

    # -- observers ------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        self._listeners.append(listener)

    def _set_state(self, state: str, detail: str = "") -> None:
        with self._state_lock:
            changed = state != self.state
            self.state = state
        if changed or detail:
            for listener in list(self._listeners):
                try:
                    listener(state, detail)
                except Exception:  # an observer must never break the daemon
                    log.exception("state listener failed")

    # -- control --------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        """Run until :meth:`stop`. Returns the process exit status."""
        try:
            engine = self._open_audio()
        except AudioFileError as exc:
            log.error("%s", exc)
            return EX_CONFIG
        if engine is None:
            self._set_state("stopped")
            return 0
        self.engine = engine
        engine.start()
        self.ready.set()
        try:
            self._session_loop()
        finally:
            engine.stop(1.0)
            self._set_state("stopped")
            log.info("stopped")
        return 0

    # -- internals ------------------------------------------------------------------------
    def _open_audio(self) -> AudioEngine | None:
        a = self.config.audio
        wire_rate = make_provider(self.config).mic_rate
        warned = False
        while not self._stop.is_set():
            try:
                if a.backend == "file":
                    capture, playback = open_file_backend(a.input_file, a.output_file,
                                                          a.output_rate)
                else:
                    capture, playback = open_alsa_backend(a.input_device, a.output_device,
                                                          a.input_rate, a.output_rate, wire_rate)
                return AudioEngine(capture, playback, wire_rate, a.playback_buffer_s)
            except DeviceError as exc:
                if not warned:
                    log.error("%s; retrying every %g s", exc, DEVICE_RETRY_S)
                    warned = True
                self._set_state("offline", "sound device missing")
                self._stop.wait(DEVICE_RETRY_S)
        return None

    def _session_loop(self) -> None:
        s = self.config.session
        policy = ReconnectPolicy(s.reconnect_max_delay, s.auth_retry_delay)
        http = requests.Session()
        mic_frames = self.config.audio.mic_queue_ms // 20
        agent = self.config.agent
        tools = ToolRunner(dict(self.config.tools), agent.tool_timeout)
        history = History.open(state_dir(self.config), agent.history_max_kb * 1024) \
            if agent.history else None
        barge_in = barge_in_settings(self.config) if agent.barge_in else None
        while not self._stop.is_set():
            replay = history.recent_user_turns(agent.history_replay_turns) if history else ()
            provider = make_provider(self.config, replay)
            session = Session(provider, self.engine, s, self.stats, self._stop, self._set_state,
                              mic_frames=mic_frames, http=http, tools=tools, history=history,
                              barge_in=barge_in)
            self.session = session
            self.engine.frame_sink = session.offer_frame
            started = time.monotonic()
            try:
                outcome = session.run()
            except Exception as exc:  # a bug in one session must not end the daemon
                log.exception("session failed unexpectedly")
                outcome = Outcome("internal error: " + describe_error(exc))
            finally:
                self.engine.frame_sink = _discard
                self.engine.flush_playback()
                self.stats.frames_dropped += session.mic.dropped
            if self._stop.is_set():
                break
            streamed = (time.monotonic() - session.streamed_since
                        if session.streamed_since is not None else 0.0)
            if streamed >= HEALTHY_SESSION_S:
                policy.reset()
            delay = policy.next_delay(outcome)
            lasted = time.monotonic() - started
            if outcome.retry == "auth":
                log.error("%s; the key looks wrong, retrying in %.0f s", outcome.reason, delay,
                          extra={"event": "auth_failed"})
            elif outcome.retry == "long":
                log.error("%s; retrying in %.0f s", outcome.reason, delay,
                          extra={"event": "session_failed"})
            else:
                log.warning("session ended after %.1f s: %s; reconnecting in %.1f s", lasted,
                            outcome.reason, delay, extra={"event": "session_ended"})
            self._set_state("offline", f"offline, retry in {delay:.0f} s")
            self._stop.wait(delay)


def _discard(frame: bytes, t: float) -> None:
    pass


def barge_in_settings(config: Config) -> BargeInSettings:
    """The detector's settings from the [barge_in] section."""
    b = config.barge_in
    return BargeInSettings(onset_frames=b.onset_frames, gate_margin_db=b.gate_margin_db,
                           warmup_ms=b.warmup_ms, warmup_extra_db=b.warmup_extra_db,
                           echo_delay_ms=b.echo_delay_ms, echo_tail_ms=b.echo_tail_ms,
                           confirm_ms=b.confirm_ms, resume_timeout_ms=b.resume_timeout_ms,
                           vad_mode=b.vad_mode, gate=b.gate)
