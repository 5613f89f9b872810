"""The ``room`` audio backend: a simulated room around a microphone and a speaker.

The microphone hears, in real time:

- the user: ``input_file`` convolved with ``room_user_ir`` (or as it is);
- the echo: every block the player really wrote to the "speaker" (so pause, flush and
  underruns all show), optionally soft-clipped like a small overdriven speaker, convolved
  with the speaker-to-mic impulse response ``room_ir`` and scaled by ``room_echo_gain_db``;
  a block written now is heard ``room_latency_ms`` later (the device buffer);
- white noise at ``room_noise_dbfs``;

with the microphone's clock running ``room_drift_ppm`` faster than the speaker's (the echo
is read at the drifting instants, linearly interpolated). The speaker's output goes to
``output_file``; what the mic heard and what the capture path handed on (after the echo
canceller) go to ``<output>.mic.wav`` and ``<output>.sent.wav``. Tests, the bench and
anyone tuning a setup from a measured impulse response use it; the daemon runs unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import wave

import numpy as np

from edgevoice.audio.file_backend import FileClock, read_wav_mono16, resample_pcm

log = logging.getLogger(__name__)

RING_S = 8.0


def soft_clip(x: np.ndarray, drive: float) -> np.ndarray:
    """A speaker driven into saturation: unity gain for small signals, ``tanh`` peaks."""
    return np.tanh(drive * x) / drive if drive > 0 else x


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution through one FFT."""
    if len(x) == 0 or len(h) == 0:
        return np.zeros(0)
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n]


def load_ir(path: str, rate: int) -> np.ndarray:
    """An impulse response WAV as float (full scale 1.0) at ``rate``."""
    pcm, ir_rate = read_wav_mono16(path)
    if ir_rate != rate:
        pcm = resample_pcm(pcm, ir_rate, rate)
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def _wav_writer(path: str, rate: int) -> wave.Wave_write:
    wav = wave.open(path, "wb")
    wav.setnchannels(1)
    wav.setsampwidth(2)
    wav.setframerate(rate)
    return wav


def _to_pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()


class Room:
    """The shared acoustic state: the echo timeline on the speaker's clock."""

    def __init__(self, rate: int, ir: np.ndarray, echo_gain_db: float, distortion: float,
                 latency_s: float) -> None:
        self.rate = rate
        self.clock = FileClock(rate)
        self.latency = int(round(latency_s * rate))
        self.distortion = distortion
        self._ir = ir * 10.0 ** (echo_gain_db / 20.0)
        self._ring = np.zeros(int(RING_S * rate) + len(ir))
        self._n = len(self._ring)
        self._lock = threading.Lock()
        self._fft: tuple[int, np.ndarray] | None = None

    def add_played(self, block: np.ndarray, at: int) -> None:
        """The speaker plays ``block`` (float) from speaker sample ``at`` on."""
        n = len(block) + len(self._ir) - 1
        if self._fft is None or self._fft[0] < n:
            size = 1 << (n - 1).bit_length()
            self._fft = (size, np.fft.rfft(self._ir, size))
        size, spectrum = self._fft
        echo = np.fft.irfft(np.fft.rfft(soft_clip(block, self.distortion), size) * spectrum,
                            size)[:n]
        idx = (at + np.arange(n)) % self._n
        with self._lock:
            self._ring[idx] += echo

    def take_echo(self, positions: np.ndarray, consumed_to: int) -> np.ndarray:
        """Echo at fractional speaker-sample ``positions`` (increasing); then forget the
        timeline before ``consumed_to``."""
        lo = int(np.floor(positions[0]))
        idx = np.arange(lo, int(np.floor(positions[-1])) + 2)
        with self._lock:
            values = self._ring[idx % self._n]
            if consumed_to > self._forgotten:
                gone = np.arange(self._forgotten, consumed_to) % self._n
                self._ring[gone] = 0.0
                self._forgotten = consumed_to
        return np.interp(positions, idx, values)

    _forgotten = 0


class RoomPlayback:
    """The speaker: each block is heard ``latency`` after it is written (a device buffer);
    a late player leaves silence, as a real device underruns."""

    def __init__(self, room: Room, path: str) -> None:
        self.room = room
        self.rate = room.rate
        self.latency_s = room.latency / room.rate
        self._wav = _wav_writer(path, self.rate)
        self._wav.writeframesraw(bytes(2 * room.latency))  # WAV sample k: heard at sample k
        self._heard = room.latency  # speaker sample at which the next block is heard
        self._patched = 0
        self._lock = threading.Lock()
        self.xruns = 0

    def wait_writable(self) -> None:
        self.room.clock.wait_until_sample(self._heard - self.room.latency)

    def write(self, pcm: bytes) -> None:
        clock = self.room.clock
        clock.wait_until_sample(self._heard - self.room.latency)
        now = clock.sample_now()
        samples = np.frombuffer(pcm, dtype="<i2")
        with self._lock:
            if self._wav is None:
                return
            late = now - (self._heard - self.room.latency) - self.rate // 10
            if late > 0:  # the player fell behind: the device played silence meanwhile
                self._wav.writeframesraw(bytes(2 * late))
                self._heard += late
                self.xruns += 1
            self._wav.writeframesraw(samples.tobytes())
            at = self._heard
            self._heard += len(samples)
            if self._heard - self._patched >= self.rate:
                self._wav.writeframes(b"")
                self._patched = self._heard
        if samples.any():
            self.room.add_played(samples / 32768.0, at)

    def close(self) -> None:
        self.room.clock.closed.set()
        with self._lock:
            if self._wav is not None:
                self._wav.close()
                self._wav = None


