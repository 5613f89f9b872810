"""The button through gpiozero's MockFactory: every mode with presses, holds, long presses and
multi-press gestures, then the mode controller alone (ordering races, the idle timeout)."""

from __future__ import annotations


import pytest

from edgevoice.device import (DaemonControl, ModeController)
from tests.support.gpio import FakeDaemon, make_button



def test_fake_daemon_satisfies_the_protocol():
    assert isinstance(FakeDaemon(), DaemonControl)


def test_always_on_short_press_toggles_the_privacy_mute():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("always-on", daemon, long_press_s=5.0)
    start = controller.initial_state()
    assert (start.start_session, start.mic_open, start.muted) == (True, True, False)

    press()
    assert daemon.take() == []          # a short press is judged once the gesture is over
    release()
    assert daemon.take() == []          # ... multi_press_s after the release
    daemon.wait_for("toggle_mute")
    assert daemon.take() == [("toggle_mute", "button")]
    press(); release()
    daemon.wait_for("toggle_mute")
    assert daemon.take() == [("toggle_mute", "button")]
    button.close()


def test_always_on_long_press_restarts():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("always-on", daemon)
    press()
    daemon.wait_for("restart_session")   # gpiozero's hold thread fires it
    release()                            # the release ending a long press is no short press
    controller.settle()
    assert daemon.take() == [("restart_session",)]
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
    daemon.wait_for("start_session")
    assert daemon.take() == [("start_session",)]
    press(); release()
    daemon.wait_for("end_session")
    assert daemon.take() == [("end_session",)]
    daemon.active = False   # the session ended by itself (the agent hung up)
    press(); release()
    daemon.wait_for("start_session")
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
    controller.settle()
    assert [c[0] for c in daemon.take()] == ["restart_session"] * 3
    button.close()


def test_long_press_arriving_after_the_release_is_ignored():
    daemon = FakeDaemon(active=True)
    controller = ModeController("always-on", daemon)
    controller.pressed()
    controller.released()
    controller.long_pressed()   # gpiozero's hold thread lost the race with the release
    controller.settle()
    assert daemon.take() == [("toggle_mute", "button")]


def test_repeated_edges_count_once():
    daemon = FakeDaemon(active=False)
    controller = ModeController("toggle", daemon)
    controller.pressed(); controller.pressed()
    controller.released(); controller.released()
    controller.settle()
    assert daemon.take() == [("start_session",)]


def test_toggle_idle_timeout_ends_the_session():
    now = [100.0]
    daemon = FakeDaemon(active=False)
    controller = ModeController("toggle", daemon, idle_timeout_s=30, clock=lambda: now[0])
    controller.pressed(); controller.released(); controller.settle()
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
        def toggle_mute(self, source="button"):
            raise RuntimeError("boom")

    controller = ModeController("always-on", Broken())
    controller.pressed()
    controller.released()
    controller.settle()   # logged, not raised (it runs on gpiozero's thread)
    assert "button mute failed" in caplog.text


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="always-on, push-to-talk, toggle, wake-word"):
        ModeController("walkie", FakeDaemon())


# -- multi-press gestures on a MockFactory pin ---------------------------------------------
WINDOW = 1.0  # generous: the presses of a test come microseconds apart, even on a busy CI


def _clicks(press, release, n: int) -> None:
    for _ in range(n):
        press()
        release()


@pytest.mark.parametrize("mode", ["always-on", "push-to-talk", "toggle", "wake-word"])
@pytest.mark.parametrize("presses, step", [(2, 10), (3, -10)])
def test_double_press_turns_up_and_triple_press_turns_down(mode, presses, step):
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button(mode, daemon, long_press_s=5.0,
                                                     multi_press_s=WINDOW)
    _clicks(press, release, presses)
    daemon.wait_for("change_volume")
    calls = daemon.take()
    assert [c for c in calls if c[0] != "set_mic_open"] == [("change_volume", None, step)]
    if mode == "push-to-talk":  # each click opened and closed the mic at once
        assert [c for c in calls if c[0] == "set_mic_open"] == \
            [("set_mic_open", True), ("set_mic_open", False)] * presses
    button.close()


@pytest.mark.parametrize("mode", ["always-on", "push-to-talk", "toggle", "wake-word"])
def test_four_presses_toggle_the_privacy_mute_in_every_mode(mode):
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button(mode, daemon, long_press_s=5.0,
                                                     multi_press_s=WINDOW)
    _clicks(press, release, 4)
    daemon.wait_for("toggle_mute")
    calls = [c for c in daemon.take() if c[0] != "set_mic_open"]
    assert calls == [("toggle_mute", "button")]
    button.close()


def test_the_volume_step_is_configurable_and_gestures_do_not_run_together():
    daemon = FakeDaemon(active=True)
    controller = ModeController("toggle", daemon, multi_press_s=WINDOW, volume_step=5)
    for _ in range(2):
        controller.pressed(); controller.released()
    controller.settle()
    controller.pressed(); controller.released()   # a new gesture: one press
    controller.settle()
    assert daemon.take() == [("change_volume", None, 5), ("end_session",)]


def test_a_long_press_ends_the_gesture_it_was_part_of():
    daemon = FakeDaemon(active=True)
    controller = ModeController("always-on", daemon, multi_press_s=WINDOW)
    controller.pressed(); controller.released()
    controller.pressed(); controller.long_pressed(); controller.released()
    controller.settle()
    assert daemon.take() == [("restart_session",)]


def test_push_to_talk_questions_are_no_gesture_clicks():
    """Two questions in a row (each held over a second) are no double press."""
    now = [0.0]
    daemon = FakeDaemon(active=True)
    controller = ModeController("push-to-talk", daemon, multi_press_s=WINDOW,
                                clock=lambda: now[0])
    for _ in range(2):
        controller.pressed(); now[0] += 2.5; controller.released(); now[0] += 0.1
    controller.settle()
    assert daemon.take() == [("set_mic_open", True), ("set_mic_open", False)] * 2


def test_wake_word_press_wakes_interrupts_or_ends():
    daemon = FakeDaemon(active=False)
    controller, button, press, release = make_button("wake-word", daemon, long_press_s=5.0)
    start = controller.initial_state()
    assert (start.start_session, start.led) == (False, "waiting for wake word")

    press(); release()                     # waiting for the wake word: wake up
    daemon.wait_for("wake")
    assert daemon.take() == [("wake", "button")]
    daemon.speaking = True                 # the agent answers: a press interrupts it
    press(); release()
    daemon.wait_for("interrupt")
    assert daemon.take() == [("interrupt",), ("user_activity",)]
    daemon.speaking = False                # follow-up window: a press ends the session
    press(); release()
    daemon.wait_for("end_session")
    assert daemon.take() == [("end_session",)]
    button.close()


def test_closing_the_button_drops_a_gesture_in_its_window():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("toggle", daemon, long_press_s=5.0,
                                                     multi_press_s=WINDOW)
    press(); release()
    button.close()
    controller.settle()
    assert daemon.take() == []
