"""The question the local agent's tests speak, at 16 kHz and at 24 kHz (navtalk)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import soxr

from tests.support import QUESTION_WAV
from tests.support.localagent import FRAME_BYTES, NAV_FRAME_BYTES, NAV_RATE, RATE


@pytest.fixture(scope="module")
def question() -> bytes:
    """The spoken fixture (16 kHz) followed by 1.2 s of silence (enough to end the utterance)."""
    with wave.open(str(QUESTION_WAV)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        pcm = wav.readframes(wav.getnframes())
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return pcm + bytes(int(1.2 * RATE) * 2)


@pytest.fixture(scope="module")
def question24(question: bytes) -> bytes:
    """The same at 24 kHz, padded to whole 960-byte frames."""
    samples = soxr.resample(np.frombuffer(question, dtype="<i2"), RATE, NAV_RATE)
    pcm = samples.astype("<i2").tobytes()
    return pcm + bytes(-len(pcm) % NAV_FRAME_BYTES)
