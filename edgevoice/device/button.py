"""The push button: presses, releases, long presses and multi-press gestures, and what they
mean in each mode.

Two parts that meet through three methods (:class:`ButtonHandler`):

- :class:`ButtonInput` wraps a gpiozero ``Button`` and calls its controller's
  ``pressed``, ``released`` and ``long_pressed`` (held for ``long_press_s``). They run on
  gpiozero's threads, so they must return quickly.
- :class:`ModeController` turns those events into commands on the daemon
  (:class:`DaemonControl`; the daemon queues each for its session thread) according to
  ``[agent] mode``, counting presses that follow each other within ``multi_press_s``
  (0.4 s) into one gesture.

::

    controller = ModeController("push-to-talk", daemon, long_press_s=3.0)
    button = ButtonInput(17, long_press_s=3.0, controller=controller)

What each mode does:

============== ======================================= ==========================================
mode           one short press                         held
============== ======================================= ==========================================
always-on      privacy mute on / off                   (session runs all the time)
push-to-talk   mic open while the button is down (at   mic closes on release
               once, no wait); pressing while the
               agent speaks interrupts it at once
toggle         start a session / end it                (an idle timeout ends it too)
wake-word      waiting: wake up as the wake word does;
               agent speaking: interrupt it;
               otherwise: end the session
every mode     two presses: volume up (``volume_step``, 10); three presses: volume down;
               four presses: privacy mute on / off;
               long press (``long_press_s``, default 3 s): end the session, start a fresh one;
               the release that ends a long press does nothing else
============== ======================================= ==========================================

A gesture is over when ``multi_press_s`` passes after a release without a new press: the
one-press actions of always-on, toggle and wake-word wait that long after the release
(the price of telling one press from two). A press held longer than
:data:`GESTURE_PRESS_MAX_S` is no click of a gesture. Push-to-talk's press opens the
microphone at once and its release closes it at once, so the presses of a volume gesture
open it for a moment each (and interrupt the agent if it speaks: turn it up between
answers); a push-to-talk question (held over 1 s) never counts as a press of a gesture.
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
DEFAULT_MULTI_PRESS_S = 0.4
DEFAULT_VOLUME_STEP = 10
MUTE_PRESSES = 4  #: presses that toggle the privacy mute in every mode
GESTURE_PRESS_MAX_S = 1.0  #: a press held longer is no click of a gesture (push-to-talk: speech)


@runtime_checkable
class DaemonControl(Protocol):
    """What the button may ask of the daemon. Every method is called from gpiozero's
    threads and must return at once (set a flag, put a command on a queue)."""

    def toggle_mute(self, source: str = "button") -> None:
        """Privacy mute on / off: the capture stream closes, the session ends."""

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

    def wake(self, model: str = "button") -> None:
        """wake-word mode: what the wake word does (open a session)."""

    def change_volume(self, level: int | None = None, step: int = 0) -> None:
        """Set the volume to ``level`` (0-100) or move it by ``step``."""

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
    if mode == "wake-word":
        return InitialState(start_session=False, mic_open=True, muted=False,
                            led="waiting for wake word")
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
    are what :class:`ButtonInput` calls when given ``controller=``). Presses within
    ``multi_press_s`` of the previous release make one gesture, acted on when the window
    closes (on a timer thread; :meth:`settle` ends it at once); ``push-to-talk`` also acts
    on each press and release themselves. The methods never raise.

    ``idle_timeout_s`` (toggle only): :meth:`check_idle` ends a session in which nothing
    happened (:meth:`note_activity`) for that long.
    """

    def __init__(self, mode: str, control: DaemonControl,
                 long_press_s: float = DEFAULT_LONG_PRESS_S, *,
                 idle_timeout_s: float | None = None,
                 multi_press_s: float = DEFAULT_MULTI_PRESS_S,
                 volume_step: int = DEFAULT_VOLUME_STEP,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.control = control
        self.long_press_s = float(long_press_s)
        self.idle_timeout_s = idle_timeout_s
        self.multi_press_s = float(multi_press_s)
        self.volume_step = int(volume_step)
        self._clock = clock
        self._lock = threading.RLock()
        self._down = False
        self._long = False
        self._presses = 0          # short presses in the gesture going on
        self._pressed_at = 0.0
        self._gesture = 0          # numbers the gestures: a late timer finds it moved on
        self._timer: threading.Timer | None = None
        self._mic_open = self.initial_state().mic_open
        self._last_activity = clock()

    # -- state ----------------------------------------------------------------------------
    def initial_state(self) -> InitialState:
        """What the daemon should do at start in this mode."""
        return initial_state(self.mode)

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
            self._cancel_timer()  # within the window: the gesture goes on
            self._presses += 1
            self._pressed_at = self._clock()
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
            if self._clock() - self._pressed_at > GESTURE_PRESS_MAX_S:
                # held a while: push-to-talk heard a question; elsewhere one slow press
                self._presses = 0 if self.mode == "push-to-talk" else 1
                if not self._presses:
                    return
            self._gesture += 1
            timer = threading.Timer(self.multi_press_s, self._window_closed,
                                    args=(self._gesture,))
            timer.name, timer.daemon = "edgevoice-gesture", True
            self._timer = timer
            timer.start()

    def long_pressed(self) -> None:
        with self._lock:
            if not self._down or self._long:  # arrived after the release: too late
                return
            self._long = True
            self._presses = 0  # a long press ends whatever gesture it was part of
            log.info("long press: starting a fresh session")
            if self.mode == "push-to-talk" and self._mic_open:
                self._mic_open = False
                self._call("push-to-talk long press", self.control.set_mic_open, False)
            self._last_activity = self._clock()
            self._call("restart", self.control.restart_session)

    def settle(self) -> None:
        """End the gesture going on now, as if its window had closed (tests; shutdown
        cancels it instead: :meth:`close`)."""
        with self._lock:
            self._cancel_timer()
            if not self._down:
                self._act(self._take_presses())

    def close(self) -> None:
        """Forget a gesture still waiting for its window (safe to call twice)."""
        with self._lock:
            self._cancel_timer()
            self._presses = 0

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
    def _window_closed(self, gesture: int) -> None:
        with self._lock:
            if gesture != self._gesture or self._down:  # a press came in the meantime
                return
            self._timer = None
            self._act(self._take_presses())

    def _take_presses(self) -> int:
        presses, self._presses = self._presses, 0
        return presses

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _act(self, presses: int) -> None:
        """What a finished gesture of ``presses`` short presses asks for."""
        if presses <= 0:
            return
        if presses >= MUTE_PRESSES or (presses == 1 and self.mode == "always-on"):
            log.info("button: privacy mute on/off (%d press%s)", presses,
                     "es" if presses > 1 else "")
            self._call("mute", self.control.toggle_mute, "button")
        elif presses in (2, 3):
            step = self.volume_step if presses == 2 else -self.volume_step
            log.info("button: volume %+d", step)
            self._call("volume", self.control.change_volume, None, step)
        elif self.mode == "toggle":
            self._call("toggle", self._toggle)
        elif self.mode == "wake-word":
            self._call("wake-word press", self._wake_word_press)
        # push-to-talk: the press and the release did it all

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

    def _wake_word_press(self) -> None:
        if self.control.agent_speaking():
            log.info("button: interrupting the agent")
            self.control.interrupt()
            self.control.user_activity()
        elif self.control.session_active():
            log.info("button: ending the session")
            self.control.end_session()
        else:
            log.info("button: waking up, as the wake word does")
            self.control.wake("button")

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
        """Release the pin and drop a gesture still waiting (safe to call twice)."""
        close = getattr(self.controller, "close", None)
        if close is not None:
            close()
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
