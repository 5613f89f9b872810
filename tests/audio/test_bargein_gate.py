"""The barge-in echo gate and the echo-delay measurement, frame by frame: the learnt
coupling, the margin, the warm-up, the echo delay and tail, the delay estimator, the noise
floor, and the fast provisional onset behind an echo canceller (the levels and the state
machine: tests/audio/test_bargein_detector.py).

The detector tracks the mic's noise floor from the first frame it judges, so a bench starts
from a quiet room (:func:`quiet_room`): echo frames are then well above the floor and learnt.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgevoice.audio.bargein import BargeInSettings, level_db
from tests.support.bargein import FRAME, SPEECH, VOICED, ZERO, Bench, at_level, talk


# -- the echo gate ------------------------------------------------------------------------------
def quiet_room(bench: Bench) -> None:
    """One frame of a quiet room (the mic at its -70 dB floor) under a silent speaker: the
    detector's noise floor starts there, not at the first echo frame it hears."""
    assert bench.step(ZERO, speaker_db=-100.0) is None
    assert bench.detector.coupling_db == bench.settings.initial_coupling_db


def learnt_bench(echo_db: float = -35.0, speaker_db: float = -20.0, frames: int = 30,
                 **settings) -> Bench:
    """A detector that heard a quiet room, then ``frames`` frames of echo alone (mic at
    ``echo_db``)."""
    defaults = dict(onset_frames=1, warmup_ms=0, gate_margin_db=5.0, echo_delay_ms=10,
                    confirm_ms=5000, resume_timeout_ms=10000)
    bench = Bench(**{**defaults, **settings})
    quiet_room(bench)
    assert bench.run(talk(frames, echo_db), speaker_db=speaker_db) == []
    assert sum(bench.flags) > frames // 2  # webrtcvad called most of it speech: the gate held
    return bench

def test_the_coupling_is_learnt_from_echo_alone():
    bench = learnt_bench(echo_db=-35.0, speaker_db=-20.0)
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)

def test_before_25_frames_the_initial_coupling_holds():
    bench = learnt_bench(echo_db=-35.0, frames=24, initial_coupling_db=-40.0, onset_frames=30)
    assert bench.detector.coupling_db == -40.0
    bench.step(talk(1, -35.0)[0])
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)

@pytest.mark.parametrize("over_db, pauses", [(4.6, False), (5.4, True), (9.0, True)])
def test_the_user_must_beat_the_echo_by_the_margin(over_db, pauses):
    bench = learnt_bench(echo_db=-35.0, speaker_db=-20.0)
    decisions = bench.run(talk(6, -35.0 + over_db))
    assert any(bench.flags[-6:])
    assert bool(decisions) is pauses

def test_the_margin_is_configurable():
    bench = learnt_bench(echo_db=-35.0, gate_margin_db=10.0)
    assert bench.run(talk(6, -35.0 + 8.0)) == []
    assert bench.run(talk(6, -35.0 + 12.0)) != []

def test_frames_well_above_the_coupling_are_not_learnt():
    bench = learnt_bench(echo_db=-35.0, onset_frames=100)
    bench.run(talk(150, -31.5))  # the user talking on, 3.5 dB over the echo (under the margin)
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)
    bench.run(talk(150, -32.5))  # 2.5 dB over: within what echo does, learnt
    assert bench.detector.coupling_db == pytest.approx(-12.5, abs=0.2)

def test_the_coupling_is_a_high_percentile_of_the_recent_frames():
    bench = Bench(onset_frames=100, warmup_ms=0, echo_delay_ms=10, confirm_ms=5000,
                  resume_timeout_ms=10000, initial_coupling_db=30.0)
    quiet_room(bench)
    levels = [-40.0 + 0.2 * k for k in range(100)]  # diffs -20 .. -0.2 dB
    frames = [at_level(f, db) for f, db in zip(talk(100), levels)]
    bench.run(frames)
    diffs = sorted(level_db(f) + 20.0 for f in frames)
    assert bench.detector.coupling_db == pytest.approx(diffs[90], abs=0.01)

