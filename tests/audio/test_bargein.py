"""Local barge-in: the detector (VAD + echo gate) and the session's pause → flush | resume,
for every dialect's way of confirming an interruption."""

from __future__ import annotations

import numpy as np
import pytest

from edgevoice.audio.bargein import BargeInDetector, BargeInSettings, SpeakerLevels, level_db
from tests.support.bargein import CONFIGS, FRAME, Rig, answer_tone, frames_of, paused_rig, speech


def run(detector: BargeInDetector, speaker: SpeakerLevels, agent: np.ndarray,
        user: np.ndarray | None, delay_s: float, echo_gain: float, user_at: int = 10**9,
        rate: int = 16000):
    """Play ``agent`` on the speaker while the mic hears its echo (``delay_s``, ``echo_gain``)
    plus ``user`` from frame ``user_at``; return the decisions with their frame index."""
    n = rate // 50
    delay = int(delay_s * rate)
    mic = np.zeros(len(agent) + delay, dtype=np.float64)
    mic[delay:delay + len(agent)] += agent * echo_gain
    if user is not None:
        start = user_at * n
        end = min(len(mic), start + len(user))
        mic[start:end] += user[:end - start]
    mic = np.clip(mic, -32768, 32767).astype("<i2")
    decisions = []
    for i in range(len(mic) // n):
        t = 100.0 + i * FRAME
        block = agent[i * n:(i + 1) * n]
        speaker.record(t - FRAME, level_db(block) if len(block) else -100.0, len(block) > 0)
        decision = detector.process(mic[i * n:(i + 1) * n].tobytes(), t)
        if decision:
            decisions.append((i, decision))
    return decisions


@pytest.mark.parametrize("delay_s,gain", [(0.03, 0.5), (0.1, 1.0), (0.2, 0.7)])
def test_echo_alone_at_full_agent_level_never_pauses(delay_s, gain):
    speaker = SpeakerLevels()
    detector = BargeInDetector(BargeInSettings(), 16000, speaker, confirm_locally=True)
    agent = np.concatenate([speech()] * 4)
    assert run(detector, speaker, agent, None, delay_s, gain) == []


def test_without_the_gate_the_echo_is_taken_for_the_user():
    speaker = SpeakerLevels()
    detector = BargeInDetector(BargeInSettings(gate=False), 16000, speaker, confirm_locally=True)
    agent = np.concatenate([speech()] * 2)
    assert [d for _, d in run(detector, speaker, agent, None, 0.05, 0.7)][:1] == ["pause"]


@pytest.mark.parametrize("delay_s,user_gain,bound_ms", [(0.03, 4.0, 80), (0.1, 4.0, 80),
                                                        (0.03, 2.0, 120), (0.1, 2.0, 120)])
def test_user_over_the_echo_pauses_quickly(delay_s, user_gain, bound_ms):
    """The user 12 dB (6 dB) over the echo: paused within 80 ms (120 ms) of the onset."""
    speaker = SpeakerLevels()
    detector = BargeInDetector(BargeInSettings(), 16000, speaker, confirm_locally=False)
    agent = np.concatenate([speech()] * 3)
    user = speech()[::-1].copy() * user_gain  # a different utterance
    user_at = 100  # 2 s into the answer: coupling learnt, warm-up over
    decisions = run(detector, speaker, agent, user.astype(np.float64), delay_s, 0.5, user_at)
    assert decisions and decisions[0][1] == "pause", decisions
    levels = [level_db(f) for f in frames_of(user.astype("<i2"), 16000)]
    onset = user_at + next(i for i, db in enumerate(levels) if db > max(levels) - 30)
    assert (decisions[0][0] - onset + 1) * 20 <= bound_ms, (decisions[0][0], onset)


# -- the session's side: pause, confirm (flush + late audio dropped) or resume ----------------
CONFIRMATIONS = {
    "xuna": ['{"type":"interruption","interruption_event":{"event_id":1}}'],
    "napster": ['{"type":"speech_started"}'],
    "napster-cancelled": ['{"type":"message_received","data":{"role":"assistant",'
                          '"action":"cancelled","reason":"turn_detected"}}'],
    "navtalk": ['{"type":"realtime.input_audio_buffer.speech_started"}'],
}


@pytest.mark.parametrize("case", sorted(CONFIRMATIONS))
def test_server_confirmation_flushes_and_drops_late_audio(case):
    dialect = case.split("-")[0]
    rig = paused_rig(dialect)
    for message in CONFIRMATIONS[case]:
        rig.server(message)
    buffer = rig.engine.buffer
    assert buffer.buffered_bytes == 0 and not buffer.paused
    # audio of the cancelled response still in flight is dropped …
    rig.agent_says(b"\x10\x00" * 320, 1 if dialect == "xuna" else None)
    assert buffer.buffered_bytes == 0 and rig.session.stats.late_chunks_dropped == 1
    # … until the next response
    if dialect == "xuna":
        rig.agent_says(b"\x20\x00" * 320, 2)
    elif dialect == "napster":
        rig.server('{"event":"talk_state_changed","data":{"state":"ended"}}')
        rig.agent_says(b"\x20\x00" * 320)
    else:
        rig.server('{"type":"realtime.response.audio.done"}')
        rig.agent_says(b"\x20\x00" * 320)
    assert buffer.buffered_bytes == 640
    assert rig.session._detector.state == "flushed"
    rig.tick(None)  # the new response plays: the detector watches again
    rig.tick(None)
    assert rig.session._detector.state == "idle"


def test_voiceapi_confirms_by_continued_speech_and_drops_until_a_gap():
    rig = paused_rig("voiceapi")
    user = frames_of(np.concatenate([speech()] * 2), 16000)
    for f in user:
        rig.tick(f)
        if rig.session._detector.state == "flushed":
            break
    assert rig.session._detector.state == "flushed"
    assert rig.engine.buffer.buffered_bytes == 0 and not rig.engine.buffer.paused
    assert [e.decision for e in rig.pending() if hasattr(e, "decision")] == ["pause", "flush"]
    rig.agent_says(b"\x10\x00" * 320)  # the server is still streaming the old answer
    assert rig.engine.buffer.buffered_bytes == 0
    rig.session._late._last_arrival -= 1.0  # the old stream stopped a second ago
    rig.agent_says(b"\x20\x00" * 320)        # the next answer
    assert rig.engine.buffer.buffered_bytes == 640


@pytest.mark.parametrize("dialect", sorted(CONFIGS))
def test_no_confirmation_resumes_where_playback_paused(dialect):
    rig = paused_rig(dialect)
    buffer = rig.engine.buffer
    played_at_pause = buffer.played_bytes
    decisions = []
    for _ in range(120):  # 2.4 s of silence, nothing from the server
        rig.tick(None)
        decisions = [e.decision for e in rig.pending() if hasattr(e, "decision")] or decisions
        if not buffer.paused:
            break
    assert not buffer.paused, "playback did not resume"
    assert buffer.played_bytes == played_at_pause  # nothing was skipped while paused …
    nxt = rig.tick(None)  # … and it continues with the very next sample
    expected = answer_tone(rig.rate)[played_at_pause:played_at_pause + len(nxt)]
    assert nxt == expected
    assert rig.session._detector.false_barge_ins == 1


def test_barge_in_off_leaves_playback_alone():
    rig = Rig("xuna")
    rig.session._detector = None
    rig.agent_says(answer_tone(16000), 1)
    for f in frames_of(speech(), 16000):
        rig.tick(f)
    assert not rig.engine.buffer.paused


def test_mic_frames_keep_flowing_while_paused():
    """The server's own VAD needs the user's voice during a barge-in too."""
    rig = paused_rig("xuna")
    rig.session._streaming.set()
    user = frames_of(speech(), 16000)[20:25]
    for f in user:
        rig.tick(f)
    sent = [rig.session.mic.get(0.01) for _ in range(5)]
    assert [item[0] for item in sent] == [f.tobytes() for f in user]
    assert rig.engine.buffer.paused


# -- what servers send that is not quite right, while paused ------------------------------
def test_ids_that_are_not_ids_do_not_kill_the_receive_thread():
    rig = paused_rig("napster")
    rig.server('{"type":"message_received","data":{"role":"assistant","action":"cancelled",'
               '"response_id":["r1"]}}')
    assert rig.engine.buffer.buffered_bytes == 0  # flushed all the same
    rig = Rig("xuna")
    rig.server('{"type":"audio","audio_event":{"audio_base_64":"AQACAA==","event_id":{}}}')
    assert rig.engine.buffer.buffered_bytes == 4
    rig.tick(None)  # and it plays
    assert rig.engine.buffer.buffered_bytes == 0


def test_napster_cancellation_with_a_response_id_drops_the_late_audio():
    rig = paused_rig("napster")
    rig.server('{"type":"message_received","data":{"role":"assistant","action":"cancelled",'
               '"reason":"turn_detected","response_id":"r7"}}')
    rig.server('{"event":"audio_received","data":{"data":"AQACAA=="}}')
    assert rig.engine.buffer.buffered_bytes == 0
    assert rig.session.stats.late_chunks_dropped == 1
