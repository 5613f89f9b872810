"""The ``file`` audio backend: a WAV file is the microphone, a WAV file is the speaker.

Both run on one clock: sample *n* of the output WAV was "played" at the instant sample *n*
of the input was "captured" (both files share one rate). Reads and writes block until the
clock reaches them, so the daemon runs in real time exactly as with a sound card, and the
output WAV is the speaker's timeline, silence included: a test can read from it when the
agent was audible. After the input's end the microphone hears silence. ``speed`` makes the
clock run faster than real time (tests that need a minute of audio without a minute's wait).
"""

from __future__ import annotations

import logging
import threading
import time
import wave

import numpy as np

from edgevoice.audio.resample import StreamResampler

log = logging.getLogger(__name__)


class AudioFileError(Exception):
    """An input WAV that the file backend cannot use."""


def read_wav_mono16(path: str) -> tuple[bytes, int]:
    """Read a PCM16 WAV; stereo is mixed down. Returns (pcm, rate)."""
    try:
        with wave.open(path, "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                raise AudioFileError(f"{path}: expected 16-bit PCM WAV, got "
                                     f"{8 * wav.getsampwidth()}-bit {wav.getcomptype()}")
            rate, channels = wav.getframerate(), wav.getnchannels()
            pcm = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioFileError(f"{path}: not a readable WAV file ({exc})") from None
    if channels > 1:
        samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).mean(axis=1)
        pcm = samples.astype("<i2").tobytes()
    return pcm, rate


class FileClock:
    """The shared clock: time zero is the first capture read."""

    def __init__(self, rate: int, speed: float = 1.0) -> None:
        self.rate = rate
        self.speed = speed
        self.closed = threading.Event()
        self._t0: float | None = None
        self._lock = threading.Lock()

    def t0(self) -> float:
        t0 = self._t0
        if t0 is not None:  # set once: no lock on every block
            return t0
        with self._lock:
            if self._t0 is None:
                self._t0 = time.monotonic()
            return self._t0

    def wait_until_sample(self, n: int) -> None:
        """Block until sample ``n`` is due; raise :class:`EOFError` once closed."""
        due = self.t0() + n / (self.rate * self.speed)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # at most one block (20 ms); cheaper than an Event wait
        if self.closed.is_set():
            raise EOFError("file audio closed")

    def sample_now(self) -> int:
        return int((time.monotonic() - self.t0()) * self.rate * self.speed)


class FileCapture:
    """Reads the input WAV in real time, at the file's own rate.

    :meth:`close_input` (the privacy mute) closes the "microphone": reading then raises,
    and :meth:`open_input` resumes at the clock's present sample, as a real microphone
    would: what the input held while it was closed is never read.
    """

    def __init__(self, pcm: bytes, clock: FileClock) -> None:
        self.rate = clock.rate
        self._pcm = memoryview(pcm)
        self._clock = clock
        self._pos = 0  # samples handed out
        self.input_open = True

    def open_input(self) -> None:
        if not self.input_open:
            self._pos = max(self._pos, self._clock.sample_now())
            self.input_open = True

    def close_input(self) -> None:
        self.input_open = False

    def read(self, samples: int) -> bytes:
        if not self.input_open:
            raise OSError("the microphone is closed (privacy mute)")
        self._clock.wait_until_sample(self._pos + samples)
        start = self._pos * 2
        end = start + samples * 2
        self._pos += samples
        chunk = bytes(self._pcm[start:end])
        if len(chunk) < samples * 2:
            chunk += bytes(samples * 2 - len(chunk))
        return chunk

    def close(self) -> None:
        self._clock.closed.set()


class FilePlayback:
    """Writes everything the speaker plays to a WAV, on the shared clock.

    ``write`` of the block that starts at sample *k* returns once the clock reaches *k*
    (like a sound card whose buffer is full). If the player was late, the missed time is
    written as silence and counted in ``xruns``, so the file stays true to the clock.
    """

    def __init__(self, path: str, clock: FileClock) -> None:
        self.rate = clock.rate
        self._clock = clock
        self._wav = wave.open(path, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.rate)
        self._written = 0
        self._patched_at = 0
        self._lock = threading.Lock()
        self.xruns = 0

    def wait_writable(self) -> None:
        """Block until the next block is due, so the player takes it from the buffer at the
        last moment (a pause then takes effect at the very next block)."""
        self._clock.wait_until_sample(self._written)

    def write(self, pcm: bytes) -> None:
        self._clock.wait_until_sample(self._written)
        now = self._clock.sample_now()
        with self._lock:
            if self._wav is None:
                return
            late = now - self._written - self.rate // 10  # more than 100 ms behind
            if late > 0:
                self._wav.writeframesraw(bytes(late * 2))
                self._written += late
                self.xruns += 1
            self._wav.writeframesraw(pcm)
            self._written += len(pcm) // 2
            if self._written - self._patched_at >= self.rate:
                self._wav.writeframes(b"")  # rewrites the header: the file stays readable
                self._patched_at = self._written

    def close(self) -> None:
        self._clock.closed.set()
        with self._lock:
            if self._wav is not None:
                self._wav.close()
                self._wav = None


def open_file_backend(input_file: str, output_file: str, output_rate: int,
                      speed: float = 1.0) -> tuple[FileCapture, FilePlayback]:
    """Open the file "devices". The clock runs at the input's rate (``output_rate`` when
    there is no input file); the output WAV is written at the same rate."""
    if input_file:
        pcm, rate = read_wav_mono16(input_file)
    else:
        pcm, rate = b"", output_rate or 16000
    clock = FileClock(rate, speed)
    log.info("file audio: input %s (%d Hz, %.2f s), output %s", input_file or "<silence>",
             rate, len(pcm) / 2 / rate, output_file)
    return FileCapture(pcm, clock), FilePlayback(output_file, clock)


def resample_pcm(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample a whole buffer at once (for fixtures and tools)."""
    return StreamResampler(in_rate, out_rate).process(pcm, last=True)
