#!/usr/bin/env python3
"""Synthesise edgevoice's earcons into edgevoice/data/ (the committed WAVs come from here).

Pure numpy, no third-party audio: a few sine partials under smooth envelopes, 16 kHz mono
PCM16 (the daemon resamples to the speaker's rate once, when it loads them). Run it again
after changing a sound: ``.venv/bin/python scripts/make_sounds.py``.

- listening: two rising notes (E5 → A5), 0.26 s: "I hear you now".
- ended: the same two notes falling (A5 → E5), 0.26 s: "the conversation is over".
- error: two low notes a tritone apart, falling (A4 → D#4), 0.45 s: "offline, something
  is wrong".
- thinking: a soft double tick every 1.2 s, 20 dB under the others; played as a loop
  while a [tools] program runs or the agent is slow to answer.
"""

from __future__ import annotations

import pathlib
import wave

import numpy as np

RATE = 16000
OUT = pathlib.Path(__file__).resolve().parents[1] / "edgevoice" / "data"
PEAK_DBFS = -12.0          # one-shot earcons: clearly audible under a talking agent
THINKING_PEAK_DBFS = -32.0  # the loop stays in the background


def note(freq: float, seconds: float, attack: float = 0.008, decay: float = 0.06) -> np.ndarray:
    """A bell-like note: fundamental plus two soft partials, quick attack, exponential
    decay and a raised-cosine release over the last ``decay`` seconds (no click)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    tone = (np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(2 * np.pi * 2 * freq * t)
            + 0.08 * np.sin(2 * np.pi * 3 * freq * t))
    env = np.exp(-t * 6.0)
    a = int(attack * RATE)
    env[:a] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    d = int(decay * RATE)
    env[-d:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(d) / d)
    return tone * env


def sequence(*parts: tuple[float, float], gap: float = 0.01) -> np.ndarray:
    silence = np.zeros(int(gap * RATE))
    pieces = []
    for freq, seconds in parts:
        pieces += [note(freq, seconds), silence]
    return np.concatenate(pieces)


def tick(seconds: float = 0.035, freq: float = 1800.0) -> np.ndarray:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    return np.sin(2 * np.pi * freq * t) * np.sin(np.pi * np.arange(n) / n) ** 2


def thinking() -> np.ndarray:
    period = np.zeros(int(1.2 * RATE))
    first, second = tick(), tick(freq=1350.0)
    period[:len(first)] += first
    at = int(0.14 * RATE)
    period[at:at + len(second)] += 0.7 * second
    return period


def scaled(x: np.ndarray, peak_dbfs: float) -> np.ndarray:
    return np.round(x / np.abs(x).max() * 32767 * 10 ** (peak_dbfs / 20)).astype("<i2")


def write(name: str, samples: np.ndarray) -> None:
    path = OUT / f"{name}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())
    print(f"{path.relative_to(OUT.parents[1])}: {len(samples) / RATE:.2f} s")


def main() -> None:
    write("listening", scaled(sequence((659.25, 0.11), (880.0, 0.14)), PEAK_DBFS))
    write("ended", scaled(sequence((880.0, 0.11), (659.25, 0.14)), PEAK_DBFS))
    write("error", scaled(sequence((440.0, 0.2), (311.13, 0.24), gap=0.02), PEAK_DBFS))
    write("thinking", scaled(thinking(), THINKING_PEAK_DBFS))


if __name__ == "__main__":
    main()
