"""The button and the LED through gpiozero's MockFactory: every mode with presses, holds and
long presses; every LED state's pattern measured on the pin; the degrade-to-no-op paths."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from edgevoice.device import (LED_STATES, PATTERNS, ButtonInput, DaemonControl, ModeController,
                              StatusLed, led_state_for)
from edgevoice.device.led import _PROGRAMS, patterns_markdown

WAIT = 5.0  # seconds any single wait may take before the test fails


# --- helpers ---------------------------------------------------------------------------------
class FakeDaemon:
    """Records DaemonControl calls; tests wait on them through a condition."""

    def __init__(self, speaking: bool = False, active: bool = False) -> None:
        self.calls: list[tuple] = []
        self.speaking = speaking
        self.active = active
        self.cond = threading.Condition()

    def _record(self, *call) -> None:
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()

    def set_muted(self, muted: bool) -> None:
        self._record("set_muted", muted)

    def set_mic_open(self, open: bool) -> None:
        self._record("set_mic_open", open)

    def interrupt(self) -> None:
        self._record("interrupt")

    def user_activity(self) -> None:
        self._record("user_activity")

    def start_session(self) -> None:
        self.active = True
        self._record("start_session")

    def end_session(self) -> None:
        self.active = False
        self._record("end_session")

    def restart_session(self) -> None:
        self.active = True
        self._record("restart_session")

    def agent_speaking(self) -> bool:
        return self.speaking

    def session_active(self) -> bool:
        return self.active

    def wait_for(self, name: str, count: int = 1) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: sum(c[0] == name for c in self.calls) >= count,
                                    WAIT)
        assert ok, f"no {name} call; calls were {self.calls}"

    def take(self) -> list[tuple]:
        with self.cond:
            calls, self.calls = self.calls, []
        return calls


_pin_changed = threading.Condition()


class _Watched:
    """Makes a mock pin's state changes something a test can wait for."""

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            with _pin_changed:
                _pin_changed.notify_all()
        return changed


class WatchedPin(_Watched, MockPin):
    pass


class WatchedPWMPin(_Watched, MockPWMPin):
    pass


def wait_until(predicate, timeout: float = WAIT) -> None:
    with _pin_changed:
        assert _pin_changed.wait_for(predicate, timeout), "the pin never got there"


def make_button(mode: str, daemon: FakeDaemon, long_press_s: float = 0.25,
                active_high: bool = False):
    factory = MockFactory(pin_class=WatchedPin)
    controller = ModeController(mode, daemon, long_press_s=long_press_s)
    button = ButtonInput(17, active_high=active_high, long_press_s=long_press_s, bounce_s=None,
                         controller=controller, pin_factory=factory)
    assert button.available
    pin = factory.pin(17)
    press = pin.drive_high if active_high else pin.drive_low
    release = pin.drive_low if active_high else pin.drive_high
    return controller, button, press, release


# --- modes through a real gpiozero Button on a mock pin --------------------------------------
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


def test_push_to_talk_long_press_closes_the_mic_and_restarts():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("push-to-talk", daemon)
    press()
    daemon.wait_for("restart_session")
    release()
    assert daemon.take() == [("set_mic_open", True), ("set_mic_open", False),
                             ("restart_session",)]
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


def test_toggle_long_press_restarts_only():
    daemon = FakeDaemon(active=True)
    controller, button, press, release = make_button("toggle", daemon)
    press()
    daemon.wait_for("restart_session")
    release()
    assert daemon.take() == [("restart_session",)]
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


# --- the controller alone: ordering races and the idle timeout ----------------------------
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


# --- LED patterns, measured on the pin -------------------------------------------------------
def _segments(pin, count: int) -> list[tuple[float, float]]:
    """Wait for ``count`` changes after the first, return (value, seconds it lasted)."""
    wait_until(lambda: len(pin.states) >= count + 2)
    states = list(pin.states)
    return [(states[i].state, states[i + 1].timestamp) for i in range(1, count + 1)]


