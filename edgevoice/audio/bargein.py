"""Local barge-in: is the user talking over the agent, judged frame by frame on the device.

Two parts, both without threads of their own:

- :class:`SpeakerLevels`: the player records the level (dBFS) of every block it plays and
  the instant the block reaches the speaker. The capture side asks "how loud was the
  speaker one echo path ago?".
- :class:`BargeInDetector`: for each 20 ms mic frame while the agent is audible, webrtcvad
  says whether it is speech, and an **echo gate** says whether the mic is louder than the
  agent's own voice coming back would make it: ``mic_db - speaker_db(t - echo delay)``
  must exceed the learned echo coupling by ``gate_margin_db``. The coupling is learned
  while the agent talks (the 90th percentile of mic-minus-speaker level; echo-only frames
  dominate), so loud speakers next to the mic and quiet ones across the room both work.
  During a warm-up after the agent starts speaking the gate is stricter. The echo delay
  is configured or measured once per session (cross-correlating mic and speaker level
  tracks). Older speaker blocks count less (a fading max-hold), and frames well above the
  learnt coupling are not learnt (they are the user). ``scripts/bench`` measures it all.

The decisions (:class:`Decision`: pause, flush, resume) are carried out by the session:
pause playback at onset, flush on the server's interruption event (or, for dialects
without one, on speech lasting ``confirm_ms``), resume where playback paused when
nothing confirms within ``resume_timeout_ms`` and the user is silent again.
"""

from __future__ import annotations

import collections
import math
import threading
from enum import StrEnum

import numpy as np
import soxr
import webrtcvad

# one class for the [barge_in] section and the detector (the keys are documented there)
from edgevoice.config.sections import BargeInSettings  # noqa: F401  (also imported from here)

SILENCE_DB = -100.0
VAD_RATES = (8000, 16000, 32000, 48000)
MIC_FLOOR_DB = -70.0         # quieter than this is "nothing" (no room is that quiet)
SPEAKER_ACTIVE_DB = -60.0    # the speaker counts as playing above this
MAX_DELAY_S = 0.24           # echo delays considered before one is measured
MIN_LEARNT_FRAMES = 25       # half a second of playback before the coupling is trusted
COUPLING_PERCENTILE = 0.9
LEARN_ABOVE_DB = 3.0         # frames this far over the learnt coupling are not echo: skip
FADE_DB_PER_S = 80.0         # how fast an older speaker block loses weight as echo evidence
DELAY_EVERY_FRAMES = 50      # try to measure the echo delay every second until it is known
TRUSTED_REDUCTION_DB = 8.0  # a canceller removing less than this gets a stricter gate
QUIET_LOUD_DBFS = -45.0      # the speaker silent: a frame this loud is a fast onset
FLOOR_MARGIN_DB = 6.0        # the noise floor fluctuates this much
QUIET_SPEAKER_DB = 30.0      # a speaker this far over the mic's floor would be heard
FLOOR_RISE_DB = 0.02         # per frame (1 dB/s): the floor tracker follows a louder room


def level_db(pcm: bytes | np.ndarray, scratch: np.ndarray | None = None) -> float:
    """RMS level of PCM16 in dBFS (-100 for digital silence). ``scratch``: a float32 array
    of the same length to work in (no allocation: for the 20 ms path)."""
    samples = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, (bytes, bytearray,
                                                                   memoryview)) else pcm
    if len(samples) == 0:
        return SILENCE_DB
    if scratch is not None and len(scratch) == len(samples):
        x = scratch
        np.copyto(x, samples, casting="unsafe")
    else:
        x = samples.astype(np.float32)
    power = float(np.dot(x, x)) / len(x)
    return 10.0 * math.log10(power / (32768.0 ** 2)) if power > 0 else SILENCE_DB


