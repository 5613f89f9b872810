"""The echo path: which speaker samples each microphone frame hears, and the canceller.

- :class:`StreamClock`: a smoothed sample-count -> instant mapping for a stream of blocks
  whose measured instants jitter (threads wake late); it follows slow drift and jumps on
  a real discontinuity (an xrun, a device reopen).
- :class:`SpeakerReference`: what the player handed to the device, resampled to the wire
  rate, in a ring with the instant each sample is heard. Written by the player thread,
  read by the capture thread; no lock (the count is published after the samples).
- :class:`EchoPath`: on the capture thread, for each 20 ms mic frame, the reference samples
  that were playing one echo delay ago go with it through the canceller. The delay (what the
  device latencies leave unexplained, plus the acoustic path) is re-measured every second
  by GCC-PHAT cross-correlation of mic and reference while the speaker plays, so clock
  drift and a changed latency are followed, not measured once. A canceller that fails is
  logged once and bypassed; the capture thread never sees its exceptions.

  What the canceller leaves (a lot during its first seconds in a room, little after) still
  sounds like speech to a voice detector, and an agent with its own turn detection would
  interrupt itself. So a residual echo gate follows, frame by frame, how loud the output
  is relative to the speaker's recent level while it plays (a high percentile, learnt
  continuously), and frames not clearly above that (``GATE_MARGIN_DB``) go to the wire
  ``GATE_ATTENUATION_DB`` down. The user talking over the agent is clearly above it; the
  barge-in detector gets the canceller's output before the gate.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgevoice.audio.frames import frame_samples
from edgevoice.logsetup import RateLimitedLog
from edgevoice.redact import describe_error

log = logging.getLogger(__name__)

JUMP_S = 0.03            # measured this far from the prediction …
JUMP_BLOCKS = 10         # … this many blocks in a row: a discontinuity
GAIN_EARLY = 0.3         # share of the prediction error corrected when measured early
GAIN_LATE = 0.01         # … and when measured late (a thread woke up late)
LEAD_S = 0.008           # the reference leads the echo by this much (the filter is causal)
MAX_DELAY_S = 0.3        # delays measured: -LEAD_S .. MAX_DELAY_S
WINDOW_S = 1.0           # audio correlated per measurement
MEASURE_EVERY = 50       # frames (1 s) between measurements
RETUNE_S = 0.004         # the delay moves only when a measurement differs by more
PHAT_MIN_SCORE = 6.0     # peak / mean |correlation| for a measurement to count
SPEAKER_MIN_RMS = 30.0   # reference RMS (PCM16) below this: the speaker is silent
FAILURES_TO_DISABLE = 50
SLIP_S = 0.003               # the reference stream jumps only when this far off its target
GATE_MARGIN_DB = 6.0         # louder than the residual echo by this much: the user
GATE_ATTENUATION_DB = 60.0   # a voice detector still hears speech 30 dB down
GATE_LEARN_UP, GATE_LEARN_DOWN = 0.2, 0.02  # asymmetric: follows ~the 90th percentile
QUIET_ECHO_DB = 20.0         # echo this far under the speaker's level is no worry
ENVELOPE_DECAY = 10.0 ** (-3.0 / 10.0)  # per frame: the speaker's level fades 150 dB/s


class StreamClock:
    """Instant of the end of the last block of a continuous stream of samples.

    A thread measures an instant after a blocking read or write returns: never early, but
    late by whatever delayed the thread. So the estimate follows measurements that come
    earlier than predicted quickly and later ones slowly (the lower envelope, which also
    follows clock drift), and it jumps only to a discontinuity that lasts (an underrun,
    a reopened device), not to one late wake-up."""

    __slots__ = ("rate", "count", "t_end", "_off")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.count = 0           # samples so far
        self.t_end: float | None = None
        self._off = 0            # consecutive blocks measured far from the prediction

    def advance(self, samples: int, t_end_measured: float) -> float:
        """Account a block of ``samples`` measured to end at ``t_end_measured``; returns
        the smoothed end instant."""
        self.count += samples
        if self.t_end is None:
            self.t_end = t_end_measured
            return self.t_end
        predicted = self.t_end + samples / self.rate
        error = t_end_measured - predicted
        self._off = self._off + 1 if abs(error) > JUMP_S else 0
        if self._off >= JUMP_BLOCKS:
            predicted, self._off = t_end_measured, 0
        elif abs(error) <= JUMP_S:
            predicted += (GAIN_EARLY if error < 0 else GAIN_LATE) * error
        self.t_end = predicted
        return predicted


class SpeakerReference:
    """The last few seconds of what the speaker played, at ``rate``, by sample index."""

    def __init__(self, rate: int, seconds: float = 4.0) -> None:
        self.rate = rate
        self._n = int(rate * seconds)
        self._ring = np.zeros(self._n, dtype="<i2")
        self._clock = StreamClock(rate)
        self.loud_end = 0  # samples written up to the end of the last block not all zeros
        self._published = (0, None)  # (samples written, instant the last one is heard)

    def record(self, pcm: bytes, t_start: float) -> None:
        """Player thread: ``pcm`` (PCM16 at ``rate``) starts being heard at ``t_start``."""
        samples = np.frombuffer(pcm, dtype="<i2")
        n = len(samples)
        if n == 0:
            return
        if n > self._n:
            samples, n = samples[-self._n:], self._n
        start = self._clock.count % self._n
        first = min(n, self._n - start)
        self._ring[start:start + first] = samples[:first]
        if first < n:
            self._ring[:n - first] = samples[first:]
        count = self._clock.count + n
        if np.count_nonzero(samples):  # (before publishing: never behind the count)
            self.loud_end = count
        t_end = self._clock.advance(n, t_start + n / self.rate)
        self._published = (self._clock.count, t_end)

    @property
    def written(self) -> int:
        """Samples recorded so far."""
        return self._published[0]

    def index_at(self, t: float) -> float | None:
        """Sample index heard at instant ``t`` (None before anything played)."""
        count, t_end = self._published
        if t_end is None:
            return None
        return count - (t_end - t) * self.rate

    def read_into(self, out: np.ndarray, end: int) -> None:
        """Samples [end - len(out), end) into ``out``; zeros where not held."""
        count = self._published[0]
        n = len(out)
        start = end - n
        lo, hi = max(start, count - self._n + self.rate // 10), min(end, count)
        out[:] = 0
        if hi <= lo:
            return
        a, b = lo % self._n, hi % self._n
        dst = out[lo - start:hi - start]
        if a < b:
            dst[:] = self._ring[a:b]
        else:
            split = self._n - a
            dst[:split] = self._ring[a:]
            dst[split:] = self._ring[:b]


def _power(pcm, scratch: np.ndarray) -> float:
    """Sum of squares of a PCM16 frame (bytes or int16 array), through ``scratch`` (a
    float32 array of the frame's length: no allocation per frame)."""
    x = np.frombuffer(pcm, dtype="<i2") if not isinstance(pcm, np.ndarray) else pcm
    if len(x) != len(scratch):  # (a frame of another size: the canceller refuses it)
        x = x.astype(np.float32)
        return float(np.dot(x, x))
    np.copyto(scratch, x, casting="unsafe")
    return float(np.dot(scratch, scratch))


def gcc_phat_lag(mic: np.ndarray, ref: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag L in [0, max_lag] with mic[n] ~ ref[n + max_lag - L] … put simply: ``ref`` is
    ``max_lag`` samples longer than ``mic`` at its start, and L is how many samples the mic
    lags the reference's last ``len(mic)`` samples. Returns (L, score); score is the peak
    over the mean absolute correlation (a clear echo scores well over 10)."""
    n = len(ref)
    size = 1 << (2 * n - 1).bit_length()
    # single precision (PCM16 needs no more) and in place: half the time of float64
    spec = np.fft.rfft(mic.astype(np.float32), size)
    other = np.fft.rfft(ref.astype(np.float32), size)
    np.conjugate(other, out=other)
    spec *= other
    mag = np.abs(spec)
    mag += 1e-9
    spec /= mag
    cc = np.fft.irfft(spec, size)
    # mic[i] = ref[i + k] correlates at lag -k: k = max_lag - L for L in 0..max_lag
    ks = np.arange(max_lag + 1)
    values = cc[(-ks) % size]
    best = int(np.argmax(values))
    score = float(values[best] / (np.mean(np.abs(cc)) + 1e-12))
    return max_lag - best, score


class EchoPath:
    """Runs the canceller on every mic frame with the aligned reference (capture thread)."""

    def __init__(self, canceller, reference: SpeakerReference) -> None:
        self.canceller = canceller
        self.reference = reference
        self.rate = reference.rate
        self.frame = frame_samples(self.rate)
        self._ref = np.zeros(self.frame, dtype="<i2")
        self._scratch = np.zeros(self.frame, dtype=np.float32)  # per-frame power sums
        self._clock = StreamClock(self.rate)
        self._ref_end: int | None = None
        self._slip = int(SLIP_S * self.rate)
        self.resyncs = 0              # jumps of the reference stream (timing, delay moves)
        self._hold_frames = getattr(canceller, "tail_ms", 500) // 20 + 5
        self._quiet_frames = self._hold_frames + 1  # silent reference frames in a row
        self.delay_s = 0.0          # measured speaker -> mic delay beyond the timestamps
        self.delay_measurements = 0
        self._pending: float | None = None
        w = int(WINDOW_S * self.rate) // self.frame * self.frame
        self._mic_hist = np.zeros(w, dtype="<i2")
        self._frames = 0
        self._last_end: float | None = None   # zero-lag reference index of the last frame
        self._failures = 0
        self._errors = RateLimitedLog(log, 30.0)
        self.bypassed = 0             # frames passed through uncancelled
        self.residual_db = 0.0        # output over the speaker's level, echo only (learnt)
        self.coupling_db = 0.0        # mic over the speaker's level, echo only (learnt)
        self.linear_db = 0.0          # the linear output over the speaker's level (learnt)
        self._atten = 10.0 ** (-GATE_ATTENUATION_DB / 20.0)
        self.gated_frames = 0         # frames the residual echo gate attenuated
        self._ref_env = 0.0           # the speaker's recent power, fading (reverberation)
        # the last frame as the barge-in detector should judge it: the canceller's linear
        # output where it has one (residual echo suppression ducks the user), else the same
        self.linear = b""
        self.disabled = ""

    def process(self, frame: bytes, t_end: float) -> bytes:
        """The frame with the echo removed (the frame itself if that cannot be done)."""
        t = self._clock.advance(len(frame) // 2, t_end)
        index = self.reference.index_at(t)
        if index is None or self.disabled:
            self.linear = frame
            return frame
        zero_lag_end = int(round(index))
        # the canceller needs one continuous reference stream: it advances a frame at a
        # time and jumps to the target only when timing or delay moved it by a few ms
        target = min(zero_lag_end - int(round((self.delay_s - LEAD_S) * self.rate)),
                     self.reference.written)  # not ahead of what the speaker was handed
        end = self._ref_end + self.frame if self._ref_end is not None else target
        if abs(end - target) > self._slip:
            end = target
            self.resyncs += 1
        self._ref_end = end
        if self._quiet_frames >= self._hold_frames and end - self.frame >= \
                self.reference.loud_end:
            # the aligned reference is all zeros (the speaker played silence there), so it
            # is quiet without reading it: save the copy and the sum
            self._quiet_frames += 1
            self.linear = frame
            return frame
        self.reference.read_into(self._ref, end)
        scratch = self._scratch
        ref_pow = _power(self._ref, scratch)
        if ref_pow > SPEAKER_MIN_RMS ** 2 * self.frame:
            self._quiet_frames = 0
        else:
            self._quiet_frames += 1
            if self._quiet_frames > self._hold_frames:  # no echo left to cancel: save the CPU
                self.linear = frame
                return frame
        try:
            out = self.canceller.process(frame, self._ref.tobytes())
        except Exception as exc:  # a bad frame or a broken library: never the capture thread
            self.bypassed += 1
            self._failures += 1
            self._errors.warning("aec", "echo cancellation failed, frame sent as heard: %s",
                                 describe_error(exc))
            if self._failures >= FAILURES_TO_DISABLE:
                self.disabled = describe_error(exc)
                log.error("echo cancellation keeps failing (%s); off until the sound devices "
                          "are reopened, the echo gate alone guards barge-in", self.disabled,
                          extra={"event": "echo_cancel_off"})
            self.linear = frame
            return frame
        self._failures = 0
        # a canceller that misadapted (the user talking over the agent teaches it a bit of
        # the user) can subtract an echo that is not there: never hand on a frame louder
        # than the mic heard it
        # (each frame's power is computed once and handed on to the gate)
        mic_pow = _power(frame, scratch)
        linear = getattr(self.canceller, "last_linear", None) or out
        lin_pow = _power(linear, scratch) if linear is not out else None
        out_pow = _power(out, scratch)
        if lin_pow is None:
            lin_pow = out_pow
        self.linear = linear if lin_pow <= mic_pow else frame
        if self.linear is frame:
            lin_pow = mic_pow
        if out_pow > mic_pow:
            out, out_pow = frame, mic_pow
        self._track(frame, zero_lag_end)
        return self._residual_gate(out, ref_pow, mic_pow, out_pow, lin_pow)

    def _residual_gate(self, out: bytes, ref_pow: float, mic_pow: float, out_pow: float,
                       lin_pow: float) -> bytes:
        """Attenuate output frames that are no louder than the residual echo tends to be.
        The powers (sums of squares over the frame) are those of the reference, the mic
        frame, ``out`` and :attr:`linear`."""
        n = self.frame
        env = self._ref_env = max(ref_pow / n, self._ref_env * ENVELOPE_DECAY)
        if env < SPEAKER_MIN_RMS ** 2:
            return out  # the speaker is silent and its reverberation has died away
        out_db = 10.0 * math.log10((out_pow / n + 1.0) / env)
        mic_db = 10.0 * math.log10((mic_pow / n + 1.0) / env)
        # the user: both the mic and the output clearly above what echo alone gives them
        # (an unconverged canceller can leave a burst of echo; the mic level still shows it)
        out_excess, mic_excess = out_db - self.residual_db, mic_db - self.coupling_db
        if out_excess > GATE_MARGIN_DB and mic_excess > GATE_MARGIN_DB:
            return out
        self.residual_db += (GATE_LEARN_UP if out_excess > 0 else GATE_LEARN_DOWN) * out_excess
        self.coupling_db += (GATE_LEARN_UP if mic_excess > 0 else GATE_LEARN_DOWN) * mic_excess
        if self.linear is not out:
            lin_excess = 10.0 * math.log10((lin_pow / n + 1.0) / env) - self.linear_db
        else:
            lin_excess = out_excess
        self.linear_db += (GATE_LEARN_UP if lin_excess > 0 else GATE_LEARN_DOWN) * lin_excess
        self.gated_frames += 1
        cleaned = self._scratch
        np.copyto(cleaned, np.frombuffer(out, dtype="<i2"), casting="unsafe")
        cleaned *= self._atten
        return cleaned.astype("<i2").tobytes()

    @property
    def reduction_db(self) -> float:
        """How much the canceller's linear output is below the mic on echo (learnt; ~0
        while it has not converged): how far the barge-in detector can trust it. A mic
        that hardly hears the speaker (a headset, far apart) needs no canceller to trust."""
        return max(self.coupling_db - self.linear_db, -(self.coupling_db + QUIET_ECHO_DB))

    # -- delay tracking ---------------------------------------------------------------------
    def _track(self, frame: bytes, zero_lag_end: int) -> None:
        n = self.frame
        if len(frame) != 2 * n:
            return
        hist = self._mic_hist
        hist[:-n] = hist[n:]
        hist[-n:] = np.frombuffer(frame, dtype="<i2")
        self._frames += 1
        self._last_end = zero_lag_end
        if self._frames >= len(hist) // n and self._frames % MEASURE_EVERY == 0:
            self.measure_delay()

    def measure_delay(self) -> float | None:
        """One GCC-PHAT measurement over the last second; moves :attr:`delay_s` when two
        measurements in a row agree on a new value. Returns the measured delay or None."""
        if self._last_end is None:
            return None
        rate = self.rate
        lead, max_lag = int(LEAD_S * rate), int(MAX_DELAY_S * rate)
        w = len(self._mic_hist)
        ref = np.zeros(w + max_lag + lead, dtype="<i2")
        self.reference.read_into(ref, self._last_end + lead)
        if np.sqrt(np.mean(ref[-w:].astype(np.float64) ** 2)) < SPEAKER_MIN_RMS:
            return None
        lag, score = gcc_phat_lag(self._mic_hist, ref, max_lag + lead)
        if score < PHAT_MIN_SCORE:
            return None
        measured = (lag - lead) / rate
        self.delay_measurements += 1
        if abs(measured - self.delay_s) > RETUNE_S:
            if self._pending is not None and abs(measured - self._pending) <= RETUNE_S / 2:
                log.debug("echo delay %.1f ms -> %.1f ms", self.delay_s * 1e3, measured * 1e3)
                self.delay_s = measured
                self._pending = None
            else:
                self._pending = measured
        else:
            self._pending = None
        return measured