def _close_to(measured: float, expected: float) -> bool:
    # loose enough for a busy 2-core CI machine, tight enough to tell the patterns apart
    return expected * 0.8 - 0.02 <= measured <= expected * 1.3 + 0.15


_open_leds: list[StatusLed] = []


@pytest.fixture(autouse=True)
def _close_leds():
    """Close every LED a test opened, even when it fails (a blinking gpiozero device left
    to the garbage collector tries to join its own thread)."""
    yield
    while _open_leds:
        _open_leds.pop().close()


def _led(kind: str, **kw) -> tuple[StatusLed, MockFactory]:
    factory = MockFactory(pin_class=WatchedPWMPin if kind != "onoff" else WatchedPin)
    if kind == "rgb":
        led = StatusLed("rgb", red_pin=5, green_pin=6, blue_pin=13, pin_factory=factory, **kw)
    else:
        led = StatusLed(kind, 18, pin_factory=factory, **kw)
    _open_leds.append(led)
    assert led.available, led
    return led, factory


def _check_blink(pin, on: float, off: float) -> None:
    segments = _segments(pin, 3)
    (v1, t1), (v2, t2), (v3, _) = segments
    assert (v1, v2, v3) == (1, 0, 1), segments
    assert _close_to(t1, on) and _close_to(t2, off), (segments, on, off)


def _check_pulse(pin, fade_in: float, fade_out: float) -> None:
    # states[0] is whatever the pin showed before; the pulse's peaks come after it
    wait_until(lambda: sum(s.state == 1 for s in pin.states[1:]) >= 2)
    states = list(pin.states)
    peaks = [i for i, s in enumerate(states) if s.state == 1 and i > 0]
    period = sum(s.timestamp for s in states[peaks[0] + 1: peaks[1] + 1])
    between = [s.state for s in states[peaks[0] + 1: peaks[1]]]
    assert any(0 < v < 1 for v in between), "a pulse fades, it does not jump"
    assert min(between) == 0
    assert _close_to(period, fade_in + fade_out), (period, fade_in, fade_out)


@pytest.mark.parametrize("kind", ["pwm", "onoff"])
def test_every_state_pattern_on_a_single_led(kind):
    led, factory = _led(kind)
    pin = factory.pin(18)
    for state in LED_STATES:
        program = _PROGRAMS[kind][state]
        led.show("off")             # each pattern measured from a dark LED
        pin.clear_states()
        led.show(state)
        assert led.state == state
        if program.blink:
            _check_blink(pin, *program.blink)
        elif program.pulse:
            _check_pulse(pin, *program.pulse)
        else:
            assert pin.state == pytest.approx(program.level)
    led.show("off")
    assert pin.state == 0
    led.close()
    assert not led.available


def test_steady_levels_on_a_pwm_led():
    led, factory = _led("pwm")
    pin = factory.pin(18)
    led.show("idle")
    assert pin.state == pytest.approx(0.08)     # dim glow
    led.show("listening")
    assert pin.state == 1.0
    led.show("offline")
    led.show("listening")                       # a blink stops at once for a steady state
    assert pin.state == 1.0
    led.close()


def test_rgb_led_colours_and_patterns():
    led, factory = _led("rgb")
    red, green, blue = (factory.pin(n) for n in (5, 6, 13))
    rgb = lambda: (red.state, green.state, blue.state)
    led.show("listening")
    assert rgb() == (0, 1, 0)                       # green
    led.show("muted")
    assert rgb() == (1, 0.5, 0)                     # amber
    led.show("idle")
    assert rgb() == pytest.approx((0.08, 0.08, 0.08))   # dim white

    for pin in (red, green, blue):
        pin.clear_states()
    led.show("offline")                              # red, fast blink
    _check_blink(red, 0.1, 0.1)
    assert green.state == 0 and blue.state == 0

    for pin in (red, green, blue):
        pin.clear_states()
    led.show("speaking")                             # cyan, fast pulse
    _check_pulse(blue, 0.25, 0.25)
    assert red.state == 0
    assert all(s.state == 0 for s in red.states[1:])

    for pin in (red, green, blue):
        pin.clear_states()
    led.show("connecting")                           # blue, slow breathing
    wait_until(lambda: any(0 < s.state < 1 for s in blue.states))
    assert red.state == 0 and green.state == 0
    led.close()


