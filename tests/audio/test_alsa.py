"""PyAudio → PortAudio → ALSA for real, with alsa-lib `file` PCMs (see tests/support/alsa.py's asoundrc):
device lookup by name, capture and playback data intact, a 48 kHz-only device resampled."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgevoice.audio import alsa_backend
from edgevoice.audio.alsa_backend import (AlsaCapture, AlsaPlayback, DeviceError, find_device,
                                          list_devices, open_alsa_backend)
from edgevoice.audio.engine import AudioEngine
from tests.support import peak_freq, sine, wait_until
from tests.support.alsa import ALSA_DIR


def test_devices_are_listed_by_name():
    names = [d.name for d in list_devices()]
    assert {"edgevoice_test_mic", "edgevoice_test_speaker", "edgevoice_mic48"} <= set(names)


def test_lookup_by_exact_name_unique_part_and_errors():
    assert find_device("edgevoice_test_mic", "input").name == "edgevoice_test_mic"
    assert find_device("MIC48", "input").name == "edgevoice_mic48"  # case-insensitive part
    with pytest.raises(DeviceError) as info:
        find_device("edgevoice", "input")
    assert "ambiguous" in str(info.value)
    with pytest.raises(DeviceError) as info:
        find_device("Blue Yeti", "input")
    message = str(info.value)
    assert "no input device named 'Blue Yeti'" in message
    assert "edgevoice_test_mic" in message  # says which devices exist


def test_capture_data_arrives_intact():
    signal = (np.arange(16000) % 200 * 100 - 10000).astype("<i2")
    (ALSA_DIR / "mic.raw").write_bytes(signal.tobytes())
    capture = AlsaCapture(find_device("edgevoice_test_mic", "input"), 16000)
    try:
        got = b"".join(capture.read(320) for _ in range(50))
    finally:
        capture.close()
    assert np.array_equal(np.frombuffer(got, dtype="<i2"), signal)


def test_playback_data_is_written_intact():
    signal = (np.arange(16000) % 300 * 70 - 10000).astype("<i2")
    playback = AlsaPlayback(find_device("edgevoice_test_speaker", "output"), 16000)
    for i in range(0, len(signal), 320):
        playback.write(signal[i:i + 320].tobytes())
    playback.close()
    written = np.frombuffer((ALSA_DIR / "speaker.raw").read_bytes(), dtype="<i2")
    assert np.array_equal(written, signal)


def test_48k_only_devices_are_opened_at_48k_and_resampled(monkeypatch):
    """A USB microphone and speaker that only take 48 kHz (the alsa `file`/`null` PCMs accept
    any rate, so the device's rate list is narrowed here; everything else is real)."""
    monkeypatch.setattr(alsa_backend, "supported_rates", lambda device, direction: [48000])
    mic_signal = sine(1000, 48000, 1.0)
    (ALSA_DIR / "mic48.raw").write_bytes(mic_signal.tobytes())
    capture, playback = open_alsa_backend("mic48", "speaker48", 0, 0, wire_rate=16000)
    assert (capture.rate, playback.rate) == (48000, 48000)
    engine = AudioEngine(capture, playback, wire_rate=16000, buffer_seconds=5)
    frames: list[bytes] = []
    enough = threading.Event()

    def sink(frame: bytes, t: float) -> None:
        if len(frames) < 45:
            frames.append(frame)
        else:
            enough.set()

    engine.frame_sink = sink
    agent_voice = sine(440, 16000, 0.5)
    engine.play(agent_voice.tobytes(), 16000, response_id=1)
    engine.start()
    try:
        assert enough.wait(10), "no frames from the 48 kHz microphone"
        wait_until(lambda: engine.buffer.buffered_bytes == 0, 10, "the agent voice to play")
    finally:
        engine.stop()
    assert all(len(f) == 640 for f in frames)  # exact 20 ms frames at the wire rate
    wire = np.frombuffer(b"".join(frames), dtype="<i2")
    assert abs(peak_freq(wire[1600:], 16000) - 1000) < 20
    assert 0.8 * 8000 < np.abs(wire[1600:]).max() < 1.1 * 8000
    played = np.frombuffer((ALSA_DIR / "speaker48.raw").read_bytes(), dtype="<i2")
    voiced = played[np.abs(played) > 0]
    assert len(voiced) > 0.9 * 48000 * 0.5  # 0.5 s of agent voice at 48 kHz
    start = int(np.argmax(np.abs(played) > 0))
    assert abs(peak_freq(played[start + 2400:start + 21600], 48000) - 440) < 10