def test_a_silent_speaker_leaves_nothing_to_mistake_for_the_user():
    for speaker_db, pauses in ((-100.0, True), (-60.0, True), (-59.0, False)):
        # the echo comes back 20 dB over the speaker's level: a -40 dB user is under it
        bench = learnt_bench(echo_db=-15.0, speaker_db=-35.0, initial_coupling_db=20.0)
        bench.run([ZERO] * 20, speaker_db=speaker_db)  # a pause in the agent's speech
        decisions = bench.run(talk(6, -40.0), speaker_db=speaker_db)
        assert any(bench.flags[-6:])
        assert bool(decisions) is pauses, speaker_db

def test_the_gate_is_stricter_during_the_warm_up():
    def first_pause(warmup_ms: int, extra_db: float) -> int | None:
        bench = Bench(onset_frames=1, warmup_ms=warmup_ms, warmup_extra_db=extra_db,
                      gate_margin_db=5.0, initial_coupling_db=-20.0, echo_delay_ms=10,
                      confirm_ms=5000, resume_timeout_ms=10000)
        quiet_room(bench)  # the answer starts here (with a silent block)
        # mic 8 dB over the assumed echo: passes the margin (5), not margin + extra (11)
        decisions = bench.run(talk(24, -32.0))
        return decisions[0][0] if decisions else None

    # (webrtcvad calls all 24 frames speech; the warm-up counts from the silent block, and
    # the frame on its boundary may fall either side of it in floating point)
    assert first_pause(0, 6.0) == 0
    assert first_pause(200, 0.0) == 0
    assert first_pause(200, 6.0) in (9, 10)
    assert first_pause(400, 6.0) in (19, 20)
    assert first_pause(400, 3.5) in (19, 20)  # 8 < 5 + 3.5
    assert first_pause(400, 2.5) == 0

def test_warm_up_starts_again_with_each_response():
    bench = Bench(onset_frames=1, warmup_ms=90, warmup_extra_db=6.0, gate_margin_db=5.0,
                  initial_coupling_db=-20.0, echo_delay_ms=10, confirm_ms=5000,
                  resume_timeout_ms=10000)
    assert bench.run(talk(12, -40.0)) == []  # echo alone; warm-up is over
    bench.run([ZERO] * 20, speaker_db=None)  # the agent is silent for 400 ms
    bench.run([ZERO] * 2)  # a new answer starts
    # the user 8 dB over the echo: passes the margin (5), not margin + warm-up extra (11)
    user_db = -20.0 + bench.detector.coupling_db + 8.0
    assert bench.run(talk(2, user_db)) == []  # 40 and 60 ms into the answer
    assert bench.run(talk(3, user_db)) != []

def delayed_track_bench(echo_delay_ms: int, echo_tail_ms: int = 0) -> Bench:
    """The speaker was loud until 220 ms ago, then silent."""
    bench = Bench(onset_frames=1, warmup_ms=0, gate_margin_db=5.0, initial_coupling_db=0.0,
                  echo_delay_ms=echo_delay_ms, echo_tail_ms=echo_tail_ms, confirm_ms=5000,
                  resume_timeout_ms=10000)
    for k in range(20):
        assert bench.step(ZERO, speaker_db=-10.0 if k < 10 else -100.0) is None
    return bench

def user_pauses(bench: Bench, speaker_db: float) -> bool:
    """The user (-30 dB) talks for 2 frames, played over ``speaker_db``."""
    decisions = bench.run(talk(2, -30.0), speaker_db=speaker_db)
    assert any(bench.flags[-2:])
    return bool(decisions)