class SpeakerLevels:
    """What the speaker played and when: (play instant, level dB) of the last few seconds.

    Written by the player thread (one block at a time), read by the capture thread. The
    arrays are preallocated; a reader may see a block a moment late, never a torn one that
    matters (the level is written before the time that makes it visible).
    """

    def __init__(self, seconds: float = 4.0, block_s: float = 0.02) -> None:
        n = max(16, int(seconds / block_s))
        self._t = [0.0] * n
        self._db = [SILENCE_DB] * n
        self._n = n
        self._count = 0
        self.block_s = block_s
        self.last_audible = -1e9  # instant the last block with real agent audio played

    def record(self, play_time: float, db: float, audible: bool) -> None:
        i = self._count % self._n
        self._db[i] = db
        self._t[i] = play_time
        self._count += 1
        if audible:
            self.last_audible = play_time

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(play instants, levels) of the blocks held, oldest first."""
        count, n = self._count, self._n
        order = [k % n for k in range(max(0, count - n), count)]
        return np.array([self._t[i] for i in order]), np.array([self._db[i] for i in order])

    def max_db(self, start: float, end: float, fresh_from: float | None = None,
               fade_db_per_s: float = 0.0) -> float:
        """Loudest block playing at any time in [start, end]. With ``fresh_from``, a block
        that ended ``age`` seconds before that instant counts ``fade_db_per_s * age`` dB
        quieter (reverberation dies away; an old loud word is weaker evidence of echo)."""
        best = SILENCE_DB
        count, n = self._count, self._n
        times, levels, block = self._t, self._db, self.block_s
        for k in range(count - 1, max(-1, count - n - 1), -1):  # newest first
            i = k % n
            t = times[i]
            if t + block < start:
                break  # everything older is older still
            if t <= end:
                level = levels[i]
                if fresh_from is not None and t + block < fresh_from:
                    level -= fade_db_per_s * (fresh_from - t - block)
                if level > best:
                    best = level
        return best


class Decision(StrEnum):
    """What the detector asks the session to do with the agent's voice."""

    PAUSE = "pause"    #: the user may be talking: hold playback where it is
    RESUME = "resume"  #: nothing confirmed it: play on from where it paused
    FLUSH = "flush"    #: confirmed: drop the rest of the response


class DetectorState(StrEnum):
    IDLE = "idle"        #: watching the agent's voice for the user
    PAUSED = "paused"    #: paused, waiting for confirmation
    FLUSHED = "flushed"  #: the response was dropped; waiting for the next one


