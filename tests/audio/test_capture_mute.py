"""The privacy mute on the capture side, through the real PyAudio → PortAudio → ALSA stack
(alsa-lib `file` PCMs, see tests/support/alsa.py): the capture stream is really closed
(alsa-lib lets go of the microphone's file) and no frame comes out while muted; unmuting
opens it again and frames flow. Then the same on the file and room backends."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from edgevoice.audio.alsa_backend import open_alsa_backend
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.file_backend import open_file_backend
from tests.support import wait_until, write_wav
from tests.support.alsa import ALSA_DIR

MIC = str(ALSA_DIR / "mic.raw")


def mic_files_open() -> int:
    """File descriptors of this process on the test microphone's data: alsa-lib holds one
    while the capture PCM is open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == MIC
        except OSError:
            pass
    return count


class FrameCounter:
    """An engine's frame sink: counts frames, and lets a test wait for more."""

    def __init__(self) -> None:
        self.frames = 0
        self.cond = threading.Condition()

    def __call__(self, frame: bytes, t: float) -> None:
        with self.cond:
            self.frames += 1
            self.cond.notify_all()

    def wait_for_more(self, than: int, timeout: float = 10.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.frames > than, timeout), "no frames"


def _wait_muted_for(engine: AudioEngine, rounds: int) -> None:
    """Until the muted capture thread has waited ``rounds`` more times (0.1 s each)."""
    start = engine.muted_rounds
    wait_until(lambda: engine.muted_rounds >= start + rounds, 10, "the capture thread to wait")


def test_alsa_mute_closes_the_capture_stream_and_unmute_reopens_it():
    (ALSA_DIR / "mic.raw").write_bytes((np.arange(16000) % 100 * 50).astype("<i2").tobytes())
    capture, playback = open_alsa_backend("edgevoice_test_mic", "edgevoice_test_speaker",
                                          16000, 16000, wire_rate=16000)
    engine = AudioEngine(capture, playback, wire_rate=16000, buffer_seconds=2)
    sink = FrameCounter()
    engine.frame_sink = sink
    engine.start()
    try:
        sink.wait_for_more(10)
        assert mic_files_open() == 1 and engine.capture_open

        engine.set_listening(False)
        wait_until(lambda: not engine.capture_open, 5, "the capture stream to close")
        assert mic_files_open() == 0          # alsa-lib let go of the microphone
        muted_at = sink.frames
        _wait_muted_for(engine, 5)
        assert sink.frames == muted_at        # nothing captured, nothing handed on
        assert engine.capture_errors == 0     # and nothing tried to read

        engine.set_listening(True)
        sink.wait_for_more(muted_at + 10)
        assert engine.capture_open and mic_files_open() == 1
        assert engine.capture_reopened == 1
    finally:
        engine.stop()
    assert mic_files_open() == 0


def test_alsa_backend_opened_muted_never_opens_the_microphone():
    capture, playback = open_alsa_backend("edgevoice_test_mic", "edgevoice_test_speaker",
                                          16000, 16000, wire_rate=16000, listen=False)
    engine = AudioEngine(capture, playback, wire_rate=16000, buffer_seconds=2)
    engine.set_listening(False)
    sink = FrameCounter()
    engine.frame_sink = sink
    engine.start()
    try:
        _wait_muted_for(engine, 3)
        assert mic_files_open() == 0 and not engine.capture_open and sink.frames == 0
        engine.set_listening(True)
        sink.wait_for_more(5)
        assert mic_files_open() == 1
    finally:
        engine.stop()


@pytest.mark.parametrize("backend", ["file", "room"])
def test_file_and_room_microphones_stop_reading_and_resume_at_the_present(tmp_path, backend):
    """A closed file/room microphone is not read at all (a read would raise), and when it
    opens again it hears the present: what played meanwhile is never captured."""
    from dataclasses import replace

    from edgevoice.audio.room_backend import open_room_backend
    from edgevoice.config import AudioSettings

    rate = 16000
    write_wav(tmp_path / "in.wav", (np.arange(rate * 30) % 200 * 40).astype(np.int16), rate)
    if backend == "file":
        capture, playback = open_file_backend(str(tmp_path / "in.wav"),
                                              str(tmp_path / "out.wav"), 0)
    else:
        ir = np.zeros(64, dtype=np.int16)
        ir[0] = 16000
        write_wav(tmp_path / "ir.wav", ir, rate)
        settings = replace(AudioSettings(), backend="room", room_ir=str(tmp_path / "ir.wav"),
                           input_file=str(tmp_path / "in.wav"),
                           output_file=str(tmp_path / "out.wav"))
        capture, playback = open_room_backend(settings, rate)
    engine = AudioEngine(capture, playback, rate, 2.0)
    sink = FrameCounter()
    engine.frame_sink = sink
    engine.start()
    try:
        sink.wait_for_more(5)
        engine.set_listening(False)
        wait_until(lambda: not capture.input_open, 5, "the microphone to close")
        with pytest.raises(OSError, match="privacy mute"):
            capture.read(320)
        muted_at, position = sink.frames, capture._pos
        _wait_muted_for(engine, 5)
        assert sink.frames == muted_at and capture._pos == position
        engine.set_listening(True)
        sink.wait_for_more(muted_at + 5)
        assert capture._pos >= position + rate * 0.4  # it skipped the time it was closed
        assert engine.capture_errors == 0
    finally:
        engine.stop()
