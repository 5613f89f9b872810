"""Which earcon the daemon's states and events call for (edgevoice.sounds.Earcons), state by
state and event by event, on a real Mixer whose blocks the test pulls: the output WAV tests
(test_earcons.py) show the same in real time; here every rule is checked quickly."""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from edgevoice.audio.mixer import Mixer
from edgevoice.config import parse
from edgevoice.lifecycle import DaemonState as S
from edgevoice.providers.base import Outcome, Retry, Transcript
from edgevoice.sounds import Earcons
from tests.support.config import XUNA

RATE = 16000


class Rig:
    def __init__(self, text: str = "") -> None:
        config = parse(XUNA + text)
        self.daemon = types.SimpleNamespace(config=config, mic_enabled=True)
        self.mixer = Mixer(RATE // 50)
        engine = types.SimpleNamespace(mixer=self.mixer, playback=types.SimpleNamespace(rate=RATE))
        self.earcons = Earcons(self.daemon)
        self.earcons.audio_opened(engine)
        self.block = np.zeros(RATE // 50, dtype="<i2")

    def states(self, *states: S) -> list[str]:
        before = len(self.earcons.played)
        for state in states:
            self.earcons.on_state(state, "")
        return self.new(before)

    def new(self, before: int) -> list[str]:
        return [name for name, _ in self.earcons.played[before:]]

    def drain(self) -> None:
        """Play out the one-shot sounding now."""
        for _ in range(100):
            if self.sounding() == "":
                return
        raise AssertionError("a sound that does not end")

    def sounding(self) -> str:
        self.block[:] = 0
        self.mixer.mix(self.block)
        return self.mixer.playing


def test_listening_when_a_session_starts_listening_not_between_turns():
    rig = Rig()
    assert rig.states(S.CONNECTING, S.LISTENING) == ["listening"]
    assert rig.states(S.SPEAKING, S.LISTENING, S.SPEAKING, S.LISTENING) == []
    assert rig.states(S.IDLE, S.CONNECTING, S.LISTENING) == ["listening"]
    assert rig.states(S.WAITING_FOR_WAKE, S.LISTENING) == ["listening"]
    assert rig.states(S.FOLLOW_UP, S.LISTENING) == []  # a follow-up question: no wake word


def test_error_once_per_outage_and_listening_when_back():
    rig = Rig()
    rig.states(S.CONNECTING, S.LISTENING)
    assert rig.states(S.OFFLINE) == ["error"]
    assert rig.states(S.CONNECTING, S.OFFLINE, S.CONNECTING, S.OFFLINE) == []
    assert rig.states(S.CONNECTING, S.LISTENING) == ["listening"]
    assert rig.states(S.OFFLINE) == ["error"]  # a new outage


def test_ended_only_when_the_button_or_a_timeout_ends_the_session():
    rig = Rig()
    before = len(rig.earcons.played)
    rig.earcons.session_ended(Outcome("fresh session requested", Retry.NOW), None)
    rig.earcons.session_ended(Outcome("server closed", Retry.LATER), 2.0)
    assert rig.new(before) == []
    rig.earcons.session_ended(Outcome("session ended (button or idle timeout)", Retry.IDLE),
                              None)
    assert rig.new(before) == ["ended"] and rig.sounding() == "ended"


def test_unmute_plays_listening_but_push_to_talk_presses_do_not():
    rig = Rig()
    rig.states(S.CONNECTING, S.LISTENING)
    before = len(rig.earcons.played)
    rig.daemon.mic_enabled = False
    rig.earcons.controls_changed()
    rig.daemon.mic_enabled = True
    rig.earcons.controls_changed()
    assert rig.new(before) == ["listening"]
    ptt = Rig("[agent]\nmode = push-to-talk\n")
    ptt.states(S.CONNECTING, S.LISTENING)
    before = len(ptt.earcons.played)
    for enabled in (True, False, True):
        ptt.daemon.mic_enabled = enabled
        ptt.earcons.controls_changed()
    assert ptt.new(before) == []


def test_thinking_after_the_users_turn_until_the_agent_answers():
    rig = Rig("[sounds]\nthinking_after_s = 2\n")
    rig.states(S.CONNECTING, S.LISTENING)
    rig.drain()
    rig.earcons.session_event(Transcript("agent", "hello"))
    t = rig.earcons._user_done
    assert t is None
    rig.earcons.session_event(Transcript("user", "what is the time?"))
    t = rig.earcons._user_done
    rig.earcons.tick(t + 1.9)
    assert rig.sounding() == ""
    rig.earcons.tick(t + 2.1)
    assert rig.sounding() == "thinking"
    rig.earcons.tick(t + 2.2)
    assert [n for n, _ in rig.earcons.played].count("thinking") == 1  # one loop, not one a tick
    rig.states(S.SPEAKING)  # the answer: silence at once
    assert rig.sounding() == ""
    rig.states(S.LISTENING)
    rig.earcons.tick(t + 5.0)
    assert rig.sounding() == ""  # answered: nothing is awaited any more
    rig.earcons.session_event(Transcript("user", "and the date?"))
    t = rig.earcons._user_done
    rig.earcons.tick(t + 31.0)
    assert rig.sounding() == ""  # gives up after MAX_THINKING_S
    rig.states(S.SPEAKING, S.FOLLOW_UP)  # wake-word mode: the answer ended, the session open
    rig.earcons.session_event(Transcript("user", "and tomorrow?"))
    rig.earcons.tick(rig.earcons._user_done + 2.5)
    assert rig.sounding() == "thinking"


def test_thinking_while_a_tool_runs_and_only_while_the_agent_is_silent():
    rig = Rig("[sounds]\nthinking_after_s = 0\n")
    rig.states(S.CONNECTING, S.LISTENING)
    rig.drain()
    rig.earcons.tools_running(1)
    assert rig.sounding() == "thinking"
    rig.states(S.SPEAKING)  # "let me look that up…"
    assert rig.sounding() == ""
    rig.states(S.LISTENING)
    rig.earcons.tick(0.0)
    assert rig.sounding() == "thinking"  # the tool still runs
    rig.earcons.tools_running(0)
    assert rig.sounding() == ""
    rig.earcons.tools_running(1)
    rig.states(S.OFFLINE)  # the session is gone: so are its tools
    assert rig.sounding() == "error"


def test_a_reload_replaces_or_silences_the_sounds():
    rig = Rig()
    config = parse(XUNA + "[sounds]\nlistening = off\nlevel_db = -12\n")
    rig.earcons.config_applied(config)
    assert rig.states(S.CONNECTING, S.LISTENING) == []
    assert np.abs(rig.earcons._sounds["ended"]).max() < 32768 * 10 ** (-23 / 20)
    rig.earcons.config_applied(dataclasses.replace(config))  # unchanged: nothing reloaded
