"""The privacy mute: whether the microphone may be open at all, who asked, and what is kept.

A muted daemon closes the capture stream (:meth:`edgevoice.audio.engine.AudioEngine.
set_listening`), sends nothing, hears no wake word and ends the session it had (a cloud
session that bills by the minute must not stay open to hear nothing). On unmute the mode
starts as it does at boot. What this module holds:

- :class:`MuteRequest`, the value of :attr:`~edgevoice.lifecycle.Command.MUTE` orders:
  mute, unmute or toggle, and where it came from (button, switch, cli, …);
- :class:`PrivacyMute`, owned by the daemon's session thread: the current state, kept in
  ``mute.json`` in the state directory (a device muted before a power cut comes back
  muted), and the rule of the hardware switch: while a latching mute switch is in the
  mute position nothing else can unmute (the LED and the switch never disagree).

Every change is one journal line with ``EVENT=privacy_mute`` and ``muted=true`` or
``muted=false`` in the message::

    mute = PrivacyMute(state_dir)
    mute.apply(MuteRequest(True, "button"))    # -> MuteResult(changed=True, ...)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgevoice.statefile import read_json, write_json

log = logging.getLogger(__name__)

MUTE_FILE = "mute.json"
SWITCH = "switch"
HOW_TO_UNMUTE = ("unmute with four presses of the button, the mute switch or "
                 "`edgevoice mute off`")


@dataclass(frozen=True, slots=True)
class MuteRequest:
    """``muted``: True to mute, False to unmute, None to toggle; ``source`` names who asked
    (``button``, ``switch``, ``cli``, ``api``); the switch's requests also set or release
    its hold."""

    muted: bool | None
    source: str = "api"


@dataclass(frozen=True, slots=True)
class MuteResult:
    muted: bool          #: the state after the request
    changed: bool        #: it differs from the state before
    refused: str = ""    #: why the request was not carried out (empty: it was)
    source: str = ""     #: who asked


class PrivacyMute:
    """The mute state; :meth:`apply` is called on the session thread only, :attr:`muted`
    may be read from any thread."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / MUTE_FILE if directory is not None else None
        stored = read_json(self.path) if self.path is not None else None
        self.muted = bool(stored.get("muted")) if isinstance(stored, dict) else False
        self.switch_holds = False  #: the switch is in the mute position
        if self.muted:
            log.info("privacy mute: muted=true (kept from before the restart): the "
                     "microphone stays closed; %s", HOW_TO_UNMUTE,
                     extra={"event": "privacy_mute"})

    def apply(self, request: MuteRequest) -> MuteResult:
        """Carry out ``request``: log the change, keep it on disk."""
        source = request.source
        wanted = (not self.muted) if request.muted is None else bool(request.muted)
        if source == SWITCH:
            self.switch_holds = wanted
        elif not wanted and self.switch_holds:
            why = "the mute switch is on; slide it off to unmute"
            log.warning("privacy mute: unmute (%s) refused: %s", source, why)
            return MuteResult(True, False, why, source)
        if wanted == self.muted:
            return MuteResult(wanted, False, source=source)
        self.muted = wanted
        if wanted:
            log.info("privacy mute: muted=true (%s): the microphone is closed, nothing is "
                     "sent or listened for; %s", source, HOW_TO_UNMUTE,
                     extra={"event": "privacy_mute"})
        else:
            log.info("privacy mute: muted=false (%s): the microphone is open again", source,
                     extra={"event": "privacy_mute"})
        if self.path is not None:
            write_json(self.path, {"muted": wanted})
        return MuteResult(wanted, True, source=source)