def test_a_known_delay_compares_the_mic_with_what_played_one_delay_ago():
    bench = delayed_track_bench(echo_delay_ms=90)
    # the speaker is loud again now, but 90 ms ago it was silent: the mic hears the user
    assert user_pauses(bench, speaker_db=-10.0) is True

def test_an_unknown_delay_compares_with_everything_that_may_echo():
    bench = delayed_track_bench(echo_delay_ms=0)
    assert user_pauses(bench, speaker_db=-10.0) is False  # the loud last blocks may be echo

def test_the_tail_counts_reverberation_of_older_blocks():
    short = delayed_track_bench(echo_delay_ms=50, echo_tail_ms=0)
    long = delayed_track_bench(echo_delay_ms=50, echo_tail_ms=250)
    assert user_pauses(short, speaker_db=-100.0) is True
    assert user_pauses(long, speaker_db=-100.0) is False

# -- measuring the echo delay -----------------------------------------------------------------
def noise_at(db: float, seed: int) -> np.ndarray:
    base = np.random.default_rng(seed).normal(0, 3000, 320)
    return at_level(base, db)

def measuring_bench(delay_frames: int | None, frames: int, coupling_db: float = -12.0,
                    flat: bool = False, seed: int = 1, echo_delay_ms: int = 0) -> Bench:
    rng = np.random.default_rng(seed)
    speaker = list(rng.uniform(-50.0, -10.0, frames + 20))
    bench = Bench(onset_frames=1000, echo_delay_ms=echo_delay_ms, confirm_ms=5000,
                  resume_timeout_ms=10000)
    for k in range(20):  # the answer started a little before the mic is judged
        bench.speaker.record(bench.t() - (20 - k) * FRAME, speaker[k], True)
    unrelated = rng.uniform(-60.0, -20.0, frames)
    for k in range(frames):
        if flat:
            mic_db = -30.0
        elif delay_frames is None:
            mic_db = unrelated[k]
        else:
            mic_db = speaker[20 + k - delay_frames] + coupling_db
        bench.step(noise_at(mic_db, k), speaker_db=speaker[20 + k])
    return bench

@pytest.mark.parametrize("delay_frames", [0, 3, 7, 12])
def test_the_echo_delay_is_measured_from_the_level_tracks(delay_frames):
    early = measuring_bench(delay_frames, 49)
    assert early.detector.echo_delay_s == 0.0  # not enough heard yet
    bench = measuring_bench(delay_frames, 50)
    assert bench.detector.echo_delay_s == pytest.approx(delay_frames * FRAME)

def test_the_measured_delay_is_then_used():
    bench = measuring_bench(7, 50)
    assert bench.detector.echo_delay_s == pytest.approx(0.14)
    # now the loud blocks of the last 100 ms are not what the mic hears: 140 ms ago was silent
    for k in range(10):
        bench.step(ZERO, speaker_db=-100.0)
    for k in range(5):
        bench.step(ZERO, speaker_db=-10.0)
    twin = measuring_bench(None, 49)
    for k in range(10):
        twin.step(ZERO, speaker_db=-100.0)
    for k in range(5):
        twin.step(ZERO, speaker_db=-10.0)
    user = at_level(VOICED, -30.0)
    bench.detector.s = BargeInSettings(onset_frames=1, confirm_ms=5000, resume_timeout_ms=10000,
                                       warmup_ms=0)
    twin.detector.s = bench.detector.s
    assert bench.step(user, speaker_db=-10.0) == "pause"
    assert twin.step(user, speaker_db=-10.0) is None

@pytest.mark.parametrize("case", ["unrelated", "flat"])
def test_no_delay_is_taken_without_a_clear_match(case):
    bench = measuring_bench(None, 100, flat=(case == "flat"))
    assert bench.detector.echo_delay_s == 0.0

def test_a_configured_delay_is_not_measured():
    bench = measuring_bench(3, 50)
    configured = Bench(onset_frames=1000, echo_delay_ms=60)
    assert configured.detector.echo_delay_s == pytest.approx(0.06)
    assert bench.detector.echo_delay_s == pytest.approx(0.06)

