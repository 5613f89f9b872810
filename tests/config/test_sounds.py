"""[sounds] and [audio] volume in the config: each sound is default, off or a WAV that
check-config verifies (missing, relative, not a WAV, not 16-bit, too long), named by
section and key with the fix; the volume's range."""

from __future__ import annotations

import subprocess
import sys
import wave

import numpy as np
import pytest

from edgevoice.config import parse
from tests.support import ROOT, write_wav
from tests.support.config import XUNA, problems


def _problem(text: str):
    [problem] = problems(text)
    return problem


def test_default_off_and_a_good_wav(tmp_path):
    good = tmp_path / "chime.wav"
    write_wav(good, np.zeros(4800, dtype="<i2"), 48000)
    cfg = parse(XUNA + f"[sounds]\nlistening = Off\nended = {good}\nlevel_db = -6\n")
    assert (cfg.sounds.listening, cfg.sounds.ended, cfg.sounds.error) == ("off", str(good),
                                                                           "default")
    assert cfg.sounds.level_db == -6.0 and cfg.audio.volume == 100


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"),
    (b"RIFF garbage", "not a readable WAV"),
    ("8bit", "not 16-bit PCM"),
    ("long", "at most 10 s"),
])
def test_a_bad_sound_names_section_key_and_fix(tmp_path, content, words):
    path = tmp_path / "sound.wav"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "8bit":
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000)
            w.writeframes(bytes(800))
    elif content == "long":
        write_wav(path, np.zeros(11 * 8000, dtype="<i2"), 8000)
    problem = _problem(XUNA + f"[sounds]\nthinking = {path}\n")
    assert (problem.section, problem.key) == ("sounds", "thinking")
    assert words in problem.message and str(path) in problem.message


def test_a_relative_or_empty_sound_and_a_volume_out_of_range():
    assert "absolute path" in _problem(XUNA + "[sounds]\nerror = chime.wav\n").message
    assert _problem(XUNA + "[sounds]\nerror =\n").key == "error"
    problem = _problem(XUNA + "[audio]\nvolume = 101\n")
    assert (problem.section, problem.key) == ("audio", "volume")
    assert "0 to 100" in problem.message


def test_check_config_refuses_a_missing_sound(tmp_path):
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(XUNA + f"[sounds]\nlistening = {tmp_path}/nope.wav\n")
    result = subprocess.run([sys.executable, "-m", "edgevoice", "check-config", "--config",
                             str(conf)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 78
    assert "[sounds] listening:" in result.stderr and "default, or off" in result.stderr