def test_active_low_led_is_lit_by_driving_low():
    led, factory = _led("onoff", active_high=False)
    pin = factory.pin(18)
    led.show("listening")
    assert pin.state == 0
    led.show("off")
    assert pin.state == 1
    led.close()


def test_showing_the_same_state_again_keeps_the_pattern_running():
    led, factory = _led("onoff")
    pin = factory.pin(18)
    led.show("offline")
    wait_until(lambda: len(pin.states) >= 4)
    before = len(pin.states)
    led.show("offline")            # no restart: the blink goes on from where it was
    wait_until(lambda: len(pin.states) >= before + 2)
    led.close()


def test_daemon_states_are_accepted_and_unknown_ones_rejected():
    led, factory = _led("pwm")
    led.show("starting")
    assert led.state == "connecting"
    led.show("stopped")
    assert led.state == "off"
    with pytest.raises(ValueError, match="unknown LED state"):
        led.show("dancing")
    led.close()


def test_led_state_for_the_daemon_and_the_button():
    assert led_state_for("starting") == "connecting"
    assert led_state_for("offline", muted=True) == "offline"
    assert led_state_for("listening") == "listening"
    assert led_state_for("speaking") == "speaking"
    assert led_state_for("speaking", muted=True) == "muted"
    assert led_state_for("listening", mic_open=False) == "idle"
    assert led_state_for("listening", session_active=False) == "idle"
    assert led_state_for("stopped") == "off"


# --- PATTERNS: documented, distinct, and what the LED really does ---------------------------
def test_patterns_document_every_state_and_kind():
    assert list(PATTERNS) == list(LED_STATES)
    for state, words in PATTERNS.items():
        assert set(words) == {"meaning", "pwm", "onoff", "rgb"}, state
    assert "fast blink" in PATTERNS["offline"]["pwm"]
    table = patterns_markdown()
    assert table.count("\n") == len(LED_STATES) + 1
    for state in LED_STATES:
        assert f"| {state} |" in table


@pytest.mark.parametrize("kind", ["pwm", "onoff", "rgb"])
def test_each_state_looks_different(kind):
    programs = [_PROGRAMS[kind][s] for s in LED_STATES]
    assert len(set(programs)) == len(programs), kind


def _num(x: float) -> str:
    return f"{x:g} s"


@pytest.mark.parametrize("kind", ["pwm", "onoff", "rgb"])
def test_pattern_words_match_the_programs(kind):
    colours = {(1.0, 1.0, 1.0): "white", (0.0, 0.0, 1.0): "blue", (0.0, 1.0, 0.0): "green",
               (0.0, 1.0, 1.0): "cyan", (1.0, 0.5, 0.0): "amber", (1.0, 0.0, 0.0): "red"}
    for state in LED_STATES:
        words, p = PATTERNS[state][kind], _PROGRAMS[kind][state]
        if p.blink:
            on, off = p.blink
            assert _num(on) in words and (_num(off) in words
                                          or f"every {_num(on + off)}" in words), (state, words)
        elif p.pulse:
            assert all(_num(t) in words for t in p.pulse), (state, words)
        else:
            assert "steady" in words, (state, words)
            if p.level < 1:
                assert f"{p.level * 100:g} %" in words or "dim" in words, (state, words)
        if kind == "rgb":
            assert colours[p.color] in words, (state, words)


