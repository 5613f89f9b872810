"""The output volume: where the level comes from, how it changes, and what is remembered.

The level (0-100) is applied in software by the player's mixer
(:func:`edgevoice.audio.mixer.volume_gain`: 40 dB evenly in dB from 1 to 100, 0 is silence)
to the agent's voice and the earcons alike, or, with ``[audio] mixer`` on the alsa backend,
on the same curve by the card's own control (:mod:`edgevoice.audio.alsa_mixer`). It changes at run time through
:meth:`edgevoice.daemon.Daemon.change_volume` (the button's gestures) and through SIGHUP
with a new ``[audio] volume`` (applied without reopening the sound devices).

What survives a restart: every change is written to ``volume.json`` in the state directory,
with the ``[audio] volume`` that was configured when it was made. At start the remembered
level wins, unless the configured value has been edited since: then the file's value wins
(the maker who edits the config means it).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from edgevoice import statefile
from edgevoice.audio.alsa_mixer import HardwareVolume
from edgevoice.config import Config, state_dir
from edgevoice.lifecycle import DaemonObserver

log = logging.getLogger(__name__)

STATE_FILE = "volume.json"


def needs_reopen(old_audio, new_audio) -> bool:
    """Whether a reload's new ``[audio]`` section needs the sound devices reopened: any
    change but the volume's and the mixer control's, which are applied on the fly."""
    return dataclasses.replace(old_audio, volume=new_audio.volume,
                               mixer=new_audio.mixer) != new_audio


class VolumeControl(DaemonObserver):
    """The daemon's volume. Used on the session thread only (commands, reloads, the
    devices opening); the mixer picks the new gain up at its next block."""

    def __init__(self, config: Config) -> None:
        self._path = state_dir(config) / STATE_FILE
        self._configured = config.audio.volume
        self._audio = config.audio
        self._mixer = None
        self.hardware: HardwareVolume | None = None  # the card's control, when it works
        self._hardware_setting = "off"
        self.level = self._restore()

    def _restore(self) -> int:
        saved = statefile.read_json(self._path)
        if isinstance(saved, dict):
            level, configured = saved.get("level"), saved.get("config")
            if (configured == self._configured and isinstance(level, int)
                    and 0 <= level <= 100):
                log.info("volume %d (kept from the last run; [audio] volume = %d)", level,
                         configured)
                return level
            if configured != self._configured:
                log.info("volume %d ([audio] volume changed from %s since the last run)",
                         self._configured, configured)
        return self._configured

    # -- DaemonObserver -------------------------------------------------------------------
    def audio_opened(self, engine) -> None:
        self._mixer = engine.mixer
        self._open_hardware()
        self._apply()

    def config_applied(self, config: Config) -> None:
        """A reloaded configuration: a new ``[audio] volume`` or mixer is applied now."""
        self._path = state_dir(config) / STATE_FILE
        self._audio = config.audio
        if self._mixer is not None:
            self._open_hardware()
        if config.audio.volume != self._configured:
            self._configured = config.audio.volume
            self._set(config.audio.volume, "configuration reloaded")
        else:
            self._apply()

    def _open_hardware(self) -> None:
        """Open ``[audio] mixer`` when it names a control other than the open one."""
        a = self._audio
        setting = a.mixer if a.backend == "alsa" else "off"
        if a.mixer != "off" and a.backend != "alsa" and self._hardware_setting == "off":
            log.info("[audio] mixer applies to the alsa backend only; the volume stays in "
                     "software")
        if setting == self._hardware_setting:
            return
        if self.hardware is not None:
            self.hardware.close()
        self.hardware = HardwareVolume.open(setting) if setting != "off" else None
        self._hardware_setting = setting
        if self.hardware is not None:
            log.info("volume on the card's %s control (%s)", self.hardware.control,
                     self.hardware.device)

    def _apply(self) -> None:
        """The level to the card's control when there is one that works (the software
        mixer then passes everything at full level), else to the software mixer."""
        hardware = self.hardware
        on_card = hardware is not None and not hardware.failed and hardware.apply(self.level)
        if self._mixer is not None:
            self._mixer.set_volume(100 if on_card else self.level)

    # -- changes ------------------------------------------------------------------------------
    def change(self, level: int | None = None, step: int = 0) -> int:
        """Set ``level`` (None: keep the current one), then add ``step``; clamped to
        0-100. Returns the new level."""
        base = self.level if level is None else int(level)
        self._set(max(0, min(100, base + int(step))),
                  "button" if level is None else "set")
        return self.level

    def _set(self, level: int, why: str) -> None:
        self.level = level
        self._apply()
        log.info("volume %d (%s)", level, why, extra={"event": "volume"})
        statefile.write_json(self._path, {"level": level, "config": self._configured})

    @property
    def path(self) -> Path:
        return self._path
