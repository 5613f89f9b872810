"""GPIO that is busy, missing or forbidden: the button and the LED degrade to a no-op with one
warning naming the fix; and the settings that build them."""

from __future__ import annotations

import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edgevoice.device import (LED_STATES, ButtonInput, ModeController,
                              StatusLed)
from tests.support.gpio import FakeDaemon

# --- helpers ---------------------------------------------------------------------------------
# --- modes through a real gpiozero Button on a mock pin --------------------------------------
# --- the controller alone: ordering races and the idle timeout ----------------------------
# --- LED patterns, measured on the pin -------------------------------------------------------
# --- PATTERNS: documented, distinct, and what the LED really does ---------------------------
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
    daemon.wait_for("start_session")   # once the gesture's window closed
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
