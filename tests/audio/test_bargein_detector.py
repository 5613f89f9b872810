"""The barge-in detector frame by frame: levels, the speaker's history, the echo gate (learnt
coupling, margin, warm-up, echo delay and tail), the echo-delay measurement, and the
pause → flush / resume state machine with its counters.

The detector's voice detection is webrtcvad; a twin webrtcvad fed the same frames tells the
test which frames it calls speech, so expectations are exact without faking the library.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgevoice.audio.bargein import SILENCE_DB, BargeInSettings, SpeakerLevels, level_db
from tests.support import question
from tests.support.bargein import FRAME, SPEECH, T0, VOICED, ZERO, Bench, talk


# -- levels and the speaker's history ---------------------------------------------------------
def test_level_db():
    assert level_db(b"") == SILENCE_DB and level_db(bytes(640)) == SILENCE_DB
    full = np.full(320, 32767, dtype="<i2")
    assert level_db(full) == pytest.approx(0.0, abs=0.01)
    assert level_db(full.tobytes()) == pytest.approx(0.0, abs=0.01)
    half = np.full(320, 16384, dtype="<i2")
    assert level_db(bytearray(half.tobytes())) == pytest.approx(-6.02, abs=0.01)
    assert level_db(memoryview(half.tobytes())) == pytest.approx(-6.02, abs=0.01)
    assert level_db(np.full(320, -16384, dtype="<i2")) == pytest.approx(-6.02, abs=0.01)
    assert level_db(np.array([1] + [0] * 319, dtype="<i2")) == pytest.approx(
        10 * math.log10(1 / 320 / 32768 ** 2))


def test_speaker_levels_keep_the_last_seconds_oldest_first():
    levels = SpeakerLevels(seconds=0.4, block_s=0.02)  # 20 blocks
    for i in range(25):
        levels.record(float(i), float(-i), audible=(i % 2 == 0))
    times, dbs = levels.snapshot()
    assert list(times) == [float(i) for i in range(5, 25)]
    assert list(dbs) == [float(-i) for i in range(5, 25)]
    assert levels.last_audible == 24.0
    levels.record(25.0, -1.0, audible=False)
    assert levels.last_audible == 24.0
    small = SpeakerLevels(seconds=0.01)  # never fewer than 16 blocks
    for i in range(20):
        small.record(float(i), 0.0, True)
    assert len(small.snapshot()[0]) == 16
    empty = SpeakerLevels()
    assert [len(a) for a in empty.snapshot()] == [0, 0]
    assert empty.max_db(0.0, 1e9) == SILENCE_DB and empty.last_audible < -1e8


def test_speaker_max_over_a_window_counts_blocks_that_overlap_it():
    levels = SpeakerLevels(block_s=0.5)
    for t, db in ((10.0, -30.0), (10.5, -10.0), (11.0, -40.0), (11.5, -20.0)):
        levels.record(t, db, True)
    assert levels.max_db(10.6, 10.9) == -10.0       # inside one block
    assert levels.max_db(11.1, 11.2) == -40.0
    assert levels.max_db(11.0, 11.0) == -10.0       # a block ending at the start still counts
    assert levels.max_db(11.6, 20.0) == -20.0
    assert levels.max_db(9.0, 9.9) == SILENCE_DB    # before anything played
    assert levels.max_db(12.1, 13.0) == SILENCE_DB  # after the last block ended
    assert levels.max_db(9.0, 20.0) == -10.0


def test_older_blocks_fade_as_echo_evidence():
    levels = SpeakerLevels(block_s=0.5)
    levels.record(10.0, -10.0, True)   # ends at 10.5
    levels.record(10.5, -30.0, True)   # ends at 11.0
    # from 11.0 on, the first block is 0.5 s old: 80 dB/s * 0.5 s = 40 dB weaker
    assert levels.max_db(10.0, 11.0, fresh_from=11.0, fade_db_per_s=80.0) == -30.0
    assert levels.max_db(10.0, 11.0, fresh_from=10.75, fade_db_per_s=80.0) == pytest.approx(-30.0)
    assert levels.max_db(10.0, 11.0, fresh_from=10.6, fade_db_per_s=80.0) == pytest.approx(-18.0)
    assert levels.max_db(10.0, 11.0, fresh_from=10.5, fade_db_per_s=80.0) == -10.0
    assert levels.max_db(10.0, 11.0, fresh_from=10.0, fade_db_per_s=80.0) == -10.0



def test_by_default_the_speaker_history_is_four_seconds_and_nothing_fades():
    levels = SpeakerLevels()
    for i in range(250):
        levels.record(i * 0.02, -20.0, True)
    assert len(levels.snapshot()[0]) == 200  # 4 s of 20 ms blocks
    old = SpeakerLevels(block_s=0.5)
    old.record(10.0, -10.0, True)
    assert old.max_db(10.0, 11.0, fresh_from=11.0) == -10.0  # no fade unless asked

# -- when the detector listens at all ----------------------------------------------------------
def test_nothing_is_judged_while_the_agent_is_silent():
    bench = Bench(gate=False, onset_frames=1)
    assert bench.run([VOICED] * 10, speaker_db=None) == []
    bench.speaker.record(bench.t(), -20.0, audible=False)  # played, but not agent audio
    assert bench.run([VOICED] * 3, speaker_db=None) == []
    assert bench.detector.pauses == 0 and bench.detector.state == "idle"


def test_the_agent_counts_as_audible_for_300_ms_after_its_last_block():
    bench = Bench(gate=False, onset_frames=2)
    bench.speaker.record(-FRAME, -20.0, True)
    bench.speaker.last_audible = 0.0
    assert bench.detector.process(SPEECH[0].tobytes(), 0.25) is None
    assert bench.detector.process(SPEECH[1].tobytes(), 0.28125) == "pause"
    late = Bench(gate=False, onset_frames=1)
    late.speaker.last_audible = 0.0
    assert late.detector.process(SPEECH[0].tobytes(), 0.3) is None
    assert late.detector.process(SPEECH[1].tobytes(), 0.3125) is None


# -- onset, confirmation, resume ---------------------------------------------------------------
def expected_decisions(flags: list[bool], settings: BargeInSettings,
                       confirm_locally: bool) -> list[tuple[int, str]]:
    """The documented rules, applied to the speech flags webrtcvad gave (the agent audible
    all along, gate off, nothing new playing after a flush)."""
    out, state, run = [], "idle", 0
    voiced = quiet = paused = 0
    for k, speech in enumerate(flags):
        if state == "idle":
            run = run + 1 if speech else 0
            if run >= settings.onset_frames:
                state, voiced, quiet, paused, run = "paused", run * 20, 0, 0, 0
                out.append((k, "pause"))
        elif state == "paused":
            paused += 20
            if speech:
                voiced, quiet = voiced + 20, 0
            else:
                quiet += 20
            if confirm_locally and voiced >= settings.confirm_ms:
                state = "flushed"
                out.append((k, "flush"))
            elif paused >= settings.resume_timeout_ms and quiet >= settings.silence_to_resume_ms:
                state = "idle"
                out.append((k, "resume"))
    return out


def check(bench: Bench, frames, **kw) -> list[tuple[int, str]]:
    decisions = bench.run(frames, **kw)
    assert decisions == expected_decisions(bench.flags, bench.settings,
                                           bench.detector.confirm_locally)
    return decisions


@pytest.mark.parametrize("onset", [1, 2, 3, 5])
def test_pause_comes_on_the_nth_consecutive_speech_frame(onset):
    bench = Bench(gate=False, onset_frames=onset, confirm_ms=5000, resume_timeout_ms=10000)
    decisions = check(bench, talk(onset + 3))
    assert decisions == [(onset - 1, "pause")]
    assert bench.detector.pauses == 1 and bench.detector.state == "paused"


def test_a_gap_in_speech_starts_the_count_again():
    bench = Bench(gate=False, onset_frames=6, confirm_ms=5000)
    decisions = check(bench, talk(1) + [ZERO] * 8 + talk(8))
    assert decisions and decisions[0][0] >= 9 + 5


@pytest.mark.parametrize("confirm_ms", [100, 120, 140, 600])
def test_continued_speech_confirms_at_confirm_ms(confirm_ms):
    bench = Bench(gate=False, onset_frames=3, confirm_ms=confirm_ms, resume_timeout_ms=10000)
    decisions = check(bench, talk(40))
    assert [d for _, d in decisions] == ["pause", "flush"]
    assert bench.detector.flushes == 1 and bench.detector.state == "flushed"
    assert bench.detector.false_barge_ins == 0 and bench.detector.pauses == 1


def test_without_local_confirmation_speech_never_flushes():
    bench = Bench(confirm_locally=False, gate=False, onset_frames=3, confirm_ms=100,
                  resume_timeout_ms=10000)
    assert check(bench, talk(60)) == [(2, "pause")]
    assert bench.detector.flushes == 0 and bench.detector.state == "paused"


@pytest.mark.parametrize("timeout_ms, silence_ms, quiet_frames", [
    (200, 300, 30), (400, 100, 30), (600, 60, 40), (300, 300, 30), (1000, 20, 60)])
def test_resume_needs_the_timeout_and_silence_both(timeout_ms, silence_ms, quiet_frames):
    bench = Bench(gate=False, onset_frames=3, confirm_ms=5000, resume_timeout_ms=timeout_ms,
                  silence_to_resume_ms=silence_ms)
    decisions = check(bench, talk(3) + [ZERO] * quiet_frames)
    assert [d for _, d in decisions] == ["pause", "resume"]
    assert bench.detector.false_barge_ins == 1 and bench.detector.state == "idle"
    assert bench.detector.flushes == 0


def test_speech_keeps_a_pause_from_resuming_until_the_user_is_quiet():
    bench = Bench(gate=False, onset_frames=3, confirm_ms=5000, resume_timeout_ms=200,
                  silence_to_resume_ms=100)
    decisions = check(bench, talk(30) + [ZERO] * 20)
    assert [d for _, d in decisions] == ["pause", "resume"] and decisions[1][0] >= 30 + 5 - 1


def test_after_a_resume_the_user_can_pause_it_again():
    bench = Bench(gate=False, onset_frames=2, confirm_ms=5000, resume_timeout_ms=200,
                  silence_to_resume_ms=100)
    decisions = check(bench, talk(2) + [ZERO] * 20 + talk(4))
    assert [d for _, d in decisions] == ["pause", "resume", "pause"]
    assert bench.detector.pauses == 2 and bench.detector.false_barge_ins == 1


def test_after_a_flush_the_detector_waits_for_the_next_response():
    bench = Bench(gate=False, onset_frames=1, confirm_ms=60, resume_timeout_ms=10000)
    assert [d for _, d in check(bench, talk(3))] == ["pause", "flush"]
    flushed_at = bench.speaker.last_audible
    assert bench.run(talk(10)) == []  # the user talks on; nothing new plays
    assert bench.detector.state == "flushed"
    bench.speaker.record(flushed_at, -20.0, True)  # the same instant again: not newer
    assert bench.run(talk(2)) == []
    bench.new_response()  # a new response starts playing: watched again from its first block
    assert [d for _, d in bench.run(talk(2))][:1] == ["pause"]
    assert bench.detector.pauses == 2 and bench.detector.flushes == 1


def test_the_servers_interruption_confirms_a_pause_or_stops_an_unpaused_response():
    bench = Bench(gate=False, onset_frames=1, confirm_ms=5000, resume_timeout_ms=10000)
    assert bench.run(talk(1)) == [(0, "pause")]
    bench.confirmed()
    assert bench.detector.state == "flushed" and bench.detector.flushes == 1
    assert bench.run(talk(3)) == []
    idle = Bench(gate=False, onset_frames=3)
    idle.run([ZERO])
    idle.confirmed()  # the server heard the user before the device did
    assert idle.detector.state == "flushed" and idle.detector.flushes == 0
    assert idle.run(talk(5)) == []
    idle.new_response()
    assert idle.run(talk(5)) != []  # new audio after the interruption: watched again


# -- rates webrtcvad does and does not take -----------------------------------------------------
def resampled(rate: int) -> np.ndarray:
    from edgevoice.audio.resample import StreamResampler
    q, q_rate = question()
    out = np.frombuffer(StreamResampler(q_rate, rate).process(q.tobytes(), True), dtype="<i2")
    n = rate // 50
    return out[35 * n:36 * n].copy()


@pytest.mark.parametrize("rate", [24000, 48000, 8000, 22050, 44100])  # resampled for webrtcvad
def test_speech_is_heard_at_every_wire_rate(rate):
    bench = Bench(rate=rate, gate=False, onset_frames=2, confirm_ms=5000)
    frame = resampled(rate)
    decisions = bench.run([frame] * 4)
    assert decisions[:1] == [(1, "pause")]


def test_a_frame_webrtcvad_cannot_take_is_not_speech():
    bench = Bench(gate=False, onset_frames=1)
    odd = VOICED[:100]
    bench.speaker.record(T0, -20.0, True)
    assert bench.detector.process(odd.tobytes(), T0 + FRAME) is None
    assert bench.detector.pauses == 0


# -- more edges the mutants found ---------------------------------------------------------------
def test_speaker_history_edges():
    levels = SpeakerLevels(seconds=0.32, block_s=0.02)  # 16 blocks
    for k in range(3):
        levels.record(float(k), -float(k), True)
    assert list(levels.snapshot()[0]) == [0.0, 1.0, 2.0]  # fewer than held: all of them
    for k in range(3, 20):
        levels.record(float(k), -float(k), True)
    assert levels.max_db(4.0, 4.01) == -4.0  # the oldest block still held
    assert levels.max_db(3.0, 3.01) == SILENCE_DB  # gone
    wide = SpeakerLevels(block_s=0.5)
    wide.record(11.0, -40.0, True)
    wide.record(11.5, -20.0, True)
    assert wide.max_db(11.2, 11.5) == -20.0  # a block starting right at the end counts


def test_counters_add_up():
    bench = Bench(gate=False, onset_frames=1, confirm_ms=40, resume_timeout_ms=10000)
    for _ in range(2):
        bench.new_response()
        assert [d for _, d in bench.run(talk(3))][:2] == ["pause", "flush"]
    assert bench.detector.flushes == 2 and bench.detector.pauses == 2
    resumes = Bench(gate=False, onset_frames=2, confirm_ms=5000, resume_timeout_ms=100,
                    silence_to_resume_ms=60)
    decisions = resumes.run((talk(2) + [ZERO] * 15) * 2)
    assert [d for _, d in decisions] == ["pause", "resume", "pause", "resume"]
    assert resumes.detector.false_barge_ins == 2
    confirmed = Bench(gate=False, onset_frames=1, confirm_ms=5000, resume_timeout_ms=10000)
    for _ in range(2):
        confirmed.new_response()
        confirmed.run(talk(1))
        confirmed.confirmed()
    assert confirmed.detector.flushes == 2


def test_after_a_resume_the_count_starts_from_zero():
    bench = Bench(gate=False, onset_frames=3, confirm_ms=5000, resume_timeout_ms=100,
                  silence_to_resume_ms=60)
    frames = talk(3)
    for frame in frames:
        bench.step(frame)
    for _ in range(40):  # quiet until it resumes, then talk at once
        frames.append(ZERO)
        if bench.step(ZERO) == "resume":
            break
    for frame in talk(4):
        frames.append(frame)
        bench.step(frame)
    expected = expected_decisions(bench.flags, bench.settings, True)
    assert [d for _, d in expected] == ["pause", "resume", "pause"]
    replay = Bench(gate=False, onset_frames=3, confirm_ms=5000, resume_timeout_ms=100,
                   silence_to_resume_ms=60)
    assert replay.run(frames) == expected


def test_while_the_agent_is_silent_the_count_stays_at_zero():
    bench = Bench(gate=False, onset_frames=3, confirm_ms=5000)
    assert bench.step(ZERO, speaker_db=None) is None  # nothing playing: not judged
    assert bench.run(talk(3)) == [(2, "pause")]
    assert bench.flags[-3:] == [True, True, True]


def test_speech_at_a_rate_webrtcvad_does_not_take_is_averaged_down():
    bench = Bench(rate=40000, gate=False, onset_frames=2, confirm_ms=5000)
    frame = resampled(40000)
    assert bench.run([frame] * 4)[:1] == [(1, "pause")]
