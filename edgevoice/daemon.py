"""The daemon: opens the sound devices once, then runs sessions for ever.

Reconnects use exponential backoff with full jitter (first retry within 1 s, capped by
``[session] reconnect_max_delay``); a session that streamed for a while resets the
backoff. A rejected key waits ``[session] auth_retry_delay`` and says so. :meth:`stop`
(SIGTERM/SIGINT in ``edgevoice run``) ends everything within about a second.

One thread owns the daemon's life: ``edgevoice-session``, started by :meth:`Daemon.run`.
It waits on the :class:`~edgevoice.lifecycle.Inbox` (at most :data:`TICK_S` at a time),
applies each :class:`~edgevoice.lifecycle.Command` in order, hands each event of the
session's threads to the session, and every round ticks the observers and asks the
session whether its link is alive. Any thread may call the command methods
(``set_muted`` … ``stop``): they only put an order on the inbox and return at once.

Other parts of the program follow the daemon through :meth:`Daemon.add_listener`
(``listener(state, detail)``, state a :class:`~edgevoice.lifecycle.DaemonState`: the
demo's progress lines, systemd's STATUS) and :meth:`Daemon.add_observer` (a
:class:`DaemonObserver`: the service's LED, button and watchdog). Both are called on the
session thread. In wake-word mode :mod:`edgevoice.wake` says when a session starts and ends.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from edgevoice.audio.alsa_backend import DeviceError, reset_pyaudio
from edgevoice.audio.devices import open_engine
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.file_backend import AudioFileError
from edgevoice.commands import DaemonCommands
from edgevoice.config import EX_CONFIG, Config, state_dir
from edgevoice.flow import Stats
from edgevoice.history import History
from edgevoice.lifecycle import (Command, DaemonObserver, DaemonState, Inbox, Order,
                                 ReconnectPolicy, Reload, ToolsRunning)
from edgevoice.logsetup import set_context
from edgevoice.providers import make_provider
from edgevoice.providers.base import Outcome, Retry, SessionFailed
from edgevoice.redact import describe_error
from edgevoice.memory import pin_mmap_threshold
from edgevoice.mute import HOW_TO_UNMUTE, MuteRequest, PrivacyMute
from edgevoice.session import Session, SessionOptions
from edgevoice.sounds import Earcons
from edgevoice.threads import start_thread
from edgevoice.tools import ToolRunner
from edgevoice.wake import WakeWord
from edgevoice.volume import VolumeControl

log = logging.getLogger(__name__)

DEVICE_RETRY_S = 5.0
TICK_S = 0.1               # the session thread's longest wait on its inbox

#: what a muted daemon refuses (the mode starts again as at boot on unmute)
_OPENS_THE_MIC = (Command.START_SESSION, Command.RESTART_SESSION, Command.WAKE)

Listener = Callable[[DaemonState, str], None]
#: ``reloader(current)`` re-reads the configuration: what changed, and the new one (None
#: when it was rejected or nothing needs applying)
Reloader = Callable[[Config], "tuple[Reload, Config | None]"]


class Daemon(DaemonCommands):
    """The sound devices, the sessions, and the commands that steer them (the button's
    :class:`~edgevoice.device.button.DaemonControl`)."""

    def __init__(self, config: Config, *, start_session: bool = True, mic_open: bool = True,
                 reloader: Reloader | None = None) -> None:
        pin_mmap_threshold()  # large server messages give their memory back (memory.py)
        self.config = config
        self.stats = Stats()
        self.engine: AudioEngine | None = None  # None while the devices are (re)opened
        self.session: Session | None = None
        self.state = DaemonState.STARTING
        self.halt = threading.Event()  # stop(): the one flag other threads may set
        self.inbox = Inbox()
        self.ready = threading.Event()  # audio devices open and running
        self.ticks = 0  # moves while the session thread is alive (the watchdog checks it)
        self._listeners: list[Listener] = []
        self._observers: list[DaemonObserver] = []
        self._state_lock = threading.Lock()
        self._reloader = reloader
        self.wake_word = WakeWord(self) if config.agent.mode == "wake-word" else None
        # owned by the session thread; changed only by the commands it applies
        self._want_session = start_session and self.wake_word is None  # wake-word: on the word
        self._start_session = self._want_session  # what an unmute goes back to
        self._mute = PrivacyMute(state_dir(config))
        self._mic_open = mic_open  # push-to-talk starts closed
        self._audio_restart = False
        self._result: int | BaseException = 0
        self.volume = VolumeControl(config)  # the output level, kept in the state directory
        self.sounds = Earcons(self)  # earcons from the states and events below
        self.add_observer(self.volume)
        self.add_observer(self.sounds)
        self.add_listener(self.sounds.on_state)

    # -- observers ------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def add_observer(self, observer: DaemonObserver) -> None:
        self._observers.append(observer)

    def state_changed(self, state: DaemonState, detail: str = "") -> None:
        """Enter ``state``; listeners hear of a new state, or of a new detail."""
        if self.wake_word is not None:
            state = self.wake_word.shown(state)  # "listening" after an answer is the follow-up
        with self._state_lock:
            changed = state != self.state
            self.state = state
        if changed or detail:
            for listener in list(self._listeners):
                try:
                    listener(state, detail)
                except Exception:  # an observer must never break the daemon
                    log.exception("state listener failed")

    def _notify(self, name: str, *args) -> None:
        for observer in list(self._observers):
            try:
                getattr(observer, name)(*args)
            except Exception:
                log.exception("daemon observer failed (%s)", name)

    # -- what the button may read (any thread) ----------------------------------------------
    def agent_speaking(self) -> bool:
        return self.state is DaemonState.SPEAKING

    def session_active(self) -> bool:
        """A session is wanted: running, connecting, or waiting to retry (toggle mode's
        press must be able to end a retry loop too)."""
        return self._want_session

    @property
    def muted(self) -> bool:
        """The privacy mute is on: the capture stream is closed."""
        return self._mute.muted

    @property
    def mic_enabled(self) -> bool:
        return self._mic_open and not self._mute.muted

    # -- the session's host (see edgevoice.lifecycle.SessionHost) ---------------------------
    def deliver(self, session: Session, event: object) -> bool:
        return self.inbox.put((session, event))

    def beat(self) -> None:
        self.ticks += 1

    def activity(self) -> None:
        self._notify("activity")

    # -- running ----------------------------------------------------------------------------
    def run(self) -> int:
        """Run until :meth:`stop` on the ``edgevoice-session`` thread; returns the process
        exit status once it has ended. Signals still reach the calling (main) thread."""
        thread = start_thread("session", self._main)
        while thread.is_alive():
            # in slices: a signal the kernel gave another thread runs its Python handler
            # only when this (main) thread wakes up, and a plain join() never does
            thread.join(0.25)
        if isinstance(self._result, BaseException):
            raise self._result
        return self._result

    def _main(self) -> None:
        try:
            self._result = self._serve()
        except BaseException as exc:  # raised again by run() on the caller's thread
            self._result = exc

    def _serve(self) -> int:
        for item in self.inbox.drain():  # orders given before run(): a mute switch that is
            if isinstance(item, Order):  # on keeps the microphone closed from the start
                self._apply(item)
        while not self.halt.is_set():
            try:
                engine = self._open_audio()
            except AudioFileError as exc:
                log.error("%s", exc)
                return EX_CONFIG
            if engine is None:
                break
            self.engine = engine
            engine.set_listening(not self._mute.muted)
            engine.start()
            self.ready.set()
            self._notify("audio_opened", engine)
            try:
                self._session_loop()
            finally:
                if self.halt.is_set():
                    self.state_changed(DaemonState.STOPPING)
                elif self._audio_restart:
                    self.engine = None  # the watchdog counts only this thread meanwhile
                engine.stop(1.0)
            if self._audio_restart and not self.halt.is_set():
                log.info("reopening the sound devices")
                if self.config.audio.backend == "alsa":
                    reset_pyaudio()  # find a replugged device under its new index
                continue
            break
        self.state_changed(DaemonState.STOPPING)
        self.state_changed(DaemonState.STOPPED)
        log.info("stopped")
        return 0

    def _open_audio(self) -> AudioEngine | None:
        warned = False
        while not self.halt.is_set():
            self._audio_restart = False  # reopening is what this does (a reload may ask again)
            wire_rate = make_provider(self.config).mic_rate
            try:
                return open_engine(self.config.audio, wire_rate, listen=not self._mute.muted)
            except DeviceError as exc:
                if not warned:
                    log.error("%s; retrying every %g s", exc, DEVICE_RETRY_S)
                    warned = True
                self.state_changed(DaemonState.WAITING_FOR_DEVICE, "sound device missing")
                self._notify("waiting_for_device", str(exc))
                reset_pyaudio()  # PortAudio lists devices only when it starts: look afresh
                self._wait(DEVICE_RETRY_S)  # a reload naming the right device ends it early
        return None

    # -- the session thread's round -----------------------------------------------------------
    def _step(self, session: Session | None, timeout: float = TICK_S) -> Outcome | None:
        """Wait for one item on the inbox (or ``timeout``), act on it, tick the observers,
        check the devices and the session's link. An :class:`Outcome` ends the session."""
        item = self.inbox.get(timeout)
        self.ticks += 1
        if self.halt.is_set():
            return Outcome("stopped", Retry.STOPPED)
        outcome = None
        if isinstance(item, Order):
            outcome = self._apply(item)
        elif isinstance(item, ToolsRunning):
            if self.wake_word is not None:
                self.wake_word.tools = item.count  # the session waits for their answers
                if self.state in (DaemonState.LISTENING, DaemonState.FOLLOW_UP):
                    self.state_changed(DaemonState.LISTENING)  # follow-up only without tools
            self._notify("tools_running", item.count)
        elif item is not None:
            source, event = item
            if source is session and session is not None:  # not a late one of an old session
                outcome = session.handle(event)
                self._notify("session_event", event)
        now = time.monotonic()
        self._notify("tick", now)
        engine = self.engine
        if outcome is None and engine is not None and engine.failed and not self._audio_restart:
            log.error("%s; reopening the sound devices", engine.failed,
                      extra={"event": "device_failed"})
            self._audio_restart = True
            outcome = Outcome("sound device failed", Retry.NOW, cause="sound_device")
        if outcome is None and session is not None:
            outcome = session.check(now)
            if outcome is None and self.wake_word is not None:
                outcome = self.wake_word.check(session, now)  # the follow-up window, quiet
        return outcome

    def _apply(self, order: Order) -> Outcome | None:
        command, session, outcome = order.command, self.session, None
        if command is Command.INTERRUPT or command is Command.USER_ACTIVITY:
            if session is not None:
                (session.interrupt_now if command is Command.INTERRUPT
                 else session.user_activity)()
            return None
        if command is Command.RELOAD:
            return self._reload()
        if self._mute.muted and command in _OPENS_THE_MIC:
            log.info("privacy mute is on: %s ignored; %s", command, HOW_TO_UNMUTE)
            return None
        if command is Command.VOLUME:
            self.volume.change(*order.value)
            return None
        if command is Command.MUTE:
            return self._apply_mute(order.value)
        if command is Command.MIC:
            self._mic_open = order.value
        elif command is Command.START_SESSION:
            self._want_session = True
        elif command is Command.END_SESSION:
            self._want_session = False
            if session is not None:
                outcome = Outcome("session ended (button or idle timeout)", Retry.IDLE)
        elif command is Command.WAKE and self.wake_word is not None:
            self._want_session = self.wake_word.woken(order.value) or self._want_session
        elif command is Command.RESTART_SESSION:
            self._want_session = True
            outcome = Outcome("fresh session requested (button)", Retry.NOW)
        else:
            return None  # STOP: the halt flag says it all
        if session is not None:
            session.mic_open = self.mic_enabled
        self._notify("controls_changed")
        return outcome

    def _apply_mute(self, request: MuteRequest) -> Outcome | None:
        """Close the capture stream and end the session, or reopen it and let the mode
        start as it does at boot."""
        result = self._mute.apply(request)
        outcome = None
        if result.changed:
            engine = self.engine
            if engine is not None:
                engine.set_listening(not result.muted)
            if result.muted and self.session is not None:
                outcome = Outcome("privacy mute: session ended, the microphone is closed",
                                  Retry.IDLE)
            elif not result.muted:
                self._want_session = self._start_session
        self._notify("mute_applied", result)
        self._notify("controls_changed")
        return outcome

    def _reload(self) -> Outcome | None:
        if self._reloader is None:
            return None
        change, config = self._reloader(self.config)
        if config is not None:
            self.config = config
            self._notify("config_applied", config)
        if change is Reload.AUDIO:
            self._audio_restart = True
            return Outcome("restarting for the new [audio] settings", Retry.NOW)
        if change is Reload.AGENT:
            return Outcome("restarting for the new agent settings", Retry.NOW)
        return None

    def _wait(self, seconds: float | None) -> None:
        """No session: serve the inbox for ``seconds`` (None: until a command changes
        something, a reload included: the wait for the wake word listens for the new
        [wake_word]). A reload or a button press must not wait for a backoff."""
        deadline = None if seconds is None else time.monotonic() + seconds
        wanted = self._waiting_on(seconds)
        while not self.halt.is_set() and not self._audio_restart:
            timeout = TICK_S if deadline is None else min(TICK_S, deadline - time.monotonic())
            if timeout <= 0:
                return
            if self._step(None, timeout) is not None or self._waiting_on(seconds) != wanted:
                return

    def _waiting_on(self, seconds: float | None) -> tuple:
        return (self._want_session, self._mute.muted,
                self.config if seconds is None else None)

    def converse(self, session: Session) -> Outcome:
        """Run one session to its end on this thread (the session thread)."""
        self.session = session
        try:
            session.open()
        except SessionFailed as exc:
            session.close(graceful=False)
            return exc.outcome
        except BaseException:  # a bug: still close what was opened
            session.close(graceful=False)
            raise
        outcome = Outcome("stopped", Retry.STOPPED)
        try:
            while True:
                step = self._step(session)
                if step is not None:
                    outcome = step
                    return outcome
        finally:
            session.close(graceful=outcome.retry in (Retry.NOW, Retry.IDLE))

    def _session_loop(self) -> None:
        policy = ReconnectPolicy(self.config.session.reconnect_max_delay,
                                 self.config.session.auth_retry_delay)
        tools = history = None
        built_for = None
        while not self.halt.is_set() and not self._audio_restart:
            if self._mute.muted or not self.engine.listening:  # (or its order is on the way:
                # set_muted closed the mic at once; no connect may start before it applies)
                self.state_changed(DaemonState.MUTED, "privacy mute: microphone closed")
                self._wait(None)
                continue
            if not self._want_session:
                if self.wake_word is not None:
                    self.wake_word.listen(self.engine)  # only the detector hears the mic
                else:
                    self.state_changed(DaemonState.IDLE, "press the button to talk")
                self._wait(None)
                continue
            config = self.config
            if built_for is not config:  # first round, or a reload changed the config
                built_for = config
                agent = config.agent
                policy = ReconnectPolicy(config.session.reconnect_max_delay,
                                         config.session.auth_retry_delay)
                tools = ToolRunner(dict(config.tools), agent.tool_timeout, self.stats.tool_calls,
                                   on_running=lambda n: self.inbox.put(ToolsRunning(n)))
                history = History.open(state_dir(config), agent.history_max_kb * 1024) \
                    if agent.history else None
                carry: dict = {}  # provider state kept across sessions (gemini's resume handle)
            agent = config.agent
            replay = history.recent_user_turns(agent.history_replay_turns) if history else ()
            wake = self.wake_word
            provider = make_provider(config if wake is None else wake.config_for(config),
                                     replay, carry)
            if provider.mic_rate != self.engine.wire_rate:
                self._audio_restart = True  # a dialect with another wire rate
                break
            options = SessionOptions(
                mic_frames=config.audio.mic_queue_ms // 20, tools=tools, history=history,
                barge_in=config.barge_in if agent.barge_in else None)
            session = Session(provider, self.engine, config.session, self, options)
            session.mic_open = self.mic_enabled
            self.engine.frame_sink = session.offer_frame if wake is None else wake.sink(session)
            started = time.monotonic()
            try:
                outcome = self.converse(session)
            except Exception as exc:  # a bug in one session must not end the daemon
                log.exception("session failed unexpectedly")
                outcome = Outcome("internal error: " + describe_error(exc), cause="internal")
            finally:
                self.engine.frame_sink = _discard
                self.engine.flush_playback()
                self.stats.frames_dropped += session.mic.dropped
                self.session = None
                set_context(session_id=None)
            if self.halt.is_set():
                break
            if wake is not None:  # back to the wake word (a restart: a session at once,
                # but not on reopened devices: that may take long, nobody said the word)
                self._want_session = wake.ended(outcome) and not self._audio_restart
                self._notify("session_ended", outcome, None)
                continue
            if outcome.retry in (Retry.NOW, Retry.IDLE):
                log.info("%s", outcome.reason, extra={"event": "session_ended"})
                policy.reset()
                self._notify("session_ended", outcome, None)
                continue
            streamed = (time.monotonic() - session.streamed_since
                        if session.streamed_since is not None else 0.0)
            delay = policy.after_failure(outcome, streamed, time.monotonic() - started)
            self._notify("session_ended", outcome, delay)
            self.state_changed(DaemonState.OFFLINE, f"offline, retry in {delay:.0f} s")
            self._wait(delay)
        if tools is not None:
            tools.close()  # tool process groups die with the session loop


def _discard(frame: bytes, t: float) -> None:
    pass
