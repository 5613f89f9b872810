"""Opening gpiozero devices so that a board without GPIO costs one log line, not a crash.

:func:`open_gpio_device` builds a device and, when that fails for any reason (no pin
driver, no ``/dev/gpiochip*``, no permission, a busy pin, a pin that does not exist),
logs one warning that names the pins and the fix, and returns None. gpiozero is imported
only here and in the device constructors, so a daemon with ``[gpio] enabled = no`` never
loads it (it costs about 9 MB).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable

log = logging.getLogger(__name__)


def pin_name(pin: Any) -> str:
    return f"GPIO{pin}" if isinstance(pin, int) else str(pin)


def gpio_problem(exc: BaseException, pins: str, what: str, fallback_warnings=()) -> str:
    """One log line that says why GPIO ``pins`` cannot be used for ``what``, and the fix."""
    tail = "; edgevoice runs on without it"
    try:
        from gpiozero.exc import (BadPinFactory, GPIOPinInUse, PinInvalidPin,
                                  PinPWMUnsupported, PinUnsupported)
    except ImportError:
        return (f"{what} on {pins} disabled: the gpiozero package is missing ({exc}); "
                f"reinstall edgevoice or set [gpio] enabled = no" + tail)
    if isinstance(exc, BadPinFactory):
        tried = "; ".join(str(w.message) for w in fallback_warnings)
        return (f"{what} on {pins} disabled: no GPIO driver could be loaded"
                f"{f' ({tried})' if tried else ''}. On a Raspberry Pi install python3-lgpio "
                f"(scripts/install does); on a board without GPIO set [gpio] enabled = no"
                + tail)
    if isinstance(exc, GPIOPinInUse):
        return (f"{what} on {pins} disabled: the pin is already in use ({exc}); pick another "
                f"pin in [gpio] or stop whatever else holds it" + tail)
    if isinstance(exc, PinPWMUnsupported):
        return (f"{what} on {pins} disabled: the pin cannot dim an LED (no PWM); use "
                f"[gpio] led = onoff or a PWM-capable pin" + tail)
    if isinstance(exc, (PinInvalidPin, ValueError)):
        return (f"{what} on {pins} disabled: {exc}; check the BCM pin numbers in [gpio]"
                + tail)
    if isinstance(exc, PermissionError) or "ermission" in str(exc):
        return (f"{what} on {pins} disabled: permission denied ({exc}); add the service "
                f"user to the gpio group (sudo usermod -aG gpio edgevoice) or set "
                f"[gpio] enabled = no" + tail)
    if isinstance(exc, OSError) or "gpiochip" in str(exc):
        return (f"{what} on {pins} disabled: cannot open the GPIO chip ({exc}); check that "
                f"/dev/gpiochip0 exists and the service user is in the gpio group, or on a "
                f"board without GPIO set [gpio] enabled = no" + tail)
    if isinstance(exc, PinUnsupported):
        return (f"{what} on {pins} disabled: this board's GPIO driver cannot do it ({exc}); "
                f"set [gpio] enabled = no" + tail)
    return f"{what} on {pins} disabled: {type(exc).__name__}: {exc}" + tail


def open_gpio_device(make: Callable[[], Any], pins: str, what: str) -> Any:
    """Call ``make()`` (which builds a gpiozero device); on any failure log one warning that
    names the pins and the fix, and return None. gpiozero's fallback warnings (one per pin
    driver it tried) are folded into that line instead of reaching stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            device = make()
        except Exception as exc:  # every failure here means "no LED/button", never a crash
            fallbacks = [w for w in caught if w.category.__name__ == "PinFactoryFallback"]
            log.warning("%s", gpio_problem(exc, pins, what, fallbacks))
            return None
    for w in caught:
        log.debug("gpiozero: %s", w.message)
    return device


def pin_or_none(value: Any) -> int | str | None:
    """Config values to gpiozero pins: ``17`` and ``"17"`` → 17; ``""``, ``None`` and
    negative numbers → None (no pin); other strings (``"GPIO17"``, ``"BOARD11"``) pass."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = int(text)
        except ValueError:
            return text
    if isinstance(value, int) and value < 0:
        return None
    return value
