"""Earcons in tests: the ``[sounds]`` that turn them on (the ``run_daemon`` fixture turns
them off), a silent microphone, whether the mixer has played one out, and where each
bundled sound starts in a speaker output WAV and at what gain (normalised
cross-correlation with the sound as the daemon loads it)."""

from __future__ import annotations

import numpy as np

from edgevoice.audio.room_backend import fft_convolve
from edgevoice.sounds import NAMES, load_sound
from tests.support import write_wav

SOUNDS = {name: "default" for name in NAMES}  #: ``extra={"sounds": SOUNDS}``: the bundled ones


def silence(tmp_path, seconds: float = 60.0, rate: int = 16000) -> str:
    """A silent input WAV (the user says nothing)."""
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(int(seconds * rate), dtype="<i2"), rate)
    return str(path)


def earcon_done(handle) -> bool:
    """An earcon has played and none is playing or waiting now (``handle.daemon``)."""
    mixer = handle.daemon.engine.mixer
    return mixer.earcon_blocks > 0 and mixer.playing == "" and not mixer._requests


def template(name: str, rate: int, seconds: float | None = None) -> np.ndarray:
    """The bundled sound ``name`` at ``rate`` (its first ``seconds``), float64."""
    sound = load_sound("default", name, rate, 1.0).astype(np.float64)
    return sound[:int(seconds * rate)] if seconds else sound


def occurrences(signal: np.ndarray, sound: np.ndarray, rate: int, threshold: float = 0.9
                ) -> list[tuple[float, float]]:
    """(start in s, gain) of each place ``sound`` occurs in ``signal`` with a normalised
    correlation above ``threshold``; the gain is the least-squares scale of ``sound``
    there (1.0: as loaded, at volume 100)."""
    x = signal.astype(np.float64)
    n = len(sound)
    if len(x) < n:
        return []
    corr = fft_convolve(x, sound[::-1])[n - 1:len(x)]
    power = np.concatenate([[0.0], np.cumsum(x * x)])
    window = power[n:] - power[:-n]
    energy = float(np.dot(sound, sound))
    ncc = corr / np.sqrt(np.maximum(window, 1e-9) * energy)
    found: list[tuple[float, float]] = []
    after = -1
    for k in np.flatnonzero(ncc > threshold):
        if k <= after:
            continue
        best = k + int(np.argmax(ncc[k:k + n // 2]))
        found.append((best / rate, float(corr[best] / energy)))
        after = best + n // 2
    return found


def gain_db(gain: float) -> float:
    return 20 * np.log10(gain)


#: a [tools] program that takes 3 s, then answers
SLOW_TOOL = """#!/bin/sh
cat >/dev/null
sleep 3
echo "21.5 degrees"
"""


def slow_tool(tmp_path):
    """SLOW_TOOL installed as the executable ``get_temperature`` in ``tmp_path``."""
    tool = tmp_path / "get_temperature"
    tool.write_text(SLOW_TOOL)
    tool.chmod(0o755)
    return tool
