"""The push button: presses, releases and long presses, and what they mean in each mode.

Two parts that meet through three methods (:class:`ButtonHandler`):

- :class:`ButtonInput` wraps a gpiozero ``Button`` and calls its controller's
  ``pressed``, ``released`` and ``long_pressed`` (held for ``long_press_s``). They run on
  gpiozero's threads, so they must return quickly.
- :class:`ModeController` is pure logic: it turns those events into commands on the
  daemon (:class:`DaemonControl`; the daemon queues each for its session thread)
  according to ``[agent] mode``.

::

    controller = ModeController("push-to-talk", daemon, long_press_s=3.0)
    button = ButtonInput(17, long_press_s=3.0, controller=controller)

What each mode does:

============== ======================================= ==========================================
mode           short press                             held
============== ======================================= ==========================================
always-on      mute / unmute the mic (on release)      (session runs all the time)
push-to-talk   mic open while the button is down;      mic closes on release
               pressing while the agent speaks
               interrupts it at once
toggle         start a session / end it (on release)   (an idle timeout ends it too)
every mode     long press (``long_press_s``, default 3 s): end the session, start a fresh one;
               the release that ends a long press does nothing else
============== ======================================= ==========================================
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from edgevoice.device.gpio import open_gpio_device, pin_name, pin_or_none

log = logging.getLogger(__name__)

MODES = ("always-on", "push-to-talk", "toggle", "wake-word")
DEFAULT_LONG_PRESS_S = 3.0
DEFAULT_BOUNCE_S = 0.03


@runtime_checkable
class DaemonControl(Protocol):
    """What the button may ask of the daemon. Every method is called from gpiozero's
    threads and must return at once (set a flag, put a command on a queue)."""

    def set_muted(self, muted: bool) -> None:
        """always-on: muted means silent frames go out; the session stays alive."""

    def set_mic_open(self, open: bool) -> None:
        """push-to-talk: mic audio flows only while open (silent frames otherwise)."""

    def interrupt(self) -> None:
        """Stop the agent's voice now: pause and flush playback, as barge-in does."""

    def user_activity(self) -> None:
        """Send the dialect's user-activity signal, where it has one."""

    def start_session(self) -> None: ...

    def end_session(self) -> None: ...

    def restart_session(self) -> None:
        """End the current session (if any) and start a fresh one."""

    def agent_speaking(self) -> bool: ...

    def session_active(self) -> bool: ...


@dataclass(frozen=True)
class InitialState:
    """What the daemon does at start in a mode."""

    start_session: bool   #: open a session right away (False: wait for a press)
    mic_open: bool        #: mic audio flows (push-to-talk starts closed)
    muted: bool           #: always-on starts unmuted
    led: str              #: the LED state to show first


def initial_state(mode: str) -> InitialState:
    """What the daemon should do at start in ``mode`` (the daemon is built with it)."""
    if mode == "toggle":
        return InitialState(start_session=False, mic_open=True, muted=False, led="idle")
    if mode == "wake-word":  # the wake word (or Daemon.wake) starts each session
        return InitialState(start_session=False, mic_open=True, muted=False, led="idle")
    if mode == "push-to-talk":
        return InitialState(start_session=True, mic_open=False, muted=False, led="connecting")
    return InitialState(start_session=True, mic_open=True, muted=False, led="connecting")


class ButtonHandler(Protocol):
    """What a :class:`ButtonInput` calls (on gpiozero's threads); a
    :class:`ModeController` is one."""

    def pressed(self) -> None: ...

    def released(self) -> None: ...

    def long_pressed(self) -> None: ...


