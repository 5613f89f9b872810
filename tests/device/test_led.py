"""The status LED through gpiozero's MockFactory: every state's pattern measured on the pin,
for PWM, on/off and RGB LEDs, and the documented patterns against the programs."""

from __future__ import annotations


import pytest
from gpiozero.pins.mock import MockFactory

from edgevoice.device import (LED_STATES, PATTERNS, StatusLed, led_state_for)
from edgevoice.device.led import _PROGRAMS, patterns_markdown
from tests.support.gpio import WatchedPWMPin, WatchedPin, wait_for_pin



def _segments(pin, count: int) -> list[tuple[float, float]]:
    """Wait for ``count`` changes after the first, return (value, seconds it lasted)."""
    wait_for_pin(lambda: len(pin.states) >= count + 2)
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
    wait_for_pin(lambda: sum(s.state == 1 for s in pin.states[1:]) >= 2,
                 2 * (fade_in + fade_out) + 5.0)
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
    assert rgb() == (1, 0, 0)                       # red, steady: the privacy mute
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
    wait_for_pin(lambda: any(0 < s.state < 1 for s in blue.states))
    assert red.state == 0 and green.state == 0

    for pin in (red, green, blue):
        pin.clear_states()
    led.show("follow-up")                            # green, a short dip every second
    _check_blink(green, 0.9, 0.1)
    assert red.state == 0 and blue.state == 0

    for pin in (red, green, blue):
        pin.clear_states()
    led.show("waiting for wake word")                # white, very slow breathing
    wait_for_pin(lambda: all(any(0 < s.state < 1 for s in p.states) for p in (red, green, blue)))
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
    wait_for_pin(lambda: len(pin.states) >= 4)
    before = len(pin.states)
    led.show("offline")            # no restart: the blink goes on from where it was
    wait_for_pin(lambda: len(pin.states) >= before + 2)
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
    assert led_state_for("waiting for wake word", session_active=False) == \
        "waiting for wake word"
    assert led_state_for("follow-up") == "follow-up"
    assert led_state_for("muted") == "muted"
    assert led_state_for("listening") == "listening"
    assert led_state_for("speaking") == "speaking"
    assert led_state_for("speaking", muted=True) == "muted"
    assert led_state_for("listening", mic_open=False) == "idle"
    assert led_state_for("listening", session_active=False) == "idle"
    assert led_state_for("stopped") == "off"


@pytest.mark.parametrize("state", ["starting", "waiting for device", "idle",
                                   "waiting for wake word", "connecting", "listening",
                                   "speaking", "follow-up", "offline"])
def test_the_privacy_mute_shows_whatever_else_goes_on(state):
    """The LED cannot lie about the microphone: muted wins over every daemon state."""
    assert led_state_for(state, muted=True) == "muted"
    assert led_state_for(state, muted=True, session_active=False, mic_open=False) == "muted"
    assert led_state_for(state) != "muted"


@pytest.mark.parametrize("kind", ["pwm", "onoff", "rgb"])
def test_no_other_state_looks_like_the_privacy_mute(kind):
    muted = _PROGRAMS[kind]["muted"]
    others = [s for s in _PROGRAMS[kind] if s != "muted"]
    assert all(_PROGRAMS[kind][s] != muted for s in others)
    if kind == "rgb":  # not even the same colour with another rhythm, steady or blinking
        assert all(_PROGRAMS[kind][s].color != muted.color or _PROGRAMS[kind][s].blink
                   for s in others)


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


def test_the_readme_shows_the_led_table():
    from tests.support import ROOT

    assert patterns_markdown() in (ROOT / "README.md").read_text()
