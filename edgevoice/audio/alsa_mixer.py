"""The volume on the sound card's own mixer (``[audio] mixer = CONTROL`` or
``CONTROL@DEVICE``), through pyalsaaudio, an optional dependency.

Where the card has a playback volume control (a USB speaker's "PCM" or "Speaker", a HAT's
"Digital"), turning it down there keeps the full 16 bits for the agent's voice. The level
follows the same curve as the software volume (:func:`edgevoice.audio.mixer.volume_db`),
counted down from the control's own maximum, in the control's dB scale where it has one
(else in its raw steps); 0 mutes the control. The earcons' level and the ducking stay in
software.

Nothing here may stop the daemon: a missing package, a card without that control or a
control that refuses a value is one warning line (naming the controls that exist), and the
volume stays in software (:class:`~edgevoice.volume.VolumeControl` decides).
"""

from __future__ import annotations

import logging
import math

from edgevoice.audio.mixer import volume_db

log = logging.getLogger(__name__)


def split_setting(setting: str) -> tuple[str, str]:
    """``"Speaker@hw:1"`` → ``("Speaker", "hw:1")``; the device defaults to ``default``."""
    control, _, device = setting.partition("@")
    return control.strip(), device.strip() or "default"


class HardwareVolume:
    """One simple mixer control of one card (pyalsaaudio's ``Mixer``)."""

    def __init__(self, mixer, module, control: str, device: str) -> None:
        self._mixer = mixer
        self._alsa = module
        self.control, self.device = control, device
        # raises ALSAAudioError for a control without playback volume (a capture control)
        db_range = tuple(mixer.getrange(units=module.VOLUME_UNITS_DB))  # in 1/100 dB
        if db_range[1] > db_range[0]:
            self._range, self._units = db_range, module.VOLUME_UNITS_DB
        else:  # a control without dB information
            self._range = tuple(mixer.getrange(units=module.VOLUME_UNITS_RAW))
            self._units = module.VOLUME_UNITS_RAW
        self.failed = False

    @classmethod
    def open(cls, setting: str) -> "HardwareVolume | None":
        """The control ``setting`` names, or None (one warning saying why)."""
        control, device = split_setting(setting)
        try:
            import alsaaudio
        except ImportError:
            log.warning("[audio] mixer = %s needs the pyalsaaudio package (pip install "
                        "pyalsaaudio); the volume stays in software", setting)
            return None
        try:
            mixer = alsaaudio.Mixer(control, device=device)
            return cls(mixer, alsaaudio, control, device)
        except alsaaudio.ALSAAudioError as exc:
            try:
                known = ", ".join(alsaaudio.mixers(device=device)) or "none"
            except alsaaudio.ALSAAudioError:
                known = "none (no card there)"
            log.warning("[audio] mixer: no playback control %r on %s (%s); the controls there: "
                        "%s; the volume stays in software", control, device, exc, known)
            return None

    def value_for(self, level: int) -> int:
        """The control's value for volume ``level`` (1-100)."""
        lo, hi = self._range
        db = volume_db(level)
        if self._units == self._alsa.VOLUME_UNITS_DB:
            return int(max(lo, hi + round(db * 100)))
        steps = hi - lo  # raw steps: linear in amplitude is the safe guess
        return int(lo + round(steps * math.pow(10.0, db / 20.0)))

    def apply(self, level: int) -> bool:
        """Set the control for ``level``; False (and one warning) when the card refuses."""
        mixer = self._mixer
        try:
            if level <= 0:
                try:
                    mixer.setmute(1)
                except self._alsa.ALSAAudioError:  # a control without a switch
                    mixer.setvolume(self._range[0], units=self._units)
                return True
            try:
                mixer.setmute(0)
            except self._alsa.ALSAAudioError:
                pass
            mixer.setvolume(self.value_for(level), units=self._units)
            return True
        except self._alsa.ALSAAudioError as exc:
            if not self.failed:
                log.warning("[audio] mixer: %s on %s refused volume %d (%s); the volume "
                            "stays in software", self.control, self.device, level, exc)
            self.failed = True
            return False

    def close(self) -> None:
        try:
            self._mixer.close()
        except Exception:  # closing must never stop anything
            pass