def test_the_coupling_follows_the_last_two_seconds():
    bench = learnt_bench(echo_db=-35.0, frames=100, onset_frames=1000)
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)
    weaker = talk(100, -45.0)  # the speaker moved away: the echo is 10 dB weaker
    bench.run(weaker[:90])  # the 10 old frames left are the top 10 %: they still rule
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)
    bench.run(weaker[90:91])  # one more and the 90th percentile of 100 is a new frame
    assert bench.detector.coupling_db == pytest.approx(-25.0, abs=0.2)
    bench.run(weaker[91:])
    assert bench.detector.coupling_db == pytest.approx(-25.0, abs=0.2)

def test_from_the_25th_frame_on_the_user_is_not_learnt():
    bench = learnt_bench(echo_db=-35.0, frames=25, onset_frames=1000)
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)
    bench.run(talk(10, -25.0))  # 10 dB over: the user, not echo (learnt, 10 would rule)
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)

def test_a_configured_delay_of_one_millisecond_is_taken_as_given():
    assert measuring_bench(5, 60).detector.echo_delay_s == pytest.approx(0.1)  # measurable
    bench = measuring_bench(5, 60, echo_delay_ms=1)
    assert bench.detector.echo_delay_s == pytest.approx(0.001)  # but 1 ms was configured


def test_the_tail_is_in_milliseconds():
    short = delayed_track_bench(echo_delay_ms=50, echo_tail_ms=100)
    assert user_pauses(short, speaker_db=-100.0) is True  # the loud blocks ended 150 ms before

def test_an_unknown_delay_looks_back_240_ms_and_one_frame():
    bench = delayed_track_bench(echo_delay_ms=0)
    bench.step(ZERO, speaker_db=-100.0)
    # the last loud block ended 240 ms before this frame began: still a possible echo
    decision = bench.step(at_level(SPEECH[2], -30.0), speaker_db=-100.0)
    assert bench.flags[-1] is True and decision is None

def test_a_delay_is_measured_from_level_tracks_that_vary_only_a_little():
    rng = np.random.default_rng(5)
    frames = 50
    speaker = list(rng.uniform(-30.0, -18.0, frames + 20))  # about 3.5 dB of spread
    bench = Bench(onset_frames=1000, echo_delay_ms=0, confirm_ms=5000, resume_timeout_ms=10000)
    for k in range(20):
        bench.speaker.record(bench.t() - (20 - k) * FRAME, speaker[k], True)
    for k in range(frames):
        bench.step(noise_at(speaker[20 + k - 4] - 12.0, k), speaker_db=speaker[20 + k])
    assert 3.0 < float(np.std(speaker)) < 4.0
    assert bench.detector.echo_delay_s == pytest.approx(4 * FRAME)


# -- the noise floor, and a canceller in front ------------------------------------------------
def tone(db: float) -> np.ndarray:
    """A 7 kHz whistle: loud, but not speech to webrtcvad (above its bands)."""
    return at_level(np.sin(2 * np.pi * 7000 * np.arange(320) / 16000) * 1000, db)

@pytest.mark.parametrize("speaker_db, mic_db, learnt", [
    (-45.0, -63.5, True), (-45.0, -64.5, False),  # a quiet speaker: above floor + 6 only
    (-39.5, None, True), (-40.5, None, False)])   # at the floor: under floor + 30 says nothing
def test_the_coupling_is_learnt_above_the_floor_or_under_a_loud_speaker(speaker_db, mic_db,
                                                                         learnt):
    bench = Bench(onset_frames=1000, warmup_ms=0, echo_delay_ms=10, confirm_ms=5000,
                  resume_timeout_ms=10000, initial_coupling_db=0.0)
    quiet_room(bench)
    frames = [ZERO] * 25 if mic_db is None else talk(25, mic_db)
    for frame in frames:  # each after a frame at the floor (-70): the floor stays there
        bench.step(ZERO, speaker_db=speaker_db)
        bench.step(frame, speaker_db=speaker_db)
    diffs = sorted(max(level_db(f), -70.0) - speaker_db for f in frames)
    assert bench.detector.coupling_db == (pytest.approx(diffs[22], abs=0.01) if learnt else 0.0)

