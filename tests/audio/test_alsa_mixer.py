"""``[audio] mixer``: the volume on the card's own control through pyalsaaudio. This machine
(and CI) has no sound card, so the real library is used for what it can show here: a
control that is not there degrades to the software volume with one line naming the
controls that exist. The mapping of the curve onto a control's dB or raw scale, the mute
at 0 and a control that refuses a value run on a stand-in for pyalsaaudio's Mixer."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest

from edgevoice.audio.alsa_mixer import HardwareVolume, split_setting
from edgevoice.audio.mixer import Mixer, volume_gain
from edgevoice.config import parse
from edgevoice.volume import VolumeControl, needs_reopen
from tests.support.config import XUNA

alsaaudio = pytest.importorskip("alsaaudio")


class FakeMixer:
    """pyalsaaudio's Mixer as a card with a dB-scaled control would answer."""

    def __init__(self, db_range=(-5150, 400), raw_range=(0, 151), switch=True, refuse=False):
        self.db_range, self.raw_range, self.switch, self.refuse = db_range, raw_range, switch, refuse
        self.calls: list[tuple] = []

    def getrange(self, pcmtype=None, units=alsaaudio.VOLUME_UNITS_RAW):
        return list(self.db_range if units == alsaaudio.VOLUME_UNITS_DB else self.raw_range)

    def setvolume(self, volume, channel=None, pcmtype=None, units=None):
        if self.refuse:
            raise alsaaudio.ALSAAudioError("Input/output error [hw:1]")
        self.calls.append(("volume", volume, units))

    def setmute(self, mute, channel=None):
        if not self.switch:
            raise alsaaudio.ALSAAudioError("Mixer PCM,0 has no playback switch capabilities")
        self.calls.append(("mute", mute))

    def close(self):
        pass


def test_a_control_that_is_not_there_names_the_controls_and_stays_in_software(caplog):
    caplog.set_level(logging.WARNING)
    assert HardwareVolume.open("PCM@hw:7") is None
    [line] = [r.getMessage() for r in caplog.records if "[audio] mixer" in r.getMessage()]
    assert "'PCM' on hw:7" in line and "the controls there: none" in line
    assert "stays in software" in line


def test_without_pyalsaaudio_the_volume_stays_in_software(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "alsaaudio", None)  # import fails as if not installed
    assert HardwareVolume.open("PCM") is None
    assert any("pip install pyalsaaudio" in r.getMessage() for r in caplog.records)


def test_the_curve_on_a_db_control_a_raw_control_and_mute_at_zero():
    fake = FakeMixer()
    hw = HardwareVolume(fake, alsaaudio, "PCM", "default")
    assert hw.value_for(100) == 400 and hw.value_for(50) == 400 - 2000
    assert hw.value_for(1) == 400 - 3960
    assert hw.apply(75) and fake.calls[-2:] == [("mute", 0),
                                               ("volume", -600, alsaaudio.VOLUME_UNITS_DB)]
    assert hw.apply(0) and fake.calls[-1] == ("mute", 1)
    raw = HardwareVolume(FakeMixer(db_range=(0, 0), switch=False), alsaaudio, "Speaker", "hw:1")
    assert raw.value_for(100) == 151 and raw.value_for(50) == round(151 * 0.1)
    assert raw.apply(0)  # no switch: the lowest value instead
    assert raw._mixer.calls[-1] == ("volume", 0, alsaaudio.VOLUME_UNITS_RAW)
    narrow = HardwareVolume(FakeMixer(db_range=(-1000, 0)), alsaaudio, "PCM", "default")
    assert narrow.value_for(10) == -1000  # a control with less range stops at its bottom


def _engine():
    return types.SimpleNamespace(mixer=Mixer(320))


def test_volume_control_uses_the_card_and_falls_back_to_software(tmp_path, monkeypatch,
                                                                 caplog):
    config = parse(XUNA + f"[agent]\nstate_dir = {tmp_path}\n"
                          "[audio]\nvolume = 50\nmixer = PCM\n")
    fake = FakeMixer()
    monkeypatch.setattr(HardwareVolume, "open", classmethod(
        lambda cls, setting: cls(fake, alsaaudio, *split_setting(setting))))
    control = VolumeControl(config)
    engine = _engine()
    control.audio_opened(engine)
    assert fake.calls[-1] == ("volume", 400 - 2000, alsaaudio.VOLUME_UNITS_DB)
    assert engine.mixer.gain == 1.0  # the card turns it down: software passes it whole
    fake.refuse = True
    control.change(step=-10)
    assert engine.mixer.gain == pytest.approx(volume_gain(40))  # refused: software takes over
    assert sum("refused volume 40" in r.getMessage() for r in caplog.records) == 1
    control.change(step=-10)
    assert engine.mixer.gain == pytest.approx(volume_gain(30))


def test_the_mixer_applies_to_the_alsa_backend_only_and_a_change_reopens_nothing(tmp_path,
                                                                               caplog):
    caplog.set_level(logging.INFO)
    config = parse(XUNA + f"[agent]\nstate_dir = {tmp_path}\n[audio]\nbackend = file\n"
                          f"output_file = {tmp_path}/o.wav\nvolume = 50\nmixer = PCM\n")
    control = VolumeControl(config)
    engine = _engine()
    control.audio_opened(engine)
    assert control.hardware is None and engine.mixer.gain == pytest.approx(volume_gain(50))
    assert any("alsa backend only" in r.getMessage() for r in caplog.records)
    other = parse(XUNA + f"[agent]\nstate_dir = {tmp_path}\n[audio]\nbackend = file\n"
                         f"output_file = {tmp_path}/o.wav\nvolume = 20\nmixer = Speaker\n")
    assert not needs_reopen(config.audio, other.audio)
    assert needs_reopen(config.audio, parse(XUNA + "[audio]\nvolume = 50\n").audio)
    control.config_applied(other)
    assert engine.mixer.gain == pytest.approx(volume_gain(20))
    assert np.isclose(volume_gain(20), 10 ** (-32 / 20))
