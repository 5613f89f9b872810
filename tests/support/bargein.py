"""Barge-in test rigs: frames of the shipped question's speech, a detector bench that plays
the player and the capture thread in lockstep, and a Session on a real AudioEngine whose
devices never start (the test plays both threads)."""

from __future__ import annotations

import threading
import types

import numpy as np
import webrtcvad

from edgevoice.audio.bargein import BargeInDetector, BargeInSettings, SpeakerLevels, level_db
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.resample import StreamResampler
from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import AgentAudio
from edgevoice.flow import Stats
from edgevoice.session import Session, SessionOptions
from tests.support import audible_spans, question, write_wav

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


CONFIGS = {
    "xuna": "[xuna]\nagent_id = a\n",
    "voiceapi": "[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = http://x\napi_key = k123\n",
    "napster": "[agent]\nprovider = napster\n[napster]\napi_key = k123\ncompanion_id = c\n",
    "navtalk": "[agent]\nprovider = navtalk\n[navtalk]\nlicense = l123\nname = n\n",
    "openai": "[agent]\nprovider = openai\n[openai]\napi_key = k123\n",
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


def answer_tone(rate: int, seconds: float = 6.0) -> bytes:
    """The agent's answer: a quiet tone ramp, easy to recognise when it resumes."""
    n = int(rate * seconds)
    return (np.arange(n) % 1000 + 1).astype("<i2").tobytes()


def paused_rig(dialect: str) -> Rig:
    rig = Rig(dialect)
    response = 1 if dialect == "xuna" else None
    rig.agent_says(answer_tone(rig.rate), response)
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


T0 = 1000.0


def voiced_frames() -> list[np.ndarray]:
    """The voiced 20 ms frames of the shipped question (webrtcvad calls them speech; a
    repeated frame would not do: webrtcvad adapts to a constant signal)."""
    q, rate = question()
    assert rate == 16000
    return [q[k * 320:(k + 1) * 320].copy() for k in range(33, 48)]


SPEECH = voiced_frames()


VOICED = SPEECH[2]


ZERO = np.zeros(320, dtype="<i2")


def talk(count: int, db: float | None = None) -> list[np.ndarray]:
    """``count`` frames of speech (each at ``db`` when given)."""
    frames = [SPEECH[k % len(SPEECH)] for k in range(count)]
    return [at_level(f, db) for f in frames] if db is not None else frames


def at_level(frame: np.ndarray, db: float) -> np.ndarray:
    gain = 10 ** ((db - level_db(frame)) / 20)
    return np.clip(np.round(frame.astype(np.float64) * gain), -32768, 32767).astype("<i2")


class Bench:
    """Plays the player (speaker levels) and the capture thread (mic frames) in lockstep.
    After a flush nothing plays until :meth:`new_response` (the player was flushed)."""

    def __init__(self, confirm_locally: bool = True, rate: int = 16000, **settings) -> None:
        self.settings = BargeInSettings(**settings)
        self.speaker = SpeakerLevels()
        self.detector = BargeInDetector(self.settings, rate, self.speaker, confirm_locally)
        self.twin = webrtcvad.Vad(self.settings.vad_mode)
        self.rate = rate
        self.i = 0
        self.playing = True
        self.flags: list[bool] = []
        self.reduction: float | None = None  # what an echo canceller in front removes (dB)

    def t(self, i: int | None = None) -> float:
        return T0 + (self.i if i is None else i) * FRAME

    def new_response(self) -> None:
        self.playing = True

    def step(self, mic: np.ndarray, speaker_db: float | None = -20.0,
             audible: bool = True) -> str | None:
        """One 20 ms block played at ``speaker_db`` (None: nothing played), then the mic
        frame that ended as it finished."""
        start = self.t()
        if speaker_db is not None and self.playing:
            self.speaker.record(start, speaker_db, audible)
        self.i += 1
        frame = mic.astype("<i2")
        decision = self.detector.process(frame.tobytes(), self.t(), self.reduction)
        self.flags.append(self.twin.is_speech(frame.tobytes(), self.rate) if self.rate in
                          (8000, 16000, 32000, 48000) else None)
        if decision == "flush":
            self.playing = False
        return decision

    def run(self, frames, **kw) -> list[tuple[int, str]]:
        out = []
        for k, f in enumerate(frames):
            d = self.step(f, **kw)
            if d:
                out.append((k, d))
        return out

    def confirmed(self) -> None:
        self.detector.confirmed()
        self.playing = False


def room_ir(path, rt60: float = 0.3, seed: int = 11, rate: int = 16000) -> str:
    """A speaker-to-mic impulse response written to ``path`` (for the ``room`` backend):
    the direct path 1 ms after the speaker (30 cm) and an exponentially decaying diffuse
    tail 3 dB below it, unit energy: the echo arrives at the level the agent speaks at."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[:int(0.004 * rate)] = 0.0
    tail *= np.sqrt(10 ** (-3 / 10) / np.sum(tail ** 2))
    tail[int(0.001 * rate)] = 1.0
    h = tail / np.sqrt(np.sum(tail ** 2))
    write_wav(path, np.round(h * 32767 / max(1.0, np.abs(h).max())), rate)
    return str(path)