@pytest.mark.parametrize("user_db, pauses", [(-39.5, False), (-38.5, True)])
def test_the_user_must_beat_the_noise_floor_too(user_db, pauses):
    """An echo the canceller removed (coupling -60) leaves the room's noise (a -50 dB
    whine): the user must beat floor + 6 by the margin (5), not the echo."""
    bench = Bench(onset_frames=1, warmup_ms=0, echo_delay_ms=10, confirm_ms=5000,
                  resume_timeout_ms=10000, initial_coupling_db=-60.0)
    assert bench.step(tone(-50.0), speaker_db=-100.0) is None
    decisions = bench.run(talk(4, user_db))
    assert bench.flags[-4:] == [False, True, True, True]  # speech from the second frame
    assert decisions == ([(1, "pause")] if pauses else [])

@pytest.mark.parametrize("reduction, over_db, pauses", [
    (None, 5.4, True), (8.0, 5.4, True), (20.0, 4.6, False),  # trusted: the margin alone
    (5.0, 7.6, False), (5.0, 8.4, True), (0.0, 12.6, False), (0.0, 13.4, True)])
def test_a_converging_canceller_asks_for_more_margin(reduction, over_db, pauses):
    bench = learnt_bench(echo_db=-35.0)  # margin 5
    bench.reduction = reduction  # removing less than 8 dB: 8 - reduction more margin
    decisions = bench.run(talk(6, -35.0 + over_db))
    assert all(bench.flags[-6:])
    assert bool(decisions) is pauses

def cleaned_bench(reduction: float | None = 30.0, **settings) -> Bench:
    """Echo learnt (coupling -15, margin 5, three speech frames to pause), a canceller
    removing ``reduction`` dB, and webrtcvad's hangover over (five frames at the floor)."""
    bench = learnt_bench(echo_db=-35.0, onset_frames=3, **settings)
    bench.reduction = reduction
    assert bench.run([ZERO] * 5) == []
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)
    return bench

@pytest.mark.parametrize("loud_db, reduction, settings, decisions", [
    (-23.5, 30.0, {}, [(0, "pause"), (12, "resume")]),  # 240 ms to confirm it
    (-23.5, 30.0, dict(provisional_ms=100), [(0, "pause"), (5, "resume")]),
    (-24.5, 30.0, {}, []),                  # not 6 dB over the gate's threshold (-30)
    (-23.5, None, {}, []),                  # no canceller: voice detection alone
    (-23.5, 30.0, dict(fast_onset=False), [])])
def test_one_loud_frame_pauses_provisionally(loud_db, reduction, settings, decisions):
    bench = cleaned_bench(reduction, **settings)
    assert bench.run([tone(loud_db)] + [ZERO] * 20) == decisions
    assert not any(bench.flags[-21:])
    assert bench.detector.false_barge_ins == len(decisions) // 2

@pytest.mark.parametrize("voiced, resumes", [(2, False), (1, True)])
def test_voice_confirms_a_provisional_pause(voiced, resumes):
    bench = cleaned_bench()
    decisions = bench.run([tone(-23.0)] + talk(voiced, -28.0) + [ZERO] * 20)
    assert all(bench.flags[-20 - voiced:-20])  # (the floor frames after them fail the gate)
    assert decisions == [(0, "pause")] + ([(12, "resume")] if resumes else [])

def test_a_loud_voiced_frame_counts_towards_its_own_confirmation():
    bench = cleaned_bench()
    assert bench.run(talk(2, -20.0) + [ZERO] * 20) == [(0, "pause")]  # 2 voiced frames: kept
    assert bench.flags[-22:-20] == [True, True]

