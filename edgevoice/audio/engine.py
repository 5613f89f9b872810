"""The audio engine: the capture thread and the player thread, running for the daemon's
whole life (sessions come and go; the sound devices stay open).

- capture thread: blocking reads of 20 ms at the device rate → resample to the wire rate →
  exact 20 ms frames → echo canceller (:mod:`edgevoice.audio.echo_path`, when on) →
  ``frame_sink(frame, t_captured)``. The sink must not block (the session puts frames in a
  bounded queue that drops the oldest). The privacy mute (:meth:`AudioEngine.set_listening`)
  makes this thread close the capture stream after the read in progress and wait, reading
  nothing, until it is told to reopen it; only this thread ever touches the stream, so no
  lock is held across a read.
- player thread: takes one block from the :class:`PlaybackBuffer` (silence on underrun or
  pause), mixes in the earcon and the volume (:class:`~edgevoice.audio.mixer.Mixer`) and
  writes it to the device, whose blocking write paces the loop; then records the block,
  resampled to the wire rate, as the canceller's reference with the instant it is heard.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from edgevoice.audio.bargein import SILENCE_DB, SpeakerLevels, level_db
from edgevoice.audio.echo_cancel import DEFAULT_TAIL_MS, EchoCancelUnavailable, open_canceller
from edgevoice.audio.echo_path import EchoPath, SpeakerReference
from edgevoice.audio.frames import Framer, frame_bytes
from edgevoice.audio.mixer import Mixer
from edgevoice.audio.playback_buffer import PlaybackBuffer
from edgevoice.audio.resample import StreamResampler
from edgevoice.logsetup import RateLimitedLog
from edgevoice.redact import describe_error
from edgevoice.threads import join_threads, start_thread

log = logging.getLogger(__name__)

FrameSink = Callable[[bytes, float], None]
FAILURES_BEFORE_REOPEN = 6  # ~3 s of a device that keeps failing (unplugged): reopen it
MUTED_WAIT_S = 0.1  # how often a muted capture thread looks at the stop flag


def _discard(frame: bytes, t: float) -> None:
    pass


class AudioEngine:
    def __init__(self, capture, playback, wire_rate: int, buffer_seconds: float,
                 echo_cancel: str = "off", echo_tail_ms: int = DEFAULT_TAIL_MS) -> None:
        self.capture = capture
        self.playback = playback
        self.wire_rate = wire_rate
        self.buffer = PlaybackBuffer(int(buffer_seconds * playback.rate) * 2)
        self.speaker = SpeakerLevels()  # what the speaker played when (for barge-in)
        self.mixer = Mixer(playback.rate // 50)  # earcons and the volume, on the player thread
        self.frame_sink: FrameSink = _discard
        self._uplink = StreamResampler(capture.rate, wire_rate)
        self._framer = Framer(frame_bytes(wire_rate))
        self._downlink: StreamResampler | None = None
        self._downlink_stale = False
        self.echo = _open_echo_path(echo_cancel, wire_rate, echo_tail_ms)
        self._reference_resampler = (StreamResampler(playback.rate, wire_rate)
                                     if self.echo is not None else None)
        self._stop = threading.Event()
        self._listen = threading.Event()  # clear: privacy mute, the capture stream is closed
        self._listen.set()
        self._threads: list[threading.Thread] = []
        self._errors = RateLimitedLog(log, 30.0)
        # progress counters, read by health checks and the bench
        self.frames_captured = 0
        self.blocks_played = 0
        self.capture_errors = 0
        self.muted_rounds = 0  # the capture thread's rounds while muted (it is alive, idle)
        self.capture_reopened = 0  # times the capture stream was opened again after a mute
        self.failed = ""  # set when a device keeps failing (unplugged): reopen the devices

    def start(self) -> None:
        for name, target in (("capture", self._capture_loop), ("player", self._player_loop)):
            self._threads.append(start_thread(name, target))

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        join_threads(self._threads, timeout)  # one that hangs in the driver is named
        for stream in (self.capture, self.playback) + ((self.echo.canceller,) if self.echo else ()):
            try:
                stream.close()
            except Exception as exc:  # closing must never stop the shutdown
                log.debug("closing %s: %s", stream, describe_error(exc))

    # -- privacy mute: called from the session thread ---------------------------------------
    def set_listening(self, listening: bool) -> None:
        """False: the capture thread closes the capture stream once the read in progress
        returns (at most one 20 ms block later) and reads nothing until True reopens it.
        Returns at once; :attr:`capture_open` tells when it happened. Call before
        :meth:`start` to start with the stream closed."""
        (self._listen.set if listening else self._listen.clear)()

    @property
    def listening(self) -> bool:
        """What was asked last (:meth:`set_listening`)."""
        return self._listen.is_set()

    @property
    def capture_open(self) -> bool:
        """Whether the capture device's stream is open now."""
        return bool(getattr(self.capture, "input_open", True))

    @property
    def capture_progress(self) -> int:
        """Moves while the capture thread works: frames captured, or rounds of waiting
        while muted (the watchdog must not take a muted microphone for a stuck one)."""
        return self.frames_captured + self.muted_rounds

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    # -- downlink: called from the session's receive thread only --------------------------
    def play(self, pcm: bytes, rate: int, response_id: object = None) -> int:
        """Queue agent audio (at ``rate``) for the speaker; returns bytes buffered."""
        downlink = self._downlink
        if downlink is None or downlink.in_rate != rate or self._downlink_stale:
            # a fresh resampler after a flush: its filter must not carry the cancelled audio
            self._downlink_stale = False
            downlink = self._downlink = StreamResampler(rate, self.playback.rate)
        return self.buffer.write(downlink.process(pcm), response_id)

    def flush_playback(self) -> int:
        """Stop the agent's voice now: drop everything buffered. Returns bytes dropped.
        Any thread may call it; the resampler is replaced by :meth:`play` itself (libsoxr
        must not be reset while the receive thread is inside it)."""
        self._downlink_stale = True
        return self.buffer.flush()

    # -- threads ------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        block = self.capture.rate // 50
        read = self.capture.read
        uplink = self._uplink.process
        push = self._framer.push
        cancel = self.echo.process if self.echo is not None else None
        tap = getattr(self.capture, "record_sent", None)  # the room backend keeps a copy
        latency = getattr(self.capture, "latency_s", 0.0)  # a frame is older than its read
        listening = self._listen.is_set
        failures = 0
        reopen = False
        while not self._stop.is_set():
            if not listening():
                self._stay_muted()
                reopen = True
                continue
            try:
                if reopen:  # unmuted: a fresh stream (its latency may differ)
                    self._open_capture()
                    latency = getattr(self.capture, "latency_s", 0.0)
                    reopen = False
                chunk = read(block)
            except Exception as exc:  # device gone, overrun storms: keep the daemon alive
                self.capture_errors += 1
                failures += 1
                self._errors.warning("capture", "microphone read failed: %s",
                                     describe_error(exc))
                if failures >= FAILURES_BEFORE_REOPEN:
                    self.failed = f"the microphone keeps failing ({describe_error(exc)})"
                self._stop.wait(0.5)
                continue
            failures = 0
            now = time.monotonic() - latency
            for frame in push(uplink(chunk)):
                self.frames_captured += 1
                if cancel is not None:
                    frame = cancel(frame, now)  # never raises: bypassed on failure
                if tap is not None:
                    tap(frame)
                try:
                    self.frame_sink(frame, now)
                except Exception as exc:  # a bug downstream must not stop the microphone
                    self._errors.warning("sink", "handling a mic frame failed: %s",
                                         describe_error(exc))

    def _stay_muted(self) -> None:
        """Privacy mute, on the capture thread: close the stream, then wait (reading
        nothing) until unmuted or stopped."""
        close = getattr(self.capture, "close_input", None)
        if close is not None and self.capture_open:
            try:
                close()
                log.debug("capture stream closed (privacy mute)")
            except Exception as exc:
                self._errors.warning("close", "closing the microphone failed: %s",
                                     describe_error(exc))
        while not self._listen.wait(MUTED_WAIT_S) and not self._stop.is_set():
            self.muted_rounds += 1

    def _open_capture(self) -> None:
        """Reopen the capture stream after a mute; the partial frame and the resampler's
        history from before it are dropped (raises what the device raises)."""
        open_input = getattr(self.capture, "open_input", None)
        if open_input is not None:
            open_input()
        self._uplink.reset()
        self._framer.reset()
        self.capture_reopened += 1
        log.debug("capture stream reopened")

    def _player_loop(self) -> None:
        block = bytearray(frame_bytes(self.playback.rate))
        view = memoryview(block)
        samples = np.frombuffer(block, dtype="<i2")  # a view: no copy per block
        scratch = np.zeros(len(samples), dtype=np.float32)  # for its level
        read_into = self.buffer.read_into
        write = self.playback.write
        record = self.speaker.record
        latency = getattr(self.playback, "latency_s", 0.0)  # written now, heard this much later
        wait_writable = getattr(self.playback, "wait_writable", None)
        reference = self.echo.reference if self.echo is not None else None
        to_wire = self._reference_resampler
        mix = self.mixer.mix
        failures = 0
        while not self._stop.is_set():
            try:
                if wait_writable is not None:
                    wait_writable()
                audible = read_into(view) > 0  # the agent's voice (an earcon is no barge-in cue)
                earcon = mix(samples, audible)
                write(block)
            except Exception as exc:
                failures += 1
                self._errors.warning("playback", "speaker write failed: %s", describe_error(exc))
                if failures >= FAILURES_BEFORE_REOPEN:
                    self.failed = f"the speaker keeps failing ({describe_error(exc)})"
                self._stop.wait(0.5)
                continue
            failures = 0
            heard_at = time.monotonic() + latency
            record(heard_at, level_db(samples, scratch) if audible or earcon else SILENCE_DB,
                   audible)
            if reference is not None:
                reference.record(to_wire.process(block), heard_at)
            self.blocks_played += 1


def _open_echo_path(kind: str, rate: int, tail_ms: int) -> EchoPath | None:
    """The echo canceller ``kind`` in the capture path, or None (off, or its library is
    missing: one log line, and barge-in runs on the echo gate alone)."""
    try:
        canceller = open_canceller(kind, rate, tail_ms)
    except (EchoCancelUnavailable, ValueError) as exc:
        log.warning("echo cancellation %s unavailable: %s; running without it (barge-in "
                    "relies on the echo gate alone)", kind, exc,
                    extra={"event": "echo_cancel_off"})
        return None
    if canceller is None:
        return None
    log.info("echo cancellation: %s at %d Hz, %d ms tail", canceller.name, rate, tail_ms)
    return EchoPath(canceller, SpeakerReference(rate))
