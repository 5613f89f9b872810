"""Local barge-in: the detector (VAD + echo gate) and the session's pause → flush | resume,
for every dialect's way of confirming an interruption."""

from __future__ import annotations

import threading
import types

import numpy as np
import pytest

from edgevoice.audio.bargein import BargeInDetector, BargeInSettings, SpeakerLevels, level_db
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.resample import StreamResampler
from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import AgentAudio
from edgevoice.flow import Stats
from edgevoice.session import Session, SessionOptions
from tests.conftest import audible_spans, question

FRAME = 0.02


def speech(rate: int = 16000) -> np.ndarray:
    """The voiced part of the shipped question, at ``rate``."""
    q, q_rate = question()
    (start, end), = audible_spans(q, q_rate)[:1]
    voiced = q[int(start * q_rate):int(end * q_rate)]
    if rate != q_rate:
        voiced = np.frombuffer(StreamResampler(q_rate, rate).process(voiced.tobytes(), True),
                               dtype="<i2")
    return voiced


def frames_of(signal: np.ndarray, rate: int) -> list[np.ndarray]:
    n = rate // 50
    return [signal[i:i + n] for i in range(0, len(signal) - n + 1, n)]


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
CONFIGS = {
    "xuna": "[xuna]\nagent_id = a\n",
    "voiceapi": "[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = http://x\napi_key = k123\n",
    "napster": "[agent]\nprovider = napster\n[napster]\napi_key = k123\ncompanion_id = c\n",
    "navtalk": "[agent]\nprovider = navtalk\n[navtalk]\nlicense = l123\nname = n\n",
}


class Host:
    """The session's host (:class:`edgevoice.lifecycle.SessionHost`) for a session that
    runs no thread: it keeps what the session hands to the session thread."""

    def __init__(self) -> None:
        self.stats = Stats()
        self.halt = threading.Event()
        self.delivered: list = []

    def deliver(self, session, event) -> bool:
        self.delivered.append(event)
        return True

    def state_changed(self, state, detail) -> None:
        pass

    def beat(self) -> None:
        pass

    def activity(self) -> None:
        pass


class Rig:
    """A Session on a real AudioEngine whose devices are never started: the test plays the
    capture thread (offer_frame) and the player thread (read_into + speaker levels)."""

    def __init__(self, dialect: str) -> None:
        cfg = parse(CONFIGS[dialect])
        self.provider = make_provider(cfg)
        self.rate = self.provider.mic_rate
        device = types.SimpleNamespace(rate=self.rate, close=lambda: None)
        self.engine = AudioEngine(device, device, self.rate, buffer_seconds=30)
        settings = BargeInSettings(initial_coupling_db=-20.0)
        self.host = Host()
        self.session = Session(self.provider, self.engine, cfg.session, self.host,
                               SessionOptions(barge_in=settings))
        self.t = 100.0
        self.block = memoryview(bytearray(self.rate // 50 * 2))

    def agent_says(self, pcm: bytes, response_id=None) -> None:
        self.session._dispatch(AgentAudio(pcm, response_id))

    def server(self, message) -> None:
        for event in self.provider.decode(message):
            self.session._dispatch(event)

    def tick(self, mic: np.ndarray | None) -> bytes:
        """20 ms: the speaker plays a block, the mic hears ``mic``."""
        audible = self.engine.buffer.read_into(self.block) > 0
        played = bytes(self.block)
        self.engine.speaker.record(self.t, level_db(played) if audible else -100.0, audible)
        self.t += FRAME
        frame = mic if mic is not None else np.zeros(self.rate // 50, dtype="<i2")
        self.session.offer_frame(frame.astype("<i2").tobytes(), self.t)
        return played

    def talk(self, frames: list[np.ndarray]) -> None:
        for f in frames:
            self.tick(f)

    def pending(self) -> list:
        out, self.host.delivered = self.host.delivered, []
        return out


def _answer(rate: int, seconds: float = 6.0) -> bytes:
    """The agent's answer: a quiet tone ramp, easy to recognise when it resumes."""
    n = int(rate * seconds)
    return (np.arange(n) % 1000 + 1).astype("<i2").tobytes()


def _paused_rig(dialect: str) -> Rig:
    rig = Rig(dialect)
    response = 1 if dialect == "xuna" else None
    rig.agent_says(_answer(rig.rate), response)
    for _ in range(50):  # one second of answer, user silent
        rig.tick(None)
    user = frames_of(speech(rig.rate), rig.rate)[10:]
    for i, f in enumerate(user):
        rig.tick(f)
        if rig.engine.buffer.paused:
            break
    assert rig.engine.buffer.paused, "the user's speech did not pause the agent"
    assert i <= 4  # within a few frames of the user starting
    return rig


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
    rig = _paused_rig(dialect)
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
    rig = _paused_rig("voiceapi")
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
    rig = _paused_rig(dialect)
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
    expected = _answer(rig.rate)[played_at_pause:played_at_pause + len(nxt)]
    assert nxt == expected
    assert rig.session._detector.false_barge_ins == 1


def test_barge_in_off_leaves_playback_alone():
    rig = Rig("xuna")
    rig.session._detector = None
    rig.agent_says(_answer(16000), 1)
    for f in frames_of(speech(), 16000):
        rig.tick(f)
    assert not rig.engine.buffer.paused


def test_mic_frames_keep_flowing_while_paused():
    """The server's own VAD needs the user's voice during a barge-in too."""
    rig = _paused_rig("xuna")
    rig.session._streaming.set()
    user = frames_of(speech(), 16000)[20:25]
    for f in user:
        rig.tick(f)
    sent = [rig.session.mic.get(0.01) for _ in range(5)]
    assert [item[0] for item in sent] == [f.tobytes() for f in user]
    assert rig.engine.buffer.paused
