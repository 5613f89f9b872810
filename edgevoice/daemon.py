"""The daemon: opens the sound devices once, then runs sessions for ever.

Reconnects use exponential backoff with full jitter (first retry within 1 s, capped by
``[session] reconnect_max_delay``); a session that streamed for a while resets the
backoff. A rejected key waits ``[session] auth_retry_delay`` and says so. :meth:`stop`
(SIGTERM/SIGINT in ``edgevoice run``) ends everything within about a second.

Other parts of the program (the demo's progress lines, the LED, systemd's STATUS) follow
the daemon through :meth:`Daemon.add_listener`: ``listener(state, detail)`` with state one
of ``starting``, ``idle`` (toggle mode, no session), ``connecting``, ``listening``,
``speaking``, ``offline``, ``stopped``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

import backoff

from edgevoice.audio.alsa_backend import DeviceError, open_alsa_backend, reset_pyaudio
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.file_backend import AudioFileError, open_file_backend
from edgevoice.audio.room_backend import open_room_backend
from edgevoice.config import EX_CONFIG, Config, state_dir
from edgevoice.history import History
from edgevoice.logsetup import set_context
from edgevoice.providers import make_provider
from edgevoice.providers.base import Outcome
from edgevoice.redact import describe_error
from edgevoice.memory import pin_mmap_threshold
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
    """The sound devices, the sessions, and the commands that steer them.

    The command methods (``set_muted`` … ``restart_session``) are the button's
    :class:`~edgevoice.device.button.DaemonControl`: they only set flags or queue work, so
    they return at once on whichever thread calls them; the session thread applies them
    within a tick (100 ms).
    """

    def __init__(self, config: Config, *, start_session: bool = True) -> None:
        pin_mmap_threshold()  # large server messages give their memory back (memory.py)
        self.config = config
        self.stats = Stats()
        self.engine: AudioEngine | None = None
        self.session: Session | None = None
        self.state = "starting"
        self._stop = threading.Event()
        self._listeners: list[Callable[[str, str], None]] = []
        self._state_lock = threading.Lock()
        self.ready = threading.Event()  # audio devices open and running
        # hooks for the service layer (sd_notify, reload, button): see edgevoice.service
        self.on_audio_ready: Callable[[AudioEngine], None] = lambda engine: None
        self.on_waiting_for_device: Callable[[str], None] = lambda problem: None
        self.on_tick: Callable[[], None] = lambda: None
        self.on_activity: Callable[[], None] = lambda: None
        self.reload_hook: Callable[[], str | None] = lambda: None
        # commands
        self._want_session = threading.Event()
        if start_session:
            self._want_session.set()
        self._restart = threading.Event()
        self._reload = threading.Event()
        self._muted = False
        self._mic_open = True
        self._audio_restart = False
        self.ticks = 0  # moves while the session thread is alive (the watchdog checks it)
        self.engine_restarting = False  # the sound devices are being reopened

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

    # -- control (any thread) ---------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_reload(self) -> None:
        """Re-read the config at the next tick (SIGHUP)."""
        self._reload.set()

    def set_muted(self, muted: bool) -> None:
        self._muted = muted
        self._apply_mic()

    def set_mic_open(self, open: bool) -> None:
        self._mic_open = open
        self._apply_mic()

    @property
    def mic_enabled(self) -> bool:
        return self._mic_open and not self._muted

    def _apply_mic(self) -> None:
        session = self.session
        if session is not None:
            session.mic_open = self.mic_enabled

    def interrupt(self) -> None:
        session = self.session
        if session is not None:
            session.interrupt_now()

    def user_activity(self) -> None:
        session = self.session
        if session is not None:
            session.send_user_activity()

    def start_session(self) -> None:
        self._want_session.set()

    def end_session(self) -> None:
        self._want_session.clear()

    def restart_session(self) -> None:
        self._want_session.set()
        self._restart.set()

    def agent_speaking(self) -> bool:
        return self.state == "speaking"

    def session_active(self) -> bool:
        """A session is wanted: running, connecting, or waiting to retry (toggle mode's
        press must be able to end a retry loop too)."""
        return self._want_session.is_set()

    # -- running ----------------------------------------------------------------------------
    def run(self) -> int:
        """Run until :meth:`stop`. Returns the process exit status."""
        while not self._stop.is_set():
            self.engine_restarting = self.engine is not None
            try:
                engine = self._open_audio()
            except AudioFileError as exc:
                log.error("%s", exc)
                return EX_CONFIG
            if engine is None:
                break
            self.engine = engine
            engine.start()
            self.engine_restarting = False
            self.ready.set()
            self.on_audio_ready(engine)
            try:
                self._session_loop()
            finally:
                self.engine_restarting = self._audio_restart
                engine.stop(1.0)
            if self._audio_restart:
                self._audio_restart = False
                log.info("reopening the sound devices")
                if self.config.audio.backend == "alsa":
                    reset_pyaudio()  # find a replugged device under its new index
                continue
            break
        self._set_state("stopped")
        log.info("stopped")
        return 0

    def _open_audio(self) -> AudioEngine | None:
        warned = False
        while not self._stop.is_set():
            a = self.config.audio
            wire_rate = make_provider(self.config).mic_rate
            try:
                if a.backend == "file":
                    capture, playback = open_file_backend(a.input_file, a.output_file,
                                                          a.output_rate)
                elif a.backend == "room":
                    capture, playback = open_room_backend(a, wire_rate)
                else:
                    capture, playback = open_alsa_backend(a.input_device, a.output_device,
                                                          a.input_rate, a.output_rate, wire_rate)
                return AudioEngine(capture, playback, wire_rate, a.playback_buffer_s,
                                   a.echo_cancel, a.echo_cancel_tail_ms)
            except DeviceError as exc:
                if not warned:
                    log.error("%s; retrying every %g s", exc, DEVICE_RETRY_S)
                    warned = True
                self._set_state("offline", "sound device missing")
                self.on_waiting_for_device(str(exc))
                reset_pyaudio()  # PortAudio lists devices only when it starts: look afresh
                deadline = time.monotonic() + DEVICE_RETRY_S
                while not self._stop.is_set() and time.monotonic() < deadline:
                    self._stop.wait(0.1)
                    self.ticks += 1
                    if self._reload.is_set():  # a fixed device name must not wait for us
                        self._reload.clear()
                        self.reload_hook()
                        break
        return None

    def _tick(self) -> Outcome | None:
        """Every 100 ms on the session thread: apply commands, reload, service hooks."""
        self.ticks += 1
        self.on_tick()
        engine = self.engine
        if engine is not None and engine.failed and not self._audio_restart:
            log.error("%s; reopening the sound devices", engine.failed,
                      extra={"event": "device_failed"})
            self._audio_restart = True
            return Outcome("sound device failed", "now")
        if self._reload.is_set():
            self._reload.clear()
            change = self.reload_hook()
            if change == "audio":
                self._audio_restart = True
                return Outcome("restarting for the new [audio] settings", "now")
            if change == "agent":
                return Outcome("restarting for the new agent settings", "now")
        if self._restart.is_set():
            self._restart.clear()
            return Outcome("fresh session requested (button)", "now")
        if not self._want_session.is_set():
            return Outcome("session ended (button or idle timeout)", "idle")
        return None

    def _beat(self) -> None:
        self.ticks += 1

    def _wait(self, seconds: float) -> None:
        """Wait, still ticking (a reload or a button press must not wait for a backoff)."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and not self._audio_restart:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(0.1, remaining))
            if self._tick() is not None and (self._want_session.is_set() or
                                             self._audio_restart):
                return

    def _session_loop(self) -> None:
        policy = ReconnectPolicy(self.config.session.reconnect_max_delay,
                                 self.config.session.auth_retry_delay)
        tools = history = None
        built_for = None
        while not self._stop.is_set() and not self._audio_restart:
            if not self._want_session.is_set():
                self._set_state("idle", "press the button to talk")
                while not self._want_session.is_set() and not self._stop.is_set() \
                        and not self._audio_restart:
                    self._stop.wait(0.1)
                    self._tick()
                continue
            config = self.config
            if built_for is not config:  # first round, or a reload changed the config
                built_for = config
                agent = config.agent
                policy = ReconnectPolicy(config.session.reconnect_max_delay,
                                         config.session.auth_retry_delay)
                tools = ToolRunner(dict(config.tools), agent.tool_timeout)
                history = History.open(state_dir(config), agent.history_max_kb * 1024) \
                    if agent.history else None
                carry: dict = {}  # provider state kept across sessions (gemini's resume handle)
            agent = config.agent
            replay = history.recent_user_turns(agent.history_replay_turns) if history else ()
            provider = make_provider(config, replay, carry)
            if provider.mic_rate != self.engine.wire_rate:
                self._audio_restart = True  # a dialect with another wire rate
                break
            session = Session(provider, self.engine, config.session, self.stats, self._stop,
                              self._set_state, mic_frames=config.audio.mic_queue_ms // 20,
                              tools=tools, history=history,
                              barge_in=config.barge_in if agent.barge_in else None,
                              tick=self._tick, on_activity=self.on_activity,
                              beat=self._beat)
            session.mic_open = self.mic_enabled
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
                self.session = None
                set_context(session_id=None)
            if self._stop.is_set():
                break
            if outcome.retry in ("now", "idle"):
                log.info("%s", outcome.reason, extra={"event": "session_ended"})
                policy.reset()
                continue
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
            self._wait(delay)
        if tools is not None:
            tools.close()  # tool process groups die with the session loop


def _discard(frame: bytes, t: float) -> None:
    pass
