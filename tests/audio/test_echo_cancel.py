"""The echo cancellers' bindings and the echo path (alignment, delay tracking, failures)."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from edgevoice.audio import echo_cancel
from edgevoice.audio.bargein import BargeInDetector, BargeInSettings, SpeakerLevels, level_db
from edgevoice.audio.echo_cancel import (EchoCancelUnavailable, FrameSizeError, SpeexCanceller,
                                         open_canceller)
from edgevoice.audio.echo_path import EchoPath, SpeakerReference, gcc_phat_lag
from edgevoice.audio.engine import AudioEngine


def _speechlike(n: int, rate: int, seed: int = 1) -> np.ndarray:
    """Coloured noise with a syllable-like envelope, PCM16 range."""
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.standard_normal(n), np.ones(6) / 6, "same")
    env = np.abs(np.sin(np.arange(n) / rate * 2 * np.pi * 2.0)) ** 0.5
    return x * env * 4000.0


def _room(rate: int, delay_s: float, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = np.zeros(int((delay_s + 0.06) * rate))
    d = int(delay_s * rate)
    h[d] = 0.7
    tail = np.arange(len(h) - d - 1)
    h[d + 1:] += rng.standard_normal(len(tail)) * np.exp(-tail / (0.015 * rate)) * 0.1
    return h


def _erle(mic: np.ndarray, out: np.ndarray) -> float:
    return 10 * np.log10(np.mean(mic.astype(float) ** 2) / max(np.mean(out.astype(float) ** 2),
                                                                1e-9))


@pytest.mark.parametrize("rate", [16000, 24000])
def test_speex_removes_a_linear_echo(rate):
    n = rate * 6
    ref = _speechlike(n, rate)
    mic = np.convolve(ref, _room(rate, 0.004))[:n]
    ref16, mic16 = ref.astype("<i2"), np.clip(mic, -32768, 32767).astype("<i2")
    c = SpeexCanceller(rate)
    f = c.frame_samples
    out = np.concatenate([np.frombuffer(c.process(mic16[i:i + f].tobytes(),
                                                  ref16[i:i + f].tobytes()), dtype="<i2")
                          for i in range(0, n - f + 1, f)])
    c.close()
    half = slice(n // 2, len(out))
    assert _erle(mic16[half], out[half]) > 25


def test_wrong_frame_sizes_are_a_clear_error_not_a_crash():
    c = SpeexCanceller(16000)
    with pytest.raises(FrameSizeError, match="640-byte frames at 16000 Hz"):
        c.process(bytes(480), bytes(640))
    with pytest.raises(FrameSizeError):
        c.process(bytes(640), bytes(638))
    assert len(c.process(bytes(640), bytes(640))) == 640  # still usable afterwards
    c.close()
    with pytest.raises(RuntimeError, match="closed"):
        c.process(bytes(640), bytes(640))
    with pytest.raises(ValueError, match="whole 20 ms"):
        SpeexCanceller(16001)


def test_reopen_at_another_rate():
    first = open_canceller("speex", 16000)
    first.process(bytes(640), bytes(640))
    first.close()
    second = open_canceller("speex", 24000)
    assert second.frame_bytes == 960
    assert len(second.process(bytes(960), bytes(960))) == 960
    with pytest.raises(FrameSizeError):
        second.process(bytes(640), bytes(640))  # a frame of the old rate
    second.close()
    assert open_canceller("off", 16000) is None
    with pytest.raises(ValueError, match="unknown echo canceller"):
        open_canceller("nope", 16000)


def test_missing_speexdsp_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(echo_cancel.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(EchoCancelUnavailable, match="apt install libspeexdsp1"):
        echo_cancel.load_speexdsp(("libspeexdsp-not-here.so.9",))


def test_missing_livekit_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "livekit", None)  # import fails as if not installed
    with pytest.raises(EchoCancelUnavailable, match="pip install livekit"):
        open_canceller("webrtc", 16000)


class _SilentDevice:
    rate = 16000

    def close(self) -> None:
        pass


def test_engine_without_the_library_runs_on_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "livekit", None)
    with caplog.at_level(logging.WARNING):
        engine = AudioEngine(_SilentDevice(), _SilentDevice(), 16000, 1.0, "webrtc")
    assert engine.echo is None
    lines = [r.getMessage() for r in caplog.records if "echo cancellation" in r.getMessage()]
    assert len(lines) == 1 and "echo gate alone" in lines[0]


class _Broken:
    name = "broken"

    def process(self, mic: bytes, ref: bytes) -> bytes:
        raise OSError("library fell over")

    def close(self) -> None:
        pass


def test_echo_path_passes_frames_through_when_the_canceller_fails(caplog):
    ref = SpeakerReference(16000)
    path = EchoPath(_Broken(), ref)
    frame = np.arange(320, dtype="<i2").tobytes()
    outs = []
    with caplog.at_level(logging.WARNING):
        for k in range(60):  # the speaker plays: the canceller is asked every frame
            ref.record(frame, 100.0 + 0.02 * k)
            outs.append(path.process(frame, 100.02 + 0.02 * k))
    assert all(o == frame for o in outs)
    assert path.bypassed == 50 and path.disabled  # given up after 50 failures in a row
    assert any("keeps failing" in r.getMessage() for r in caplog.records)
    # a frame of the wrong size through a real canceller: passed through, no exception
    path = EchoPath(SpeexCanceller(16000), ref)
    assert path.process(bytes(100), 101.22) == bytes(100)


def test_the_canceller_rests_while_the_speaker_is_silent():
    ref = SpeakerReference(16000)
    calls = []

    class Counting(_Broken):
        def process(self, mic: bytes, reference: bytes) -> bytes:
            calls.append(1)
            return mic

    path = EchoPath(Counting(), ref)
    frame = np.arange(320, dtype="<i2").tobytes()
    for k in range(100):  # 1 s of speech, then 1 s of silence
        ref.record(frame if k < 50 else bytes(640), 100.0 + 0.02 * k)
        path.process(frame, 100.02 + 0.02 * k)
    # speech, then the canceller's tail (the room still rings), then nothing
    assert 50 + 25 <= len(calls) <= 50 + 35


def test_a_silent_speaker_is_not_read_once_the_canceller_rests():
    reads = []

    class CountingReference(SpeakerReference):
        def read_into(self, out, end):
            reads.append(end)
            super().read_into(out, end)

    calls = []

    class Counting(_Broken):
        def process(self, mic: bytes, reference: bytes) -> bytes:
            calls.append(1)
            return mic

    ref = CountingReference(16000)
    path = EchoPath(Counting(), ref)
    frame = np.arange(320, dtype="<i2").tobytes()
    for k in range(150):  # 1 s of speech, 1 s of silence, 1 s of speech again
        ref.record(frame if k < 50 or k >= 100 else bytes(640), 100.0 + 0.02 * k)
        path.process(frame, 100.02 + 0.02 * k)
        if k == 99:
            resting = (len(reads), len(calls))
    # while resting on digital silence the reference is not even read …
    assert resting[0] < 100 - 10 and resting[1] < 100 - 10
    # … and the canceller is back as soon as the speaker plays again
    assert len(calls) - resting[1] >= 48


def test_gcc_phat_finds_the_lag():
    rate = 16000
    ref = _speechlike(rate * 2, rate, seed=5)
    d = int(0.037 * rate)
    mic = ref[rate - d:2 * rate - d]  # the mic hears the reference 37 ms late
    lag, score = gcc_phat_lag(mic, ref[:2 * rate][rate - 4800:], 4800)
    assert lag == d and score > 10


def test_echo_path_tracks_a_delay_the_timestamps_do_not_show():
    """The speaker is heard 150 ms later than its timestamps say (an unreported device
    latency), beyond the canceller's 100 ms filter: the path measures that and cancels."""
    rate, f = 16000, 320
    ref_signal = _speechlike(rate * 8, rate, seed=3).astype("<i2")
    mic_signal = np.convolve(ref_signal.astype(float), _room(rate, 0.150))[:len(ref_signal)]
    mic_signal = np.clip(mic_signal, -32768, 32767).astype("<i2")
    reference = SpeakerReference(rate)
    path = EchoPath(SpeexCanceller(rate, tail_ms=100), reference)
    outs = []
    for k in range(len(ref_signal) // f):
        t = 10.0 + k * 0.02
        reference.record(ref_signal[k * f:(k + 1) * f].tobytes(), t)
        outs.append(np.frombuffer(path.process(mic_signal[k * f:(k + 1) * f].tobytes(),
                                               t + 0.02), dtype="<i2"))
    assert abs(path.delay_s - 0.150) < 0.003, path.delay_s
    out = np.concatenate(outs)
    last = slice(len(out) - 2 * rate, len(out))
    assert _erle(mic_signal[last], out[last]) > 20


# -- the detector's fast path on a cleaned signal ---------------------------------------------
def _cleaned_run(detector, speaker, user: np.ndarray, user_at: int, frames: int = 150):
    """The agent plays speech; the mic (after a canceller) hears only what is left: a
    residual 35 dB under the speaker, noise, and ``user`` from frame ``user_at``."""
    from tests.support.bargein import speech
    agent = np.concatenate([speech()] * 3)
    rng = np.random.default_rng(4)
    decisions = []
    for i in range(frames):
        t = 100.0 + i * 0.02
        block = agent[i * 320:(i + 1) * 320]
        speaker.record(t - 0.02, level_db(block), True)
        mic = block * 10 ** (-35 / 20) + rng.standard_normal(320) * 20
        k = i - user_at
        if 0 <= k and (k + 1) * 320 <= len(user):
            mic = mic + user[k * 320:(k + 1) * 320]
        decision = detector.process(np.clip(mic, -32768, 32767).astype("<i2").tobytes(), t,
                                    30.0)
        if decision:
            decisions.append((i, decision))
    return decisions


def test_fast_onset_pauses_on_the_first_loud_frame_and_voice_confirms_it():
    from tests.support.bargein import speech
    speaker = SpeakerLevels()
    detector = BargeInDetector(BargeInSettings(), 16000, speaker, confirm_locally=False)
    user = speech() * 0.5
    decisions = _cleaned_run(detector, speaker, user, user_at=80)
    assert decisions and decisions[0][1] == "pause"
    assert decisions[0][0] == 80  # on the first frame (voice detection alone needs three)
    assert "resume" not in [d for _, d in decisions]


def test_a_click_pauses_provisionally_and_resumes_at_once():
    speaker = SpeakerLevels()
    detector = BargeInDetector(BargeInSettings(), 16000, speaker, confirm_locally=False)
    click = np.zeros(320 * 2)
    click[10:40] = 20000  # one loud non-speech tick
    decisions = _cleaned_run(detector, speaker, click, user_at=80)
    assert [d for _, d in decisions] == ["pause", "resume"]
    (paused, _), (resumed, _) = decisions
    assert resumed - paused <= BargeInSettings().provisional_ms // 20 + 1
    assert detector.false_barge_ins == 1