class ModeController:
    """Button events → :class:`DaemonControl` calls, for one ``[agent] mode``.

    Call :meth:`pressed`, :meth:`released` and :meth:`long_pressed` from the button (they
    are what :class:`ButtonInput` calls when given ``controller=``). Short presses in
    ``always-on`` and ``toggle`` act on release, once it is known they were not long;
    ``push-to-talk`` acts on the press itself. The methods never raise.

    ``idle_timeout_s`` (toggle only): :meth:`check_idle` ends a session in which nothing
    happened (:meth:`note_activity`) for that long.
    """

    def __init__(self, mode: str, control: DaemonControl,
                 long_press_s: float = DEFAULT_LONG_PRESS_S, *,
                 idle_timeout_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.control = control
        self.long_press_s = float(long_press_s)
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._lock = threading.RLock()
        self._down = False
        self._long = False
        start = self.initial_state()
        self._muted = start.muted
        self._mic_open = start.mic_open
        self._last_activity = clock()

    # -- state ----------------------------------------------------------------------------
    def initial_state(self) -> InitialState:
        """What the daemon should do at start in this mode."""
        return initial_state(self.mode)

    @property
    def muted(self) -> bool:
        """always-on: whether the mic is muted (a long press keeps it so: a muted device
        never starts listening without an explicit unmute)."""
        return self._muted

    @property
    def mic_open(self) -> bool:
        """push-to-talk: whether the button is down and the mic flows."""
        return self._mic_open

    @property
    def is_pressed(self) -> bool:
        return self._down

    # -- button events --------------------------------------------------------------------
    def pressed(self) -> None:
        with self._lock:
            if self._down:  # a repeated edge (bounce) changes nothing
                return
            self._down = True
            self._long = False
            if self.mode == "push-to-talk":
                self._call("push-to-talk press", self._talk)

    def released(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
            if self._long:  # the release that ends a long press is not a short press
                self._long = False
                return
            if self.mode == "push-to-talk":
                self._mic_open = False
                self._call("push-to-talk release", self.control.set_mic_open, False)
            elif self.mode == "always-on":
                self._muted = not self._muted
                log.info("microphone %s (button)", "muted" if self._muted else "unmuted")
                self._call("mute", self.control.set_muted, self._muted)
            else:
                self._call("toggle", self._toggle)

    def long_pressed(self) -> None:
        with self._lock:
            if not self._down or self._long:  # arrived after the release: too late
                return
            self._long = True
            log.info("long press: starting a fresh session")
            if self.mode == "push-to-talk" and self._mic_open:
                self._mic_open = False
                self._call("push-to-talk long press", self.control.set_mic_open, False)
            self._last_activity = self._clock()
            self._call("restart", self.control.restart_session)

    # -- toggle mode's idle timeout -------------------------------------------------------
    def note_activity(self) -> None:
        """Something happened in the conversation (speech either way): the idle timer
        starts again."""
        self._last_activity = self._clock()

    def check_idle(self) -> bool:
        """toggle: end the session if it was idle for ``idle_timeout_s``. Returns whether
        it did. Call it now and then (e.g. once a second) from the daemon."""
        if self.mode != "toggle" or not self.idle_timeout_s:
            return False
        with self._lock:
            idle = self._clock() - self._last_activity
            if idle < self.idle_timeout_s:
                return False
            try:
                active = self.control.session_active()
            except Exception:
                log.exception("session_active() failed")
                return False
            if not active:
                return False
            log.info("no activity for %.0f s: ending the session", idle)
            self._last_activity = self._clock()
            self._call("idle timeout", self.control.end_session)
            return True

    # -- internals ------------------------------------------------------------------------
    def _talk(self) -> None:
        if self.control.agent_speaking():
            self.control.interrupt()
            self.control.user_activity()
        self._mic_open = True
        self.control.set_mic_open(True)

    def _toggle(self) -> None:
        self._last_activity = self._clock()
        if self.control.session_active():
            log.info("button: ending the session")
            self.control.end_session()
        else:
            log.info("button: starting a session")
            self.control.start_session()

    @staticmethod
    def _call(what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # runs on gpiozero's thread: a bug must not kill it
            log.exception("button %s failed", what)


class ButtonInput:
    """A push button on a GPIO pin (BCM numbering) with press / release / long-press
    callbacks, run on gpiozero's threads.

    :param active_high: False (default) for a button between the pin and ground (the
        pin's internal pull-up is used); True for a button between the pin and 3.3 V
        (internal pull-down).
    :param long_press_s: how long a press lasts before it counts as a long press.
    :param bounce_s: contact bounce to ignore, seconds (None: no debouncing).
    :param controller: what the presses go to (a :class:`ModeController`, or any
        :class:`ButtonHandler`); None: the button is read (:attr:`is_pressed`) only.

    When the pin cannot be used the log says why (once) and the object does nothing.
    """

    def __init__(self, pin: int | str | None, *, active_high: bool = False,
                 long_press_s: float = DEFAULT_LONG_PRESS_S,
                 bounce_s: float | None = DEFAULT_BOUNCE_S,
                 controller: ButtonHandler | None = None,
                 pin_factory: Any = None) -> None:
        self.controller = controller
        self.long_press_s = float(long_press_s)
        self.pin = pin
        self._button = None
        if pin is None:
            log.warning("button disabled: no pin set; set [gpio] button_pin")
            return

        def make():
            from gpiozero import Button

            return Button(pin, pull_up=not active_high, bounce_time=bounce_s,
                          hold_time=self.long_press_s, hold_repeat=False,
                          pin_factory=pin_factory)

        button = open_gpio_device(make, pin_name(pin), "button")
        if button is not None:
            button.when_pressed = self._fire("press", "pressed")
            button.when_released = self._fire("release", "released")
            button.when_held = self._fire("long press", "long_pressed")
        self._button = button

    @classmethod
    def from_settings(cls, gpio: Any, *, controller: ModeController | None = None,
                      pin_factory: Any = None) -> "ButtonInput | None":
        """Build from the ``[gpio]`` section (``enabled``, ``button_pin``,
        ``button_active_high``), held for ``controller.long_press_s`` (its mode's long
        press; ``gpio.long_press_s`` without a controller). None when GPIO is disabled."""
        if not gpio.enabled:
            return None
        long_press = controller.long_press_s if controller else gpio.long_press_s
        return cls(pin_or_none(gpio.button_pin), active_high=bool(gpio.button_active_high),
                   long_press_s=long_press, controller=controller, pin_factory=pin_factory)

    @property
    def available(self) -> bool:
        return self._button is not None

    @property
    def is_pressed(self) -> bool:
        button = self._button
        try:
            return bool(button is not None and button.is_pressed)
        except Exception:
            return False

    def close(self) -> None:
        """Release the pin (safe to call twice)."""
        button, self._button = self._button, None
        if button is not None:
            try:
                button.close()
            except Exception as exc:
                log.debug("closing the button: %s", exc)

    def __enter__(self) -> "ButtonInput":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fire(self, what: str, method: str) -> Callable[[], None]:
        def handler() -> None:
            controller = self.controller
            if controller is None:
                return
            try:
                getattr(controller, method)()
            except Exception:  # on gpiozero's thread: log, never let it die
                log.exception("button %s handler failed", what)

        return handler