class BargeInDetector:
    """Frame-by-frame decisions; call :meth:`process` from the capture thread."""

    FRAME_S = 0.02

    def __init__(self, settings: BargeInSettings, rate: int, speaker: SpeakerLevels,
                 confirm_locally: bool) -> None:
        self.s = settings
        self.rate = rate
        self.speaker = speaker
        self.confirm_locally = confirm_locally
        self._vad = webrtcvad.Vad(settings.vad_mode)
        self._scratch = np.zeros(rate // 50, dtype=np.float32)  # a frame's level, in place
        # webrtcvad takes 8/16/32/48 kHz: a multiple of 8 kHz (24 kHz) is averaged down to
        # 8 kHz for it, any other rate (22.05, 44.1 kHz) resampled to 16 kHz (decimate 0)
        if rate in VAD_RATES:
            self._vad_rate, self._decimate = rate, 1
        elif rate % 8000 == 0:
            self._vad_rate, self._decimate = 8000, rate // 8000
        else:
            self._vad_rate, self._decimate = 16000, 0
        self._lock = threading.Lock()
        self._diffs: collections.deque[float] = collections.deque(maxlen=100)  # ~2 s of playback
        self.coupling_db = settings.initial_coupling_db
        self.echo_delay_s = settings.echo_delay_ms / 1000.0
        self._delay_known = settings.echo_delay_ms > 0
        self._mic_track: collections.deque[tuple[float, float]] = collections.deque(maxlen=60)
        self._tracked = 0
        self.state = DetectorState.IDLE
        self._run = 0             # consecutive gate-passing speech frames
        self._voiced_ms = 0       # speech since the pause
        self._quiet_ms = 0        # silence since the last speech frame while paused
        self._paused_ms = 0
        self._agent_started: float | None = None
        self._untrusted_db = 0.0
        self._loud_run = 0        # consecutive frames far above the echo (fast onset)
        self._provisional = False  # paused on loudness, voice detection not yet confirming
        self._confirming = 0
        self._last_diff: float | None = None
        self._floor_db: float | None = None  # noise floor of the frames judged (tracked)
        self._since_pause: list[float] = []  # mic-minus-speaker levels heard while paused
        # counters for logs and the bench
        self._flushed_at = 0.0
        self.pauses = 0
        self.false_barge_ins = 0
        self.onset_frames_ago = 0       # at the last PAUSE: frames since its speech began
        self.resumed_on_echo = False    # at the last RESUME: the pause was loudness alone
        self.flushes = 0

    # -- the per-frame entry point ----------------------------------------------------------
    def process(self, frame: bytes, t_end: float, echo_reduction_db: float | None = None
                ) -> Decision | None:
        """Judge one mic frame that ended at ``t_end`` (monotonic). Returns a
        :class:`Decision` or None. ``echo_reduction_db``: how much the echo canceller that
        cleaned the frame removes so far (None: no canceller); while it is still learning
        the room, its output is uneven and the gate asks for more margin."""
        self._untrusted_db = (0.0 if echo_reduction_db is None else
                              max(0.0, TRUSTED_REDUCTION_DB - echo_reduction_db))
        if self.state is DetectorState.FLUSHED and self.speaker.last_audible > self._flushed_at:
            self.state = DetectorState.IDLE  # a new response is playing: watch it again
            self._run = 0
            self._agent_started = None
        audible = t_end - self.speaker.last_audible < 0.3
        if not audible and self.state is DetectorState.IDLE:
            self._agent_started = None
            self._run = 0
            return None
        if self._agent_started is None:
            self._agent_started = t_end
        samples = np.frombuffer(frame, dtype="<i2")
        mic_db = level_db(samples, self._scratch)
        speech = self._is_speech(samples, frame)
        excess = self._gate(mic_db, t_end, speech) if self.s.gate else 1.0
        loud = (echo_reduction_db is not None and self.s.fast_onset and self.s.gate
                and excess > self.s.fast_margin_db)
        with self._lock:
            return self._step(speech, speech and excess > 0, loud)

    def _is_speech(self, samples: np.ndarray, pcm: bytes) -> bool:
        """``samples``: the frame ``pcm`` as int16 (at a VAD rate ``pcm`` goes as it is)."""
        if self._decimate > 1:
            n = len(samples) // self._decimate * self._decimate
            pcm = samples[:n].reshape(-1, self._decimate).mean(axis=1).astype("<i2").tobytes()
        elif self._decimate == 0:
            pcm = soxr.resample(samples, self.rate, self._vad_rate).astype("<i2").tobytes()
        elif type(pcm) is not bytes:  # (an array, a bytearray: webrtcvad takes bytes)
            pcm = samples.tobytes()
        try:
            return self._vad.is_speech(pcm, self._vad_rate)
        except Exception:  # a frame webrtcvad cannot take is not speech
            return False

    def _gate(self, mic_db: float, t_end: float, speech: bool) -> float:
        """How far (dB) the frame is above what echo alone would give: > 0 passes.
        What is left of an echo that a canceller removed sits at the noise floor, and
        the floor over a quiet stretch of speech is a large mic-minus-speaker difference:
        the expected level is the echo's or the floor's, whichever is higher."""
        mic_db = max(mic_db, MIC_FLOOR_DB)
        floor = self._floor_db = (mic_db if self._floor_db is None or mic_db < self._floor_db
                                  else self._floor_db + FLOOR_RISE_DB)
        tail = self.s.echo_tail_ms / 1000.0
        frame = self.FRAME_S
        if self._delay_known:
            delay = self.echo_delay_s
            source = t_end - frame - delay  # what played then is what the mic hears now
            ref_db = self.speaker.max_db(source - tail, t_end - delay, source, FADE_DB_PER_S)
        else:  # the echo may come from anything played over every plausible delay
            source = t_end - frame - MAX_DELAY_S
            ref_db = self.speaker.max_db(source - tail, t_end, source, FADE_DB_PER_S)
        if not self._delay_known:
            self._mic_track.append((t_end, mic_db))
            self._tracked += 1
            if self._tracked % DELAY_EVERY_FRAMES == 0:
                self._measure_delay()
        self._last_diff = None
        if ref_db <= SPEAKER_ACTIVE_DB:  # the speaker was silent: no echo to mistake for the user
            return max(0.1, mic_db - max(QUIET_LOUD_DBFS, floor + 2 * FLOOR_MARGIN_DB))
        diff = mic_db - ref_db
        above_floor = mic_db > floor + FLOOR_MARGIN_DB
        self._last_diff = diff if above_floor else None
        if above_floor or ref_db > floor + QUIET_SPEAKER_DB:
            self._learn(diff)  # (at the floor under a quiet speaker it says nothing)
        margin = self.s.gate_margin_db + self._untrusted_db
        if self._agent_started is not None and t_end - self._agent_started < \
                self.s.warmup_ms / 1000.0:
            margin += self.s.warmup_extra_db
        expected = max(ref_db + self.coupling_db, floor + FLOOR_MARGIN_DB)
        return mic_db - expected - margin

    def _learn(self, diff: float) -> None:
        """Echo coupling = 90th percentile of mic-minus-speaker level over the last ~2 s in
        which the speaker was active. The speaker level is the loudest block over the echo
        window, so echo alone never comes out above the true coupling, only below it (quiet
        syllables against a loud window): a high percentile finds the true value. Once it is
        known, frames well above it are the user, not echo, and are not learnt (otherwise a
        user who was not caught at once would teach the gate their own voice). A mic that
        hears no echo at all (a headset, the file backend) drives it far down, so the user
        always passes."""
        diffs = self._diffs
        if len(diffs) >= MIN_LEARNT_FRAMES and diff > self.coupling_db + LEARN_ABOVE_DB:
            return
        diffs.append(diff)
        if len(diffs) >= MIN_LEARNT_FRAMES:
            ordered = sorted(diffs)
            self.coupling_db = ordered[int(len(ordered) * COUPLING_PERCENTILE)]

    def _measure_delay(self) -> None:
        """Measure the echo delay: the lag (0-240 ms) at which the speaker's level track
        best matches the mic's over the last second or so. Measured once per session (the
        bench showed re-measuring mid-answer occasionally picks a wrong lag and lets echo
        through); until then the gate considers every plausible delay. Vectorised: it runs
        on the capture thread."""
        if len(self._mic_track) < 50:
            return
        track = np.array(self._mic_track)
        times, mic = track[:, 0], track[:, 1]
        if mic.std() < 3.0:
            return
        block_t, block_db = self.speaker.snapshot()
        if len(block_t) < 2:
            return
        lags = np.arange(13) * self.FRAME_S
        # the block playing at the middle of each frame's source interval, for every lag
        instants = times[:, None] - self.FRAME_S / 2 - lags[None, :]
        idx = np.searchsorted(block_t, instants, side="right") - 1
        valid = (idx >= 0) & (instants <= block_t[np.clip(idx, 0, None)] + self.speaker.block_s)
        ref = np.where(valid, block_db[np.clip(idx, 0, None)], SILENCE_DB)
        best, best_lag = 0.6, None  # demand a clear match
        for j, lag in enumerate(lags):
            column = ref[:, j]
            if column.std() < 3.0:
                continue
            r = float(np.corrcoef(mic, column)[0, 1])
            if r > best:
                best, best_lag = r, float(lag)
        if best_lag is not None:
            self.echo_delay_s = best_lag
            self._delay_known = True

    # -- the state machine --------------------------------------------------------------------
    def _step(self, speech: bool, user: bool, loud: bool = False) -> Decision | None:
        ms = int(self.FRAME_S * 1000)
        if self.state is DetectorState.IDLE:
            self._run = self._run + 1 if user else 0
            self._loud_run = self._loud_run + 1 if loud else 0
            confirmed = self._run >= self.s.onset_frames
            if confirmed or self._loud_run >= self.s.fast_frames:
                # the run's first frame ended this many frames before the current one
                self.onset_frames_ago = max(self._run, self._loud_run) - 1
                self._provisional = not confirmed
                self._confirming = self._run
                self._loud_run = 0
                self._since_pause.clear()
                self.state = DetectorState.PAUSED
                self.pauses += 1
                self._voiced_ms = self._run * ms
                self._quiet_ms = 0
                self._paused_ms = 0
                self._run = 0
                return Decision.PAUSE
            return None
        if self.state is DetectorState.PAUSED:
            self._paused_ms += ms
            if self._last_diff is not None and len(self._since_pause) < 100:
                self._since_pause.append(self._last_diff)
            if self._provisional:  # paused on loudness alone: voice must confirm it soon
                self._confirming = self._confirming + 1 if user else self._confirming
                if self._confirming >= self.s.confirm_frames:
                    self._provisional = False
                elif self._paused_ms >= self.s.provisional_ms:
                    return self._false_alarm(learn=True)
            if speech:
                self._voiced_ms += ms
                self._quiet_ms = 0
            else:
                self._quiet_ms += ms
            if self.confirm_locally and self._voiced_ms >= self.s.confirm_ms:
                self.state = DetectorState.FLUSHED
                self._flushed_at = self.speaker.last_audible
                self.flushes += 1
                return Decision.FLUSH
            if (self._paused_ms >= self.s.resume_timeout_ms
                    and self._quiet_ms >= self.s.silence_to_resume_ms):
                return self._false_alarm(learn=False)
            return None
        return None  # flushed: waiting for the next response to play

    def _false_alarm(self, learn: bool) -> Decision:
        """Nothing confirmed the pause: resume. A pause on loudness alone that voice
        detection never confirmed was echo after all (a canceller that lost track leaves
        more than the gate learnt, and frames far above it are not learnt): ``learn`` from
        the frames heard while paused. A pause that voice started is not learnt from: it
        may have been the user (a backchannel the server did not take as an interruption),
        and learning the user's level as echo would lock the user out."""
        if learn:
            self._diffs.extend(self._since_pause)
        if learn and len(self._diffs) >= MIN_LEARNT_FRAMES:
            ordered = sorted(self._diffs)
            self.coupling_db = ordered[int(len(ordered) * COUPLING_PERCENTILE)]
        self.state = DetectorState.IDLE
        self._run = 0
        self.false_barge_ins += 1
        self.resumed_on_echo = learn
        return Decision.RESUME

    def confirmed(self) -> None:
        """The server's interruption event arrived and playback was flushed: the
        response is over, whether or not the local path had paused it."""
        with self._lock:
            if self.state is DetectorState.PAUSED:
                self.flushes += 1
            self.state = DetectorState.FLUSHED
            self._flushed_at = self.speaker.last_audible
