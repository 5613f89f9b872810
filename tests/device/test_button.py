"""The button through gpiozero's MockFactory: every mode with presses, holds and long presses,
then the mode controller alone (ordering races, the idle timeout)."""

from __future__ import annotations


import pytest

from edgevoice.device import (DaemonControl, ModeController)
from tests.support.gpio import FakeDaemon, make_button



def test_fake_daemon_satisfies_the_protocol():
    assert isinstance(FakeDaemon(), DaemonControl)


def test_always_on_short_press_mutes_and_unmutes():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("always-on", daemon, long_press_s=5.0)
    start = controller.initial_state()
    assert (start.start_session, start.mic_open, start.muted) == (True, True, False)

    press()
    assert daemon.take() == []          # a short press is judged on release
    release()
    assert daemon.take() == [("set_muted", True)]
    assert controller.muted
    press(); release()
    assert daemon.take() == [("set_muted", False)]
    assert not controller.muted
    button.close()


def test_always_on_long_press_restarts_and_keeps_mute():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("always-on", daemon)
    press(); release()
    assert daemon.take() == [("set_muted", True)]

    press()
    daemon.wait_for("restart_session")   # gpiozero's hold thread fires it
    release()                            # the release ending a long press is no short press
    assert daemon.take() == [("restart_session",)]
    assert controller.muted              # a muted device stays muted across a restart
    button.close()


def test_push_to_talk_mic_flows_only_while_held():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("push-to-talk", daemon, long_press_s=5.0)
    start = controller.initial_state()
    assert (start.start_session, start.mic_open) == (True, False)
    assert not controller.mic_open

    press()
    assert daemon.take() == [("set_mic_open", True)]    # at once, on the press
    assert controller.mic_open and button.is_pressed
    release()
    assert daemon.take() == [("set_mic_open", False)]
    assert not controller.mic_open
    button.close()


def test_push_to_talk_press_while_agent_speaks_interrupts_it():
    daemon = FakeDaemon(speaking=True, active=True)
    controller, button, press, release = make_button("push-to-talk", daemon, long_press_s=5.0)
    press()
    assert daemon.take() == [("interrupt",), ("user_activity",), ("set_mic_open", True)]
    release()
    assert daemon.take() == [("set_mic_open", False)]
    daemon.speaking = False
    press(); release()
    assert daemon.take() == [("set_mic_open", True), ("set_mic_open", False)]
    button.close()


@pytest.mark.parametrize("mode, asked", [
    # push-to-talk: the hold opened the mic; the long press closes it, then restarts
    ("push-to-talk", [("set_mic_open", True), ("set_mic_open", False), ("restart_session",)]),
    ("toggle", [("restart_session",)]),  # toggle: a restart only
])
def test_long_press_restarts(mode, asked):
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button(mode, daemon)
    press()
    daemon.wait_for("restart_session")
    release()
    assert daemon.take() == asked
    if mode == "push-to-talk":
        assert not controller.mic_open
    button.close()


def test_toggle_press_starts_and_next_press_ends():
    daemon = FakeDaemon(active=False)
    controller, button, press, release = make_button("toggle", daemon, long_press_s=5.0)
    start = controller.initial_state()
    assert (start.start_session, start.led) == (False, "idle")

    press(); release()
    assert daemon.take() == [("start_session",)]
    press(); release()
    assert daemon.take() == [("end_session",)]
    daemon.active = False   # the session ended by itself (the agent hung up)
    press(); release()
    assert daemon.take() == [("start_session",)]
    button.close()


def test_active_high_button_is_pressed_by_driving_high():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("push-to-talk", daemon, long_press_s=5.0,
                                                     active_high=True)
    assert not button.is_pressed
    press()
    assert daemon.take() == [("set_mic_open", True)]
    release()
    assert daemon.take() == [("set_mic_open", False)]
    button.close()


def test_several_long_presses_in_a_row():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("always-on", daemon, long_press_s=0.15)
    for n in (1, 2, 3):
        press()
        daemon.wait_for("restart_session", n)
        release()
    assert [c[0] for c in daemon.take()] == ["restart_session"] * 3
    assert not controller.muted
    button.close()


def test_long_press_arriving_after_the_release_is_ignored():
    daemon = FakeDaemon(active=True)
    controller = ModeController("always-on", daemon)
    controller.pressed()
    controller.released()
    controller.long_pressed()   # gpiozero's hold thread lost the race with the release
    assert daemon.take() == [("set_muted", True)]


def test_repeated_edges_count_once():
    daemon = FakeDaemon(active=False)
    controller = ModeController("toggle", daemon)
    controller.pressed(); controller.pressed()
    controller.released(); controller.released()
    assert daemon.take() == [("start_session",)]


def test_toggle_idle_timeout_ends_the_session():
    now = [100.0]
    daemon = FakeDaemon(active=False)
    controller = ModeController("toggle", daemon, idle_timeout_s=30, clock=lambda: now[0])
    controller.pressed(); controller.released()
    assert daemon.take() == [("start_session",)]
    now[0] += 29
    assert not controller.check_idle()
    controller.note_activity()         # the user spoke
    now[0] += 29
    assert not controller.check_idle()
    now[0] += 2
    assert controller.check_idle()
    assert daemon.take() == [("end_session",)]
    now[0] += 100
    assert not controller.check_idle()   # no session, nothing to end
    other = ModeController("always-on", daemon, idle_timeout_s=30, clock=lambda: now[0])
    now[0] += 100
    assert not other.check_idle()


def test_a_failing_control_call_does_not_escape(caplog):
    class Broken(FakeDaemon):
        def set_muted(self, muted):
            raise RuntimeError("boom")

    controller = ModeController("always-on", Broken())
    controller.pressed()
    controller.released()   # logged, not raised (it runs on gpiozero's thread)
    assert "button mute failed" in caplog.text


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="always-on, push-to-talk, toggle"):
        ModeController("walkie", FakeDaemon())
