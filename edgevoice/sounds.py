"""Earcons: short sounds that say what the device is doing, played from the daemon's own
states and events (never called from inside a session).

=========== ===========================================================================
listening   a session starts listening: after connecting (a toggle press, always-on's
            first connection), after an outage, on unmute; in wake-word mode as soon as
            the wake word is heard (before the connect, so the user knows to go on)
ended       a session ended by the button, a timeout or the privacy mute (``Retry.IDLE``)
error       the daemon goes offline (the agent cannot be reached); once per outage
thinking    a quiet loop while a ``[tools]`` program runs, or while the agent has not
            answered ``[sounds] thinking_after_s`` after the user's turn was transcribed
=========== ===========================================================================

The bundled WAVs (``edgevoice/data/<name>.wav``) are synthesised by
``scripts/make_sounds.py``; ``[sounds] <name> = off | /path/to.wav`` replaces or silences
one. They are loaded once per speaker rate (resampled with soxr) and handed to the
player's :class:`~edgevoice.audio.mixer.Mixer`, so the speaker, the echo canceller's
reference and the barge-in gate all hear them like the agent's voice, and the agent's
buffer (its flushes, its played-time accounting) never sees them.

:class:`Earcons` is a :class:`~edgevoice.lifecycle.DaemonObserver` and a state listener of
the daemon: all of it runs on the session thread.
"""

from __future__ import annotations

import logging
import time
from importlib import resources

import numpy as np

from edgevoice.audio.file_backend import AudioFileError, read_wav_mono16, resample_pcm
from edgevoice.lifecycle import DaemonObserver, DaemonState
from edgevoice.providers.base import Outcome, Retry, Transcript

log = logging.getLogger(__name__)

NAMES = ("listening", "ended", "error", "thinking")
MAX_THINKING_S = 30.0  # the agent silent this long after the user: stop ticking anyway
#: states from which entering "listening" means a session has just started listening
STARTS = frozenset({DaemonState.STARTING, DaemonState.CONNECTING, DaemonState.IDLE,
                    DaemonState.WAITING_FOR_WAKE, DaemonState.OFFLINE,
                    DaemonState.WAITING_FOR_DEVICE})
#: a session is open and the agent silent: a sound may tick while an answer is awaited
AWAITING = frozenset({DaemonState.LISTENING, DaemonState.FOLLOW_UP})
TALKING = AWAITING | {DaemonState.SPEAKING}


def load_sound(setting: str, name: str, rate: int, gain: float) -> np.ndarray | None:
    """The sound ``name`` as ``[sounds]`` says (``default``, ``off`` or a WAV path), at
    ``rate``, times ``gain``, as float32 PCM16 units; None when off or unreadable (one
    warning: a missing sound never stops the daemon)."""
    if setting == "off":
        return None
    try:
        if setting == "default":
            with resources.as_file(resources.files("edgevoice.data") / f"{name}.wav") as p:
                pcm, wav_rate = read_wav_mono16(str(p))
        else:
            pcm, wav_rate = read_wav_mono16(setting)
    except AudioFileError as exc:
        log.warning("[sounds] %s: %s; playing no %s sound", name, exc, name)
        return None
    if wav_rate != rate:
        pcm = resample_pcm(pcm, wav_rate, rate)
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) * np.float32(gain)


class Earcons(DaemonObserver):
    """Plays the earcons for ``daemon`` (its config's ``[sounds]``)."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.settings = daemon.config.sounds
        self.mode = daemon.config.agent.mode
        self._mixer = None
        self._rate = 0
        self._sounds: dict[str, np.ndarray | None] = {}
        self._state = DaemonState.STARTING
        self._offline = False
        self._woken = False  # "listening" already played at the wake word
        self._muted = False
        self._tools = 0
        self._user_done: float | None = None  # when the user's last turn was transcribed
        self._thinking = False
        self.played: list[tuple[str, float]] = []  # (name, monotonic) of the last few

    # -- what to play ---------------------------------------------------------------------
    def play(self, name: str, loop: bool = False) -> None:
        sound = self._sounds.get(name)
        if self._mixer is None or sound is None:
            return
        self._mixer.play(name, sound, loop)
        self.played.append((name, time.monotonic()))
        del self.played[:-20]
        log.debug("sound: %s", name)

    def _load(self) -> None:
        s = self.settings
        gain = 10.0 ** (s.level_db / 20.0)
        self._sounds = {name: load_sound(getattr(s, name), name, self._rate, gain)
                        for name in NAMES}
        if self._mixer is not None:
            self._mixer.set_duck_db(s.duck_db)

    # -- DaemonObserver and state listener (the session thread) -------------------------------
    def audio_opened(self, engine) -> None:
        self._mixer = engine.mixer
        self._thinking = False
        if engine.playback.rate != self._rate or not self._sounds:
            self._rate = engine.playback.rate
            self._load()
        else:
            engine.mixer.set_duck_db(self.settings.duck_db)

    def config_applied(self, config) -> None:
        if config.sounds != self.settings:
            self.settings = config.sounds
            if self._rate:
                self._load()
            log.info("[sounds] reloaded")

    def on_state(self, state: DaemonState, detail: str) -> None:
        previous, self._state = self._state, state
        if state is previous:
            return
        if state is DaemonState.WAITING_FOR_WAKE:
            self._woken = False  # (a wake whose session never listened)
        elif state is DaemonState.CONNECTING and previous is DaemonState.WAITING_FOR_WAKE:
            self._woken = True  # the wake word was heard: say so now, not after the connect
            self.play("listening")
        elif state is DaemonState.LISTENING and (previous in STARTS or self._offline):
            self._offline = False
            if not self._woken:
                self.play("listening")
            self._woken = False
        elif state is DaemonState.OFFLINE and not self._offline:
            self._offline = True
            self.play("error")
        if state is DaemonState.SPEAKING or state not in TALKING:
            self._user_done = None  # answered (or no conversation any more)
            if state is not DaemonState.SPEAKING:
                self._tools = 0
            self._think(False)

    def session_ended(self, outcome: Outcome, delay: float | None) -> None:
        if outcome.retry is Retry.IDLE:
            self.play("ended")

    def controls_changed(self) -> None:
        if self.mode == "push-to-talk":
            return  # the mic opens and closes with every press: no sound for that
        muted = not self.daemon.mic_enabled
        if self._muted and not muted and self._state in TALKING:
            self.play("listening")
        self._muted = muted

    def session_event(self, event: object) -> None:
        if isinstance(event, Transcript) and event.role == "user":
            self._user_done = time.monotonic()

    def tools_running(self, count: int) -> None:
        self._tools = count
        self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        after = self.settings.thinking_after_s
        waited = None if self._user_done is None else now - self._user_done
        slow = after > 0 and waited is not None and after <= waited < MAX_THINKING_S
        self._think(self._state in AWAITING and (self._tools > 0 or slow))

    def _think(self, on: bool) -> None:
        if on == self._thinking:
            return
        self._thinking = on
        if on:
            self.play("thinking", loop=True)
        elif self._mixer is not None:
            self._mixer.stop(only_loop=True)
