"""The room backend is a closed loop: what the player plays (and stops playing on pause or
flush) is what the microphone hears through the impulse response."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from edgevoice.audio.echo_path import gcc_phat_lag
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.room_backend import open_room_backend, side_paths
from edgevoice.config import AudioSettings
from tests.support import read_wav, write_wav

RATE = 16000
DIRECT = 48          # the IR's direct path: 3 ms
GAIN = 0.5


def _settings(tmp_path, **kw) -> AudioSettings:
    ir = np.zeros(400, dtype=np.int16)
    ir[DIRECT] = int(GAIN * 32767)
    write_wav(tmp_path / "ir.wav", ir, RATE)
    return replace(AudioSettings(), backend="room", room_ir=str(tmp_path / "ir.wav"),
                   output_file=str(tmp_path / "speaker.wav"), output_rate=RATE,
                   room_noise_dbfs=-120.0, **kw)


def _noise(seconds: float, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 3000).astype("<i2").tobytes()


def _wait(condition, timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("timed out")


def _run(settings, steps) -> tuple[np.ndarray, np.ndarray, AudioEngine]:
    capture, playback = open_room_backend(settings, RATE)
    engine = AudioEngine(capture, playback, RATE, 10.0)
    engine.start()
    try:
        steps(engine)
    finally:
        engine.stop()
    speaker, _ = read_wav(settings.output_file)
    mic, _ = read_wav(side_paths(settings.output_file)[0])
    return speaker.astype(float), mic.astype(float), engine


def test_the_mic_hears_exactly_what_the_speaker_played_through_the_ir(tmp_path):
    settings = _settings(tmp_path)
    block = 2 * RATE // 50

    def steps(engine):
        buffer = engine.buffer
        engine.play(_noise(3.0), RATE, "r1")
        _wait(lambda: buffer.played_bytes >= 25 * block)
        buffer.pause()                       # stops at the next block
        paused_at = buffer.played_bytes
        _wait(lambda: engine.blocks_played >= 60)
        assert buffer.played_bytes == paused_at
        buffer.resume()
        _wait(lambda: buffer.played_bytes >= paused_at + 20 * block)
        engine.flush_playback()
        played = engine.blocks_played
        _wait(lambda: engine.blocks_played >= played + 25 and engine.frames_captured >= 130)

    speaker, mic, _ = _run(settings, steps)
    n = min(len(mic), len(speaker) + DIRECT)
    expected = np.zeros(n)
    expected[DIRECT:n] = GAIN * speaker[:n - DIRECT]
    audible = np.abs(expected) > 0
    # the speaker fell silent in the pause and after the flush, and so did the mic
    spans = np.diff(np.concatenate([[0], audible.astype(int), [0]]))
    assert (spans == 1).sum() >= 2, "expected two stretches of sound (before/after the pause)"
    assert not np.any(np.abs(mic[~audible]) > 2), "the mic heard something the speaker did not play"
    residual = mic[:n] - expected
    assert 10 * np.log10(np.sum(expected ** 2) / np.sum(residual ** 2)) > 45


def test_clock_drift_moves_the_echo(tmp_path):
    settings = _settings(tmp_path, room_drift_ppm=2000.0, room_latency_ms=20)

    def steps(engine):
        engine.play(_noise(3.0, seed=4), RATE, "r1")
        _wait(lambda: engine.buffer.played_bytes >= 2 * int(2.9 * RATE))

    speaker, mic, _ = _run(settings, steps)
    start = int(np.flatnonzero(speaker)[0])

    def lag_at(t: float) -> int:
        a = start + int(t * RATE)
        seg = mic[a:a + RATE // 4]
        ref = speaker[a - 200:a + RATE // 4]
        return gcc_phat_lag(seg, ref, 200)[0]

    # the mic's clock gains 2 ms (32 samples) a second on the speaker's
    early, late = lag_at(0.2), lag_at(2.5)
    assert abs(early - (DIRECT + (start + 0.2 * RATE + RATE / 8) * 0.002)) <= 5, early
    assert abs((late - early) - 2.3 * 32) <= 5, (early, late)
