"""GPIO test doubles: a daemon that records what the button asked of it, and gpiozero mock
pins whose state changes a test can wait for."""

from __future__ import annotations

import threading

from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from edgevoice.device import (ButtonInput, ModeController)


WAIT = 5.0  # seconds any single wait may take before the test fails


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

    def toggle_mute(self, source: str = "button") -> None:
        self._record("toggle_mute", source)

    def wake(self, model: str = "button") -> None:
        self.active = True
        self._record("wake", model)

    def change_volume(self, level: int | None = None, step: int = 0) -> None:
        self._record("change_volume", level, step)

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


class SwitchPin(WatchedPWMPin):
    """A pin with a latching switch to ground: while it is closed (:meth:`close_switch`)
    the internal pull-up cannot raise the pin, before the switch's device is built or
    after."""

    closed = False

    def drive_high(self):
        if not self.closed:
            super().drive_high()

    def close_switch(self) -> None:
        self.closed = True
        self.drive_low()

    def open_switch(self) -> None:
        self.closed = False
        self.drive_high()


def wait_for_pin(predicate, timeout: float = WAIT) -> None:
    with _pin_changed:
        assert _pin_changed.wait_for(predicate, timeout), "the pin never got there"


def make_button(mode: str, daemon: FakeDaemon, long_press_s: float = 0.25,
                active_high: bool = False, multi_press_s: float = 0.4):
    factory = MockFactory(pin_class=WatchedPin)
    controller = ModeController(mode, daemon, long_press_s=long_press_s,
                                multi_press_s=multi_press_s)
    button = ButtonInput(17, active_high=active_high, long_press_s=long_press_s, bounce_s=None,
                         controller=controller, pin_factory=factory)
    assert button.available
    pin = factory.pin(17)
    press = pin.drive_high if active_high else pin.drive_low
    release = pin.drive_low if active_high else pin.drive_high
    return controller, button, press, release
