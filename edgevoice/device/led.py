"""The status LED: the daemon's state at a glance.

Three kinds of LED are supported (``[gpio] led``): ``pwm`` (one LED on a pin that can
dim it), ``onoff`` (one LED, on or off only) and ``rgb`` (a common RGB LED on three pins).
Each state has its own pattern, listed in :data:`PATTERNS` (the README quotes it)::

    led = StatusLed("pwm", 18)        # BCM pin numbers
    led.show("connecting")            # returns at once; gpiozero's thread does the blinking
    led.show("listening")
    led.close()

Blinking and pulsing run on gpiozero's own background threads, so :meth:`StatusLed.show`
never waits on the LED. When the LED cannot be used (no GPIO chip, pin busy, no
permission) there is one warning in the log that says why and what to do, and the object
quietly does nothing from then on: it never raises.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from edgevoice.device.gpio import open_gpio_device, pin_name, pin_or_none

log = logging.getLogger(__name__)

LED_KINDS = ("pwm", "onoff", "rgb", "none")
LED_STATES = ("idle", "connecting", "waiting for wake word", "listening", "speaking",
              "follow-up", "muted", "offline")

#: Each state's pattern in words, per kind of LED (``meaning`` says when it shows).
#: :data:`_PROGRAMS` below holds the same patterns as numbers; the tests check they agree.
PATTERNS: dict[str, dict[str, str]] = {
    "idle": {
        "meaning": "no conversation: press the button to start one (toggle), or hold it to "
                   "talk (push-to-talk)",
        "pwm": "dim steady glow (8 %)",
        "onoff": "off, with a 0.1 s blip every 3 s",
        "rgb": "dim white, steady",
    },
    "connecting": {
        "meaning": "starting up or opening a session with the agent",
        "pwm": "slow breathing: fades up over 1 s, down over 1 s",
        "onoff": "slow blink: 0.5 s on, 0.5 s off",
        "rgb": "blue, slow breathing (1 s up, 1 s down)",
    },
    "waiting for wake word": {
        "meaning": "wake-word mode: only the on-device detector hears the microphone; "
                   "nothing leaves the device until the wake word",
        "pwm": "very slow breathing: up over 2 s, down over 2 s",
        "onoff": "a 0.1 s blip every 1 s",
        "rgb": "white, very slow breathing (2 s up, 2 s down)",
    },
    "listening": {
        "meaning": "connected; the microphone goes to the agent",
        "pwm": "steady on, full brightness",
        "onoff": "steady on",
        "rgb": "green, steady",
    },
    "speaking": {
        "meaning": "the agent is talking (talk over it to interrupt)",
        "pwm": "fast pulse: up over 0.25 s, down over 0.25 s",
        "onoff": "flickering on: 0.45 s on, 0.15 s off",
        "rgb": "cyan, fast pulse (0.25 s up, 0.25 s down)",
    },
    "follow-up": {
        "meaning": "wake-word mode: the answer ended; the session stays open a few seconds "
                   "for a question more (no wake word needed)",
        "pwm": "on, with a short dip: 0.9 s on, 0.1 s off",
        "onoff": "on, with a short dip: 0.9 s on, 0.1 s off",
        "rgb": "green, with a short dip (0.9 s on, 0.1 s off)",
    },
    "muted": {
        "meaning": "privacy mute: the microphone is closed, no session, nothing is sent or "
                   "listened for (shown whatever else is going on; no other state looks "
                   "like it)",
        "pwm": "off, with a 0.15 s flash every 2 s",
        "onoff": "mostly off: 0.5 s on, 1.5 s off",
        "rgb": "red, steady",
    },
    "offline": {
        "meaning": "error or offline (no network, agent unreachable, key rejected, sound "
                   "device missing); edgevoice keeps retrying, the log says why",
        "pwm": "fast blink: 0.1 s on, 0.1 s off",
        "onoff": "fast blink: 0.1 s on, 0.1 s off",
        "rgb": "red, fast blink (0.1 s on, 0.1 s off)",
    },
}

# Daemon states that are not LED states of their own.
_ALIASES = {"starting": "connecting", "error": "offline", "stopped": "off",
            "waiting for device": "offline", "stopping": "off"}


@dataclass(frozen=True)
class _Program:
    """What the LED does: a steady ``level``, or ``blink`` (on s, off s), or ``pulse``
    (fade-in s, fade-out s); ``color`` for RGB (scaled by ``level`` when steady)."""

    level: float = 1.0
    blink: tuple[float, float] | None = None
    pulse: tuple[float, float] | None = None
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


_WHITE, _BLUE, _GREEN = (1.0, 1.0, 1.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
_CYAN, _RED = (0.0, 1.0, 1.0), (1.0, 0.0, 0.0)

_PROGRAMS: dict[str, dict[str, _Program]] = {
    "pwm": {
        "idle": _Program(level=0.08),
        "connecting": _Program(pulse=(1.0, 1.0)),
        "waiting for wake word": _Program(pulse=(2.0, 2.0)),
        "listening": _Program(level=1.0),
        "speaking": _Program(pulse=(0.25, 0.25)),
        "follow-up": _Program(blink=(0.9, 0.1)),
        "muted": _Program(blink=(0.15, 1.85)),
        "offline": _Program(blink=(0.1, 0.1)),
        "off": _Program(level=0.0),
    },
    "onoff": {
        "idle": _Program(blink=(0.1, 2.9)),
        "connecting": _Program(blink=(0.5, 0.5)),
        "waiting for wake word": _Program(blink=(0.1, 0.9)),
        "listening": _Program(level=1.0),
        "speaking": _Program(blink=(0.45, 0.15)),
        "follow-up": _Program(blink=(0.9, 0.1)),
        "muted": _Program(blink=(0.5, 1.5)),
        "offline": _Program(blink=(0.1, 0.1)),
        "off": _Program(level=0.0),
    },
    "rgb": {
        "idle": _Program(level=0.08, color=_WHITE),
        "connecting": _Program(pulse=(1.0, 1.0), color=_BLUE),
        "waiting for wake word": _Program(pulse=(2.0, 2.0), color=_WHITE),
        "listening": _Program(color=_GREEN),
        "speaking": _Program(pulse=(0.25, 0.25), color=_CYAN),
        "follow-up": _Program(blink=(0.9, 0.1), color=_GREEN),
        "muted": _Program(color=_RED),
        "offline": _Program(blink=(0.1, 0.1), color=_RED),
        "off": _Program(level=0.0, color=(0.0, 0.0, 0.0)),
    },
}


def led_state_for(daemon_state: str, *, muted: bool = False, mic_open: bool = True,
                  session_active: bool = True) -> str:
    """The LED state for a daemon state (an :class:`edgevoice.lifecycle.DaemonState`, or
    its string) and the button's doing.

    The privacy mute shows first, whatever else goes on (an LED that says "listening"
    while the microphone is closed, or the reverse, would lie); then trouble and
    connecting; then waiting for the wake word; then no session (``idle``); then speaking
    and the follow-up window; a push-to-talk mic that is closed shows ``idle`` and turns to
    ``listening`` while the button is held.

    >>> led_state_for("offline", muted=True)
    'muted'
    >>> led_state_for("listening", mic_open=False)
    'idle'
    """
    state = _ALIASES.get(daemon_state, daemon_state)
    if state == "off":
        return state
    if muted or state == "muted":
        return "muted"
    if state in ("offline", "connecting", "waiting for wake word"):
        return state
    if not session_active or state == "idle":
        return "idle"
    if state in ("speaking", "follow-up"):
        return state
    return "listening" if mic_open else "idle"


def patterns_markdown() -> str:
    """:data:`PATTERNS` as a Markdown table, for the README."""
    rows = ["| state | when | pwm LED | on/off LED | RGB LED |",
            "| --- | --- | --- | --- | --- |"]
    for state, p in PATTERNS.items():
        rows.append(f"| {state} | {p['meaning']} | {p['pwm']} | {p['onoff']} | {p['rgb']} |")
    return "\n".join(rows)


class StatusLed:
    """One status LED (``pwm``, ``onoff``) or RGB LED (``rgb``) showing :data:`PATTERNS`.

    :param kind: ``pwm``, ``onoff``, ``rgb`` or ``none``.
    :param pin: BCM pin of a single LED (``pwm``/``onoff``).
    :param red_pin, green_pin, blue_pin: BCM pins of an RGB LED.
    :param active_high: True when the pin drives the LED's anode (pin high = lit); False for
        an LED wired from 3.3 V to the pin (or a common-anode RGB LED).
    :param pin_factory: a gpiozero pin factory (tests pass ``MockFactory``); None picks the
        board's own.
    """

    def __init__(self, kind: str = "pwm", pin: int | str | None = None, *,
                 red_pin: int | str | None = None, green_pin: int | str | None = None,
                 blue_pin: int | str | None = None, active_high: bool = True,
                 pin_factory: Any = None) -> None:
        if kind not in LED_KINDS:
            raise ValueError(f"LED kind must be one of {', '.join(LED_KINDS)}, not {kind!r}")
        self.kind = kind
        self.state: str | None = None
        self._lock = threading.Lock()
        self._broken = False
        self._device = None
        self.pins = "-"
        if kind == "none":
            return
        if kind == "rgb":
            pins = (red_pin, green_pin, blue_pin)
            where = "RGB LED"
            names = "/".join(pin_name(p) for p in pins)
        else:
            pins = (pin,)
            where = "status LED"
            names = pin_name(pin)
        if any(p is None for p in pins):
            log.warning("%s disabled: no pin set; set [gpio] %s (or led = none)", where,
                        "red_pin, green_pin, blue_pin" if kind == "rgb" else "led_pin")
            return
        self.pins = names

        def make():
            from gpiozero import LED, PWMLED, RGBLED

            if kind == "rgb":
                return RGBLED(*pins, active_high=active_high, pwm=True,
                              pin_factory=pin_factory)
            cls = PWMLED if kind == "pwm" else LED
            return cls(pin, active_high=active_high, initial_value=False,
                       pin_factory=pin_factory)

        self._device = open_gpio_device(make, names, where)

    @classmethod
    def from_settings(cls, gpio: Any, pin_factory: Any = None) -> "StatusLed":
        """Build from the ``[gpio]`` settings: ``enabled``, ``led``, ``led_pin``,
        ``red_pin``, ``green_pin``, ``blue_pin``, ``led_active_high`` (or ``active_high``);
        missing ones take the defaults."""
        kind = getattr(gpio, "led", "pwm") or "none"
        if not getattr(gpio, "enabled", True):
            kind = "none"
        return cls(kind, pin_or_none(getattr(gpio, "led_pin", None)),
                   red_pin=pin_or_none(getattr(gpio, "red_pin", None)),
                   green_pin=pin_or_none(getattr(gpio, "green_pin", None)),
                   blue_pin=pin_or_none(getattr(gpio, "blue_pin", None)),
                   active_high=bool(_first(gpio, ("led_active_high", "active_high"), True)),
                   pin_factory=pin_factory)

    @property
    def available(self) -> bool:
        """True when a real (or mock) LED is being driven."""
        return self._device is not None and not self._broken

    def show(self, state: str) -> None:
        """Show ``state`` (one of :data:`LED_STATES`, or ``off``; ``starting``, ``error``
        and ``stopped`` are accepted too). Showing the current state again changes nothing;
        returns at once either way."""
        state = _ALIASES.get(state, state)
        if state not in PATTERNS and state != "off":
            raise ValueError(f"unknown LED state {state!r}; expected one of "
                             f"{', '.join(LED_STATES)} or off")
        with self._lock:
            if state == self.state:
                return
            self.state = state
            if not self.available:
                return
            try:
                self._apply(_PROGRAMS[self.kind][state])
            except Exception as exc:  # a GPIO failure at run time: log once, then go quiet
                self._broken = True
                log.warning("status LED on %s stopped working (%s: %s); edgevoice runs on "
                            "without it", self.pins, type(exc).__name__, exc)

    def _apply(self, p: _Program) -> None:
        led = self._device
        if self.kind == "rgb":
            if p.pulse:
                led.pulse(*p.pulse, on_color=p.color, off_color=(0, 0, 0))
            elif p.blink:
                led.blink(*p.blink, on_color=p.color, off_color=(0, 0, 0))
            else:
                led.color = tuple(c * p.level for c in p.color)
        elif p.pulse:
            led.pulse(*p.pulse)
        elif p.blink:
            led.blink(*p.blink)
        elif self.kind == "pwm":
            led.value = p.level
        elif p.level:
            led.on()
        else:
            led.off()

    def close(self) -> None:
        """Turn the LED off and release its pins (safe to call twice)."""
        with self._lock:
            device, self._device = self._device, None
            self.state = None
        if device is not None:
            try:
                device.close()
            except Exception as exc:
                log.debug("closing the status LED: %s", exc)

    def __enter__(self) -> "StatusLed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<StatusLed {self.kind} on {self.pins} "
                f"{'showing ' + str(self.state) if self.available else '(disabled)'}>")


def _first(obj: Any, names: tuple[str, ...], default: Any) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return default
