"""Speech made at test time by espeak-ng (installed by scripts/bootstrap), as 16 kHz PCM16
samples, and WAVs built from it: a wake phrase, a question, silence between."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from edgevoice.audio.file_backend import read_wav_mono16, resample_pcm
from tests.support import question, write_wav

RATE = 16000


def espeak(text: str, voice: str = "en-us", words_per_minute: int = 160) -> np.ndarray:
    """``text`` spoken by espeak-ng, 16 kHz PCM16 samples (skips the test without it)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (./scripts/bootstrap installs it)")
    with tempfile.TemporaryDirectory() as folder:
        path = str(pathlib.Path(folder) / "speech.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", path,
                        text], check=True, capture_output=True)
        pcm, rate = read_wav_mono16(path)
    return np.frombuffer(resample_pcm(pcm, rate, RATE), dtype="<i2")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype="<i2")


def the_question() -> np.ndarray:
    """The shipped question (espeak-ng too), at 16 kHz."""
    samples, rate = question()
    assert rate == RATE
    return samples


def write_speech(path, *parts: np.ndarray) -> str:
    """``parts`` one after the other in a 16 kHz WAV; returns its path."""
    write_wav(path, np.concatenate(parts), RATE)
    return str(path)