def test_an_unconfirmed_pause_learns_nothing_from_frames_at_the_floor():
    bench = cleaned_bench()
    # a quiet speaker: the floor frames heard while paused (-70 - -58 = -12) say nothing
    assert bench.run([ZERO] * 25, speaker_db=-58.0) == []  # (the loud blocks fade away)
    assert bench.run([tone(-23.0)] + [ZERO] * 12, speaker_db=-58.0) == [(0, "pause"),
                                                                         (12, "resume")]
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)

def test_an_unconfirmed_pause_teaches_the_coupling_what_it_heard():
    bench = cleaned_bench()
    # a whistle 8 dB over the echo: too far over the coupling to be learnt while judged
    assert bench.run([tone(-23.0)] + [tone(-27.0)] * 12) == [(0, "pause"), (12, "resume")]
    # 30 echo frames (-15), 5 at the floor (-50), 12 heard while paused (-7): the 90th
    # percentile of 47 is one of the 12
    assert bench.detector.coupling_db == pytest.approx(-7.0, abs=0.2)

@pytest.mark.parametrize("room_db, loud_db, pauses", [
    (None, -39.5, False), (None, -38.5, True),     # a quiet room: -45 + 6
    (-50.0, -32.5, False), (-50.0, -31.5, True)])  # a noisy one: floor + 12 + 6
def test_a_silent_speaker_leaves_loud_frames_to_the_fast_onset(room_db, loud_db, pauses):
    bench = Bench(warmup_ms=0, echo_delay_ms=10, confirm_ms=5000, resume_timeout_ms=10000)
    bench.reduction = 30.0
    room = ZERO if room_db is None else tone(room_db)
    assert bench.run([room] * 5, speaker_db=-100.0) == []
    decisions = bench.run([tone(loud_db)], speaker_db=-100.0)
    assert not bench.flags[-1]
    assert decisions == ([(0, "pause")] if pauses else [])

def test_a_pause_learns_only_what_was_heard_since_it_began():
    bench = cleaned_bench()
    # the user interrupts; what follows is heard while paused, then the server confirms
    assert bench.run(talk(2, -20.0) + [tone(-27.0)] * 12) == [(0, "pause")]
    bench.confirmed()
    bench.new_response()
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)
    # the next answer: a click, nothing confirms it; the first pause's frames are not learnt
    assert bench.run([tone(-23.0)] + [ZERO] * 12) == [(0, "pause"), (12, "resume")]
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)

def test_under_a_silent_speaker_even_a_quiet_user_passes():
    bench = learnt_bench(echo_db=-35.0, onset_frames=3, initial_coupling_db=20.0)
    assert bench.run([ZERO] * 30, speaker_db=-100.0) == []  # the echo's tail has died away
    # -48 dB is under -45 (what a fast onset needs), but there is no echo to mistake it for
    decisions = bench.run(talk(15, -48.0), speaker_db=-100.0)
    assert bench.flags[-15:-9] == [False] * 4 + [True] * 2 and bench.flags[-9]
    assert decisions == [(6, "pause")]

def test_a_voice_that_nobody_confirmed_is_not_learnt_as_echo():
    """A pause that voice detection started (a user's "mm-hm" the server did not take as an
    interruption) resumes without teaching the gate: learning the user's level as echo
    would keep the same user from interrupting the next answer."""
    bench = learnt_bench(echo_db=-35.0, resume_timeout_ms=400)
    decisions = bench.run(talk(15, -20.0) + [ZERO] * 60)
    assert [d for _, d in decisions] == ["pause", "resume"]
    assert bench.detector.coupling_db == pytest.approx(-15.0, abs=0.2)
    # and the same user interrupts the rest of the answer at once
    assert bench.run(talk(3, -20.0))[0][1] == "pause"