# --- degrading to a no-op ----------------------------------------------------------------------
def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_busy_pin_is_one_warning_and_a_no_op(caplog):
    factory = MockFactory()
    other = LED(18, pin_factory=factory)        # someone else holds GPIO18
    caplog.set_level(logging.DEBUG)
    led = StatusLed("onoff", 18, pin_factory=factory)
    assert not led.available
    for state in LED_STATES:
        led.show(state)                          # does nothing, raises nothing
    led.close()
    button = ButtonInput(18, pin_factory=factory,
                         controller=ModeController("toggle", FakeDaemon()))
    assert not button.available and not button.is_pressed
    button.close()
    messages = _warnings(caplog)
    assert len(messages) == 2, messages
    assert all("GPIO18" in m and "in use" in m for m in messages), messages
    other.close()


def test_no_pin_driver_is_one_warning_naming_the_fix(caplog, monkeypatch):
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-driver")
    led = StatusLed("pwm", 18)
    button = ButtonInput(17)
    assert not led.available and not button.available
    led.show("offline")
    messages = _warnings(caplog)
    assert len(messages) == 2, messages
    assert "GPIO18" in messages[0] and "GPIO17" in messages[1]
    assert all("[gpio] enabled = no" in m for m in messages), messages


class _NoChipFactory(MockFactory):
    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def pin(self, spec, **kw):
        raise self.error


@pytest.mark.parametrize("error, hint", [
    (FileNotFoundError(2, "No such file or directory", "/dev/gpiochip0"), "/dev/gpiochip0"),
    (PermissionError(13, "Permission denied", "/dev/gpiochip0"), "gpio group"),
])
def test_missing_or_forbidden_gpio_chip(caplog, error, hint):
    led = StatusLed("pwm", 18, pin_factory=_NoChipFactory(error))
    button = ButtonInput(17, pin_factory=_NoChipFactory(error))
    assert not led.available and not button.available
    messages = _warnings(caplog)
    assert len(messages) == 2, messages
    assert all(hint in m for m in messages), messages


def test_led_without_pwm_says_to_use_onoff(caplog):
    led = StatusLed("pwm", 18, pin_factory=MockFactory())   # MockPin cannot do PWM
    assert not led.available
    assert "led = onoff" in caplog.text


def test_missing_pins_are_a_warning_not_a_crash(caplog):
    assert not StatusLed("rgb", pin_factory=MockFactory(pin_class=MockPWMPin),
                         red_pin=5).available
    assert not ButtonInput(None).available
    assert len(_warnings(caplog)) == 2


def test_from_settings():
    factory = MockFactory(pin_class=MockPWMPin)
    gpio = SimpleNamespace(enabled=True, button_pin="17", led_pin=18, led="pwm",
                           red_pin=-1, green_pin=-1, blue_pin=-1, led_active_high=True,
                           button_active_high=False, long_press_s=2.0)
    led = StatusLed.from_settings(gpio, pin_factory=factory)
    assert led.available and led.kind == "pwm"
    daemon = FakeDaemon()
    controller = ModeController("toggle", daemon, long_press_s=2.0)
    button = ButtonInput.from_settings(gpio, controller=controller, pin_factory=factory)
    assert button.available and button.long_press_s == 2.0
    factory.pin(17).drive_low(); factory.pin(17).drive_high()
    assert daemon.take() == [("start_session",)]
    led.close(); button.close()

    off = SimpleNamespace(enabled=False, led="pwm", led_pin=18, button_pin=17)
    assert not StatusLed.from_settings(off, pin_factory=factory).available
    assert ButtonInput.from_settings(off, pin_factory=factory) is None
    none = SimpleNamespace(enabled=True, led="none")
    assert not StatusLed.from_settings(none).available


def test_gpio_disabled_never_imports_gpiozero():
    """gpiozero costs ~9 MB; a board without GPIO should not pay for it."""
    code = ("import sys, types\n"
            "from edgevoice.device import StatusLed, ButtonInput, ModeController\n"
            "off = types.SimpleNamespace(enabled=False)\n"
            "StatusLed.from_settings(off).show('listening')\n"
            "assert ButtonInput.from_settings(off) is None\n"
            "assert 'gpiozero' not in sys.modules, 'gpiozero was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
