"""The device layer: the push button, the status LED and systemd integration.

Each part is self-contained and degrades instead of failing: a board without GPIO, a busy
pin or a missing ``NOTIFY_SOCKET`` costs one log line, never the daemon.

- :mod:`edgevoice.device.led`: :class:`StatusLed` shows the daemon's state at a glance
  (:data:`~edgevoice.device.led.PATTERNS`).
- :mod:`edgevoice.device.button`: :class:`ButtonInput` turns a gpiozero ``Button`` into
  press / release / long-press calls on a :class:`ButtonHandler`; :class:`ModeController`
  (one) turns those, and gestures of several presses (volume, privacy mute), into
  commands on the daemon (:class:`DaemonControl`) for the ``always-on``, ``push-to-talk``,
  ``toggle`` and ``wake-word`` modes.
- :mod:`edgevoice.device.mute`: the privacy mute's latching switch (:class:`MuteSwitch`)
  and the ``edgevoice mute`` command's side of it.
- :mod:`edgevoice.device.notify`: :class:`SystemdNotifier` (``READY=1``, ``STATUS=``,
  ``RELOADING=1``, ``STOPPING=1``, ``WATCHDOG=1``), :class:`WatchdogPinger` and
  :class:`ThreadHealth`.

Nothing here runs in the 20 ms audio path: the LED and the button run on gpiozero's own
background threads, the watchdog on its own.
"""

from edgevoice.device.button import (MODES, ButtonHandler, ButtonInput, DaemonControl,
                                     InitialState, ModeController, initial_state)
from edgevoice.device.led import LED_KINDS, LED_STATES, PATTERNS, StatusLed, led_state_for
from edgevoice.device.notify import (StatusReporter, SystemdNotifier, ThreadHealth,
                                     WatchdogPinger)

__all__ = [
    "MODES", "ButtonHandler", "ButtonInput", "DaemonControl", "InitialState",
    "ModeController", "initial_state",
    "LED_KINDS", "LED_STATES", "PATTERNS", "StatusLed", "led_state_for",
    "StatusReporter", "SystemdNotifier", "ThreadHealth", "WatchdogPinger",
]
