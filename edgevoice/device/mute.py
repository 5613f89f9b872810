"""The privacy mute from outside the daemon: a latching switch on a GPIO pin, and the
``edgevoice mute on|off|toggle|status`` command (the mute itself: :mod:`edgevoice.mute`).

- :class:`MuteSwitch`: a latching switch between ``[gpio] mute_pin`` and ground, like the
  hardware mute of the Home Assistant Voice PE. Closed: muted; opened: unmuted. While it
  is closed nothing else can unmute. At start its position is read once: a closed switch
  mutes, an open one leaves the kept state alone (a device muted by the button before a
  power cut stays muted).
- The command and the daemon meet as ``edgevoice reload`` does
  (:func:`edgevoice.device.reload.signal_and_wait`): SIGUSR1 mutes, SIGUSR2 unmutes (so
  ``systemctl kill --kill-whom=main -s SIGUSR1 edgevoice`` works too), and the daemon
  answers in ``$RUNTIME_DIRECTORY/mute-status.json`` (:class:`MuteAnswers`) with its pid,
  the state and the time of the signal it served. ``toggle`` reads the state there first.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from edgevoice.device.gpio import open_gpio_device, pin_name, pin_or_none
from edgevoice.device.reload import (EX_FAILED, EX_OK, EX_USAGE, process_alive, read_answer,
                                    signal_and_wait)
from edgevoice.statefile import write_json

log = logging.getLogger(__name__)

STATUS_FILE = "mute-status.json"
MUTE_SIGNAL, UNMUTE_SIGNAL = signal.SIGUSR1, signal.SIGUSR2
DEFAULT_RUNTIME_DIR = Path("/run/edgevoice")  # the unit's RuntimeDirectory=edgevoice
SWITCH_BOUNCE_S = 0.05


class MuteSwitch:
    """A latching privacy-mute switch on ``pin`` (BCM), to ground (internal pull-up).

    ``set_muted(muted, source)`` is called on gpiozero's thread when it moves (the
    daemon's :meth:`~edgevoice.daemon.Daemon.set_muted`). :attr:`is_on` reads it.
    """

    def __init__(self, pin: int | str | None, set_muted: Callable[[bool, str], None], *,
                 bounce_s: float | None = SWITCH_BOUNCE_S, pin_factory: Any = None) -> None:
        self.pin = pin
        self._set_muted = set_muted
        self._switch = None
        if pin is None:
            return

        def make():
            from gpiozero import Button

            return Button(pin, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory)

        switch = open_gpio_device(make, pin_name(pin), "privacy mute switch")
        if switch is not None:
            switch.when_pressed = lambda: self._moved(True)
            switch.when_released = lambda: self._moved(False)
        self._switch = switch

    @classmethod
    def from_settings(cls, gpio: Any, set_muted: Callable[[bool, str], None],
                      pin_factory: Any = None) -> "MuteSwitch | None":
        """From ``[gpio] mute_pin``; None when GPIO is off or no pin is set."""
        pin = pin_or_none(getattr(gpio, "mute_pin", None))
        if not gpio.enabled or pin is None:
            return None
        return cls(pin, set_muted, pin_factory=pin_factory)

    @property
    def available(self) -> bool:
        return self._switch is not None

    @property
    def is_on(self) -> bool:
        """The switch is closed: muted."""
        try:
            return bool(self._switch is not None and self._switch.is_pressed)
        except Exception:
            return False

    def _moved(self, on: bool) -> None:
        log.info("privacy mute switch %s", "on" if on else "off")
        try:
            self._set_muted(on, "switch")
        except Exception:  # on gpiozero's thread: log, never let it die
            log.exception("privacy mute switch handler failed")

    def close(self) -> None:
        switch, self._switch = self._switch, None
        if switch is not None:
            try:
                switch.close()
            except Exception as exc:
                log.debug("closing the mute switch: %s", exc)


class MuteAnswers:
    """The daemon's side of ``edgevoice mute``: when the last mute signal came, and the
    state after each change, in ``directory/mute-status.json`` (nothing without one)."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / STATUS_FILE if directory else None
        self.latest_request = 0.0

    def requested(self) -> None:
        """Note a SIGUSR1/SIGUSR2 (on the signal handler: one float assignment)."""
        self.latest_request = time.monotonic()

    def write(self, muted: bool, refused: str = "", answers_request: bool = False,
              switch: bool = False) -> None:
        """Publish the state (``answers_request``: it serves the last signal). Never
        raises."""
        if self.path is None:
            return
        write_json(self.path, {"pid": os.getpid(), "muted": bool(muted), "refused": refused,
                               "switch": switch,
                               "request": self.latest_request if answers_request else 0.0})


def request_mute(action: str, pid: int | None, directory: Path, timeout: float,
                 out=None, err=None) -> int:
    """``edgevoice mute ACTION``: ``on``, ``off``, ``toggle`` or ``status``. Returns the
    exit status: 0 when the microphone is now as asked, 1 when it is not (refused: the
    switch holds the mute; no answer; no daemon), 2 for a usage problem."""
    out = out or sys.stdout
    err = err or sys.stderr
    path = directory / STATUS_FILE
    known = read_answer(path) or {}
    if pid is None:
        pid = known.get("pid") if isinstance(known.get("pid"), int) else None
        if pid is None or not process_alive(pid):
            print(f"edgevoice mute: no running edgevoice found through {path}; is it running? "
                  "(or give --pid and --runtime-dir)", file=err)
            return EX_USAGE
    if action in ("status", "toggle") and known.get("pid") != pid:
        print(f"edgevoice mute: process {pid} has not published its state in {path}",
              file=err)
        return EX_FAILED
    if action == "status":
        print(_describe(known), file=out)
        return EX_OK
    want = (not known.get("muted")) if action == "toggle" else action == "on"
    answer = signal_and_wait(pid, MUTE_SIGNAL if want else UNMUTE_SIGNAL, path, timeout,
                             "mute", err)
    if isinstance(answer, int):
        return answer
    if answer.get("refused"):
        print(f"edgevoice: not unmuted: {answer['refused']}", file=err)
        return EX_FAILED
    print(_describe(answer), file=out)
    return EX_OK


def _describe(state: dict) -> str:
    if state.get("muted"):
        held = " (the mute switch is on)" if state.get("switch") else ""
        return f"edgevoice: privacy mute on: the microphone is closed{held}"
    return "edgevoice: privacy mute off: the microphone is open"