class RoomCapture:
    """The microphone: user + echo + noise, on a clock ``drift_ppm`` faster."""

    def __init__(self, room: Room, user: np.ndarray, noise_dbfs: float, drift_ppm: float,
                 mic_path: str, sent_path: str, sent_rate: int, seed: int = 7) -> None:
        self.room = room
        self.rate = room.rate
        self.latency_s = 0.0
        self._user = user
        self._noise = 10.0 ** (noise_dbfs / 20.0)
        self._ratio = 1.0 + drift_ppm * 1e-6
        self._rng = np.random.default_rng(seed)
        self._pos = 0
        self._mic = _wav_writer(mic_path, self.rate)
        self._sent = _wav_writer(sent_path, sent_rate)
        self._lock = threading.Lock()
        self.input_open = True

    def open_input(self) -> None:
        """After a privacy mute: hear the room from now on; the mic WAV gets silence for
        the time the microphone was closed, so it stays on the room's clock."""
        if self.input_open:
            return
        now = int((time.monotonic() - self.room.clock.t0()) * self.rate * self._ratio)
        gap = max(0, now - self._pos)
        with self._lock:
            if self._mic is not None and gap:
                self._mic.writeframes(bytes(2 * gap))
        self._pos += gap
        self.input_open = True

    def close_input(self) -> None:
        self.input_open = False

    def read(self, samples: int) -> bytes:
        if not self.input_open:
            raise OSError("the microphone is closed (privacy mute)")
        clock = self.room.clock
        due = clock.t0() + (self._pos + samples) / (self.rate * self._ratio)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if clock.closed.is_set():
            raise EOFError("room audio closed")
        m = self._pos + np.arange(samples)
        positions = m / self._ratio  # where the speaker's clock is at these mic samples
        x = self.room.take_echo(positions, int(positions[0]) - self.rate)
        lo, hi = self._pos, self._pos + samples
        user = self._user[lo:hi]
        x[:len(user)] += user
        x += self._rng.standard_normal(samples) * self._noise
        self._pos = hi
        pcm = _to_pcm16(x)
        with self._lock:
            if self._mic is not None:
                self._mic.writeframes(pcm)
        return pcm

    def record_sent(self, frame: bytes) -> None:
        """The capture path's output for this frame (after the echo canceller)."""
        with self._lock:
            if self._sent is not None:
                self._sent.writeframes(frame)

    def close(self) -> None:
        self.room.clock.closed.set()
        with self._lock:
            for wav in (self._mic, self._sent):
                if wav is not None:
                    wav.close()
            self._mic = self._sent = None


def side_paths(output_file: str) -> tuple[str, str]:
    """Where the room backend writes the mic signal and the sent signal."""
    stem, _ = os.path.splitext(output_file)
    return stem + ".mic.wav", stem + ".sent.wav"


def open_room_backend(audio, wire_rate: int) -> tuple[RoomCapture, RoomPlayback]:
    """Open the simulated room described by an ``[audio]`` section."""
    if audio.input_file:
        pcm, rate = read_wav_mono16(audio.input_file)
    else:
        pcm, rate = b"", audio.output_rate or wire_rate
    user = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    if audio.room_user_ir:
        user = fft_convolve(user, load_ir(audio.room_user_ir, rate))[:len(user)]
    room = Room(rate, load_ir(audio.room_ir, rate), audio.room_echo_gain_db,
                audio.room_distortion, audio.room_latency_ms / 1000.0)
    mic_path, sent_path = side_paths(audio.output_file)
    log.info("room audio: user %s, speaker->mic %s (%+.1f dB, drive %g), noise %.0f dBFS, "
             "drift %+g ppm, %d Hz; writing %s, %s, %s", audio.input_file or "<silence>",
             audio.room_ir, audio.room_echo_gain_db, audio.room_distortion,
             audio.room_noise_dbfs, audio.room_drift_ppm, rate, audio.output_file, mic_path,
             sent_path)
    capture = RoomCapture(room, user, audio.room_noise_dbfs, audio.room_drift_ppm, mic_path,
                          sent_path, wire_rate)
    return capture, RoomPlayback(room, audio.output_file)
