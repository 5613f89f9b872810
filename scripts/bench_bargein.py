"""Barge-in benchmark (run by scripts/bench; prints JSON).

Offline and faster than real time, on a synthetic clock, this drives the real
:class:`~edgevoice.audio.bargein.BargeInDetector` exactly as the daemon does:

- the *player* takes 20 ms blocks of the agent's answer from a pausable buffer and calls
  ``speaker.record(play_time, level_db(block), audible)`` for each, ``out_latency`` ahead of
  the block being heard (what ``AudioEngine._player_loop`` does with the device latency);
- the *mic* hears the blocks that were really played through a simulated echo path (delay,
  attenuation, a short exponentially decaying noise reverb) plus the user (own room
  response) at a level relative to the echo, plus a noise floor; each 20 ms mic frame goes
  to ``detector.process(frame, t_end)``, interleaved with the speaker records in the order
  the two threads produce them (a block is recorded before any mic frame that ends after
  the block started playing);
- "pause"/"resume" pause and resume the player (blocks already handed to the device still
  play), and the server's interruption event flushes the answer 1 s after the user's onset.

The corpus is spoken by espeak-ng at run time (agent: ``en-us+f3``, user: ``en+m3``),
resampled to 16 kHz, deterministic (fixed seeds). One "conversation" per room condition
(echo delay x attenuation) with a fresh detector, as after a daemon start: answers the
user lets finish (echo only) alternate with answers the user talks over at each level.

Figures: onset -> "pause" in ms of audio (onset = start of the first 20 ms frame where the
clean user signal is within 30 dB of its loudest frame or webrtcvad mode 0 calls it speech;
pause = end of the mic frame whose processing returned "pause"), false pauses per minute of
echo-only audio, missed barge-ins (no pause within 1 s of onset) and pauses before the
user spoke, per user level; with the gate on (defaults) and off (VAD alone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import soxr
import webrtcvad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edgevoice.audio.bargein import (  # noqa: E402
    SILENCE_DB, BargeInDetector, BargeInSettings, SpeakerLevels, level_db)

FS = 16000
BLOCK = FS // 50  # 20 ms, speaker blocks and mic frames alike

AGENT_VOICE, AGENT_SPEEDS = "en-us+f3", (165, 185)
USER_VOICE, USER_SPEEDS = "en+m3", (150, 190)
AGENT_PHRASES = (
    "Sure. The weather in Paris tomorrow will be mostly sunny, with a high of twenty "
    "two degrees.",
    "I have set a timer for fifteen minutes, and I will remind you when it is done.",
    "Your next meeting is at three thirty in the afternoon, with the design team.",
    "There are several good restaurants nearby. The closest one is an Italian place on "
    "Market Street.",
    "The train to Boston leaves at eight fifteen from platform four, and takes about "
    "four hours.",
    "Here is a recipe for pancakes. You will need flour, two eggs, milk, and a pinch of "
    "salt.",
    "According to my notes, you asked me to call your sister this evening at seven.",
    "The package was shipped yesterday and should arrive on Thursday before noon.",
)
USER_PHRASES = (
    "Wait, stop.",
    "No, that is not what I asked.",
    "Hold on a second.",
    "Actually, cancel that please.",
    "Hey, can you repeat the time?",
    "Okay, thanks, that is enough.",
)

AGENT_LEVEL_DBFS = -20.0      # active speech level of what the speaker plays
NOISE_DBFS = -65.0            # mic noise floor (white)
DELAYS_MS = (20, 50, 100, 200)
ATTENUATIONS_DB = (-6.0, -12.0, -20.0)
USER_LEVELS_DB = (-6.0, 0.0, 6.0, 12.0)  # user's active level minus the echo's
ONSET_OFFSETS_S = (0.25, 0.7, 1.2, 2.0)   # user onset after the answer started playing
ROUNDS = 4                    # per condition: ROUNDS x (1 echo-only answer + 1 per level)
MISS_WINDOW_S = 1.0           # no pause this long after onset: missed
SERVER_INTERRUPT_S = 1.0      # the server's interruption flushes the answer then
GAP_S = 1.5                   # silence between answers
OUT_LATENCY_S = 0.04          # player writes a block this long before it is heard
IN_LATENCY_S = 0.0            # a mic frame is judged this long after it ended
DRR_DB = 3.0                  # echo path: direct-to-reverberant energy ratio
USER_DRR_DB = 8.0
TARGET_P95_MS = 80.0


# -- corpus --------------------------------------------------------------------------------
def _frame_db(x: np.ndarray) -> np.ndarray:
    """Level (dB re full scale 1.0) of each whole 20 ms frame of a float signal."""
    n = len(x) // BLOCK
    p = np.mean(x[:n * BLOCK].reshape(n, BLOCK).astype(np.float64) ** 2, axis=1)
    return 10.0 * np.log10(np.maximum(p, 1e-12))


def active_level_db(x: np.ndarray) -> float:
    """Mean power of the frames within 35 dB of the loudest one (a simple active speech
    level, used the same way for agent, echo and user)."""
    db = _frame_db(x)
    active = db > db.max() - 35.0
    return float(10.0 * np.log10(np.mean(10.0 ** (db[active] / 10.0))))


def _trim(x: np.ndarray) -> np.ndarray:
    db = _frame_db(x)
    idx = np.nonzero(db > db.max() - 45.0)[0]
    return x[idx[0] * BLOCK:(idx[-1] + 1) * BLOCK]


def synth(text: str, voice: str, speed: int, tmp: str) -> np.ndarray:
    """espeak-ng speech at 16 kHz, float in [-1, 1], leading/trailing silence trimmed."""
    path = os.path.join(tmp, f"{len(os.listdir(tmp))}.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", path, text],
                   check=True, capture_output=True)
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return _trim(soxr.resample(x, rate, FS, quality="HQ").astype(np.float32))


@dataclass
class Corpus:
    agent: list[np.ndarray]   # sentences, scaled to AGENT_LEVEL_DBFS
    user: list[np.ndarray]    # phrases, unit scale (levelled per trial)
    user_level: list[float]   # their active levels

    def describe(self) -> dict:
        return {
            "generator": f"espeak-ng (agent {AGENT_VOICE} at {AGENT_SPEEDS} wpm, user "
                         f"{USER_VOICE} at {USER_SPEEDS} wpm), 16 kHz mono PCM16",
            "agent_sentences": len(self.agent),
            "agent_sentence_s": [round(len(a) / FS, 2) for a in self.agent],
            "user_phrases": len(self.user),
            "user_phrase_s": [round(len(u) / FS, 2) for u in self.user],
            "agent_active_level_dbfs": AGENT_LEVEL_DBFS,
            "echo_delays_ms": list(DELAYS_MS),
            "echo_attenuation_db": list(ATTENUATIONS_DB),
            "echo_reverb": f"direct + exp-decaying noise tail, RT60 0.15/0.3 s, DRR {DRR_DB} dB",
            "user_levels_re_echo_db": list(USER_LEVELS_DB),
            "user_onset_after_answer_start_s": list(ONSET_OFFSETS_S),
            "noise_floor_dbfs": NOISE_DBFS,
            "player_out_latency_ms": OUT_LATENCY_S * 1000,
            "onset": "first 20 ms frame of the clean user signal within 30 dB of its loudest "
                     "frame or speech for webrtcvad mode 0; latency = end of the frame that "
                     "returned 'pause' - start of the onset frame",
            "missed": f"no pause within {MISS_WINDOW_S:g} s of onset, k/n over the trials "
                      "not already paused before the onset",
            "false_pauses_per_min": "pauses during answers the user lets finish, per minute "
                                    "of agent audio played",
            "conversations": f"{len(DELAYS_MS) * len(ATTENUATIONS_DB)} (one per delay x "
                             f"attenuation, fresh detector), each {ROUNDS} x (one echo-only "
                             f"answer >= 10 s + one talked-over answer per user level)",
        }


def build_corpus(tmp: str) -> Corpus:
    agent = []
    for i, text in enumerate(AGENT_PHRASES):
        x = synth(text, AGENT_VOICE, AGENT_SPEEDS[i % len(AGENT_SPEEDS)], tmp)
        agent.append(x * 10.0 ** ((AGENT_LEVEL_DBFS - active_level_db(x)) / 20.0))
    user = [synth(t, USER_VOICE, USER_SPEEDS[i % len(USER_SPEEDS)], tmp)
            for i, t in enumerate(USER_PHRASES)]
    return Corpus(agent, user, [active_level_db(u) for u in user])


# -- rooms ---------------------------------------------------------------------------------
def room_ir(rng: np.random.Generator, rt60: float, drr_db: float, gain_db: float) -> np.ndarray:
    """Direct path + exponentially decaying noise tail (from 3 ms), energy gain ``gain_db``."""
    n = int(rt60 * FS)
    t = np.arange(n) / FS
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[:int(0.003 * FS)] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail * np.sqrt(10.0 ** (gain_db / 10.0) / np.sum(tail ** 2))


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n]


@dataclass
class Condition:
    delay_ms: int
    atten_db: float
    rt60: float
    seed: int


def conditions() -> list[Condition]:
    out = []
    for i, d in enumerate(DELAYS_MS):
        for j, a in enumerate(ATTENUATIONS_DB):
            out.append(Condition(d, a, (0.15, 0.3)[(i + j) % 2], 1000 + 10 * i + j))
    return out


# -- one conversation --------------------------------------------------------------------
@dataclass
class Episode:
    kind: str                 # "echo" | "barge"
    agent: np.ndarray         # int16 answer
    level_db: float = 0.0
    user: int = 0
    offset_s: float = 0.0


@dataclass
class Trial:
    level_db: float
    delay_ms: int
    atten_db: float
    onset_s: float = 0.0
    early: bool = False       # paused before the user spoke
    latency_ms: float | None = None
    floor_ms: float | None = None  # same VAD + onset_frames on the clean user signal


@dataclass
class Outcome:
    trials: list[Trial] = field(default_factory=list)
    echo_seconds: float = 0.0
    false_pauses: list[tuple[int, float]] = field(default_factory=list)  # (delay, atten)
    echo_seconds_by: dict = field(default_factory=dict)
    delay_estimates: list[tuple[int, float, float]] = field(default_factory=list)


def answer_maker(sentences: list[np.ndarray], first: int, gap: np.ndarray):
    """``answer(min_s)``: the next sentences (from ``first`` on, cycling), ``gap`` between
    them, until at least ``min_s`` seconds."""
    k = first

    def answer(min_s: float) -> np.ndarray:
        nonlocal k
        parts = []
        while sum(len(p) for p in parts) < min_s * FS:
            parts += [sentences[k % len(sentences)], gap]
            k += 1
        return np.concatenate(parts[:-1])
    return answer


def _episodes(corpus: Corpus, cond_index: int, rounds: int) -> list[Episode]:
    agent16 = [np.clip(np.round(a * 32768), -32768, 32767).astype("<i2") for a in corpus.agent]
    answer = answer_maker(agent16, cond_index * 3, np.zeros(int(0.25 * FS), dtype="<i2"))
    eps = []

    for r in range(rounds):
        eps.append(Episode("echo", answer(10.0)))
        for li, level in enumerate(USER_LEVELS_DB):
            offset = ONSET_OFFSETS_S[(r + li + cond_index) % len(ONSET_OFFSETS_S)]
            eps.append(Episode("barge", answer(offset + 2.5), level,
                               (r * len(USER_LEVELS_DB) + li + cond_index) % len(corpus.user),
                               offset))
    return eps


def run_condition(cond: Condition, cond_index: int, corpus: Corpus, settings: BargeInSettings,
                  detector_cls=BargeInDetector, rounds: int = ROUNDS) -> Outcome:
    rng = np.random.default_rng(cond.seed)
    h = room_ir(rng, cond.rt60, DRR_DB, cond.atten_db)
    h_user = room_ir(rng, cond.rt60, USER_DRR_DB, 0.0)
    echo_level = active_level_db(fft_convolve(np.concatenate(corpus.agent), h))
    delay = int(cond.delay_ms * FS / 1000)
    phase = int(rng.integers(0, BLOCK))  # the player's blocks are not aligned with the mic's
    episodes = _episodes(corpus, cond_index, rounds)
    # the signals from sample ``base`` on: they grow as the conversation goes (false pauses
    # stretch it) and drop what the mic has consumed, so memory stays small
    base = 0
    echo = np.zeros(0)
    user_track = np.zeros(0)
    noise = np.zeros(0)
    noise_scale = 10.0 ** (NOISE_DBFS / 20.0)

    def ensure(n: int) -> None:
        """Make absolute sample ``n`` addressable."""
        nonlocal echo, user_track, noise
        if n - base > len(echo):
            grow = max(n - base - len(echo), 30 * FS)
            echo = np.concatenate([echo, np.zeros(grow)])
            user_track = np.concatenate([user_track, np.zeros(grow)])
            noise = np.concatenate([noise, rng.standard_normal(grow) * noise_scale])

    def consumed(n: int) -> None:
        """Samples before absolute ``n`` are no longer needed."""
        nonlocal echo, user_track, noise, base
        if n - base > 30 * FS:
            drop = n - base
            echo, user_track, noise = echo[drop:].copy(), user_track[drop:].copy(), \
                noise[drop:].copy()
            base = n

    conv_size = 1 << (BLOCK + len(h) - 2).bit_length()
    H = np.fft.rfft(h, conv_size)
    conv_len = BLOCK + len(h) - 1

    speaker = SpeakerLevels()
    det = detector_cls(settings, FS, speaker, confirm_locally=False)
    onset_vad = webrtcvad.Vad(0)
    floor_vad = webrtcvad.Vad(settings.vad_mode)
    out = Outcome()

    # player state
    answer_pcm: np.ndarray | None = None
    pos = 0
    paused = False
    next_block = 0                      # index of the next speaker block to hand over
    # episode state
    ep_i = 0
    enqueue_at = 1.0                    # wall time the next answer reaches the buffer
    ep_started: float | None = None     # play time of the answer's first block
    trial: Trial | None = None
    interrupt_at = end_at = None
    paused_since = None

    max_frames = 3600 * 50  # an hour of audio: something is wrong
    for k in range(max_frames):
        if ep_i >= len(episodes):
            break
        t_end = (k + 1) * BLOCK / FS
        wall = t_end + IN_LATENCY_S
        if answer_pcm is None and ep_i < len(episodes) and end_at is None and wall >= enqueue_at:
            answer_pcm, pos, paused, ep_started = episodes[ep_i].agent, 0, False, None
        # the player: every block it hands over before this frame is judged
        while (phase + next_block * BLOCK) / FS - OUT_LATENCY_S <= wall:
            start = phase + next_block * BLOCK
            next_block += 1
            if answer_pcm is not None and not paused and pos < len(answer_pcm):
                block = np.zeros(BLOCK, dtype="<i2")
                chunk = answer_pcm[pos:pos + BLOCK]
                block[:len(chunk)] = chunk
                pos += len(chunk)
                ensure(start + delay + conv_len)
                speaker.record(start / FS, level_db(block), True)
                y = np.fft.irfft(np.fft.rfft(block / 32768.0, conv_size) * H, conv_size)
                at = start + delay - base
                echo[at:at + conv_len] += y[:conv_len]
                if ep_started is None:
                    ep_started = start / FS
                    ep = episodes[ep_i]
                    if ep.kind == "barge":
                        u = corpus.user[ep.user] * 10.0 ** (
                            (echo_level + ep.level_db - corpus.user_level[ep.user]) / 20.0)
                        at = start + int(ep.offset_s * FS)
                        wet = fft_convolve(u, h_user)
                        ensure(at + len(wet))
                        user_track[at - base:at - base + len(wet)] += wet
                        trial = Trial(ep.level_db, cond.delay_ms, cond.atten_db,
                                      onset_s=_onset(u, at, onset_vad))
                        trial.floor_ms = _floor(u, at, trial.onset_s, floor_vad,
                                                settings.onset_frames)
                        interrupt_at = trial.onset_s + SERVER_INTERRUPT_S
                        end_at = max(interrupt_at, (at + len(u)) / FS) + GAP_S
            else:
                speaker.record(start / FS, SILENCE_DB, False)
        # the mic
        a, b = k * BLOCK, (k + 1) * BLOCK
        consumed(a)
        ensure(b + FS)
        a, b = a - base, b - base
        mic = np.clip(np.round((echo[a:b] + user_track[a:b] + noise[a:b]) * 32768),
                      -32768, 32767).astype("<i2")
        decision = det.process(mic.tobytes(), t_end)
        ep = episodes[ep_i]
        if decision == "pause":
            paused = True
            paused_since = wall
            if ep.kind == "echo":
                out.false_pauses.append((cond.delay_ms, cond.atten_db))
            elif trial is not None:
                if t_end <= trial.onset_s + 1e-9:
                    trial.early = True
                elif trial.latency_ms is None and not trial.early:
                    trial.latency_ms = (t_end - trial.onset_s) * 1000.0
        elif decision == "resume":
            paused = False
            paused_since = None
        elif decision == "flush":  # not with confirm_locally=False
            answer_pcm = None
        # episode bookkeeping
        if ep.kind == "echo" and answer_pcm is not None:
            if paused and paused_since is not None and wall - paused_since > 5.0:
                answer_pcm, paused = None, False  # never stuck: give up on this answer
            if answer_pcm is None or (pos >= len(answer_pcm) and not paused):
                played = pos / FS
                out.echo_seconds += played
                out.echo_seconds_by[(cond.delay_ms, cond.atten_db)] = \
                    out.echo_seconds_by.get((cond.delay_ms, cond.atten_db), 0.0) + played
                answer_pcm = None
                ep_i += 1
                enqueue_at = wall + GAP_S
        elif ep.kind == "barge" and interrupt_at is not None:
            if wall >= interrupt_at and answer_pcm is not None:
                answer_pcm, paused = None, False  # the server's interruption: flush
                det.confirmed()
            if end_at is not None and wall >= end_at:
                out.trials.append(trial)
                trial = interrupt_at = end_at = None
                ep_i += 1
                enqueue_at = wall
    estimate = getattr(det, "echo_delay_s", None) if settings.gate else None
    out.delay_estimates.append((cond.delay_ms, cond.atten_db,
                                None if estimate is None else estimate * 1000.0))
    if ep_i < len(episodes):
        raise RuntimeError(f"conversation did not finish: episode {ep_i}/{len(episodes)}")
    return out


def _onset(u: np.ndarray, at: int, vad: webrtcvad.Vad) -> float:
    """Start (s) of the first mic-grid frame where the clean user signal is speech."""
    first = at // BLOCK
    x = np.concatenate([np.zeros(at - first * BLOCK), u])
    x = np.concatenate([x, np.zeros(-len(x) % BLOCK)])
    db = _frame_db(x)
    peak = db.max()
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")
    for i, lv in enumerate(db):
        if lv > peak - 30.0 or vad.is_speech(pcm[i * BLOCK:(i + 1) * BLOCK].tobytes(), FS):
            return (first + i) * BLOCK / FS
    return (first + len(db)) * BLOCK / FS


def _floor(u: np.ndarray, at: int, onset_s: float, vad: webrtcvad.Vad, frames: int) -> float:
    """Onset -> pause (ms) of an ideal echo-free detector: the same VAD on the clean user
    signal alone, ``frames`` consecutive speech frames."""
    first = at // BLOCK
    x = np.concatenate([np.zeros(at - first * BLOCK), u])
    x = np.concatenate([x, np.zeros(-len(x) % BLOCK)])
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")
    noise = np.random.default_rng(at).standard_normal(len(pcm)) * 10.0 ** (NOISE_DBFS / 20) * 32768
    pcm = np.clip(pcm + np.round(noise), -32768, 32767).astype("<i2")
    run = 0
    for i in range(len(pcm) // BLOCK):
        run = run + 1 if vad.is_speech(pcm[i * BLOCK:(i + 1) * BLOCK].tobytes(), FS) else 0
        if run >= frames:
            return round(((first + i + 1) * BLOCK / FS - onset_s) * 1000.0, 1)
    return float("nan")


# -- figures -------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(np.array(values), q, method="higher")), 1)


def _latency(trials: list[Trial]) -> dict:
    lat = [t.latency_ms for t in trials if t.latency_ms is not None
           and t.latency_ms <= MISS_WINDOW_S * 1000]
    return {"p50": _pct(lat, 50), "p95": _pct(lat, 95), "max": _pct(lat, 100), "n": len(lat)}


def _missed(trials: list[Trial]) -> str:
    fair = [t for t in trials if not t.early]
    miss = [t for t in fair if t.latency_ms is None or t.latency_ms > MISS_WINDOW_S * 1000]
    return f"{len(miss)}/{len(fair)}"


def summarize(outcomes: list[Outcome], settings: BargeInSettings,
              delays: list[int] | None = None) -> dict:
    trials = [t for o in outcomes for t in o.trials]
    fp = [f for o in outcomes for f in o.false_pauses]
    echo_s = sum(o.echo_seconds for o in outcomes)
    by_level = lambda lv: [t for t in trials if t.level_db == lv]  # noqa: E731
    key = lambda lv: f"{lv:+g}" if lv else "0"  # noqa: E731
    floor = [t.floor_ms for t in trials if t.floor_ms is not None and t.floor_ms == t.floor_ms]
    result = {
        "onset_to_pause_ms": _latency(trials),
        "clean_signal_floor_ms": {"p50": _pct(floor, 50), "p95": _pct(floor, 95)},
        "false_pauses_per_min": round(len(fp) / (echo_s / 60.0), 2) if echo_s else None,
        "false_pauses": len(fp),
        "echo_only_minutes": round(echo_s / 60.0, 2),
        "missed_by_level_db": {key(lv): _missed(by_level(lv)) for lv in USER_LEVELS_DB},
        "paused_before_onset_by_level_db": {
            key(lv): f"{sum(t.early for t in by_level(lv))}/{len(by_level(lv))}"
            for lv in USER_LEVELS_DB},
        "onset_to_pause_ms_by_level_db": {key(lv): _latency(by_level(lv))
                                          for lv in USER_LEVELS_DB},
        "trials": len(trials),
        "meets_targets": {
            "p95_onset_to_pause_le_80ms": bool(trials) and _latency(trials)["p95"] is not None
            and _latency(trials)["p95"] <= TARGET_P95_MS,
            "zero_false_pauses": not fp,
            "no_pause_before_onset": not any(t.early for t in trials)},
        "by_delay_ms": {},
        "settings": asdict(settings),
    }
    for d in sorted(set(DELAYS_MS if delays is None else delays)):
        dt = [t for t in trials if t.delay_ms == d]
        secs = sum(v for o in outcomes for (dd, _), v in o.echo_seconds_by.items() if dd == d)
        result["by_delay_ms"][str(d)] = {
            "onset_to_pause_ms": _latency(dt),
            "missed": _missed(dt),
            "paused_before_onset": f"{sum(t.early for t in dt)}/{len(dt)}",
            "false_pauses_per_min": round(sum(1 for f in fp if f[0] == d) / (secs / 60), 2)
            if secs else None,
            "estimated_echo_delay_ms": [None if e is None else round(e) for o in outcomes
                                        for (dd, _, e) in o.delay_estimates if dd == d],
        }
    return result


def run(settings: BargeInSettings, corpus: Corpus, detector_cls=BargeInDetector,
        conds: list[Condition] | None = None, rounds: int = ROUNDS) -> dict:
    """Every condition's conversation with a fresh detector of ``detector_cls``; figures."""
    conds = conditions() if conds is None else conds
    outcomes = [run_condition(c, i, corpus, settings, detector_cls, rounds)
                for i, c in enumerate(conds)]
    return summarize(outcomes, settings, [c.delay_ms for c in conds])


def _source_id() -> str:
    """Which detector was measured (its file is edited often): path@md5 prefix."""
    import hashlib
    import edgevoice.audio.bargein as module
    with open(module.__file__, "rb") as f:
        digest = hashlib.md5(f.read()).hexdigest()[:8]
    return f"{os.path.relpath(module.__file__, ROOT)}@{digest}"


def _run_job(args) -> dict:
    name, settings, corpus = args
    return name, run(settings, corpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes (gate on and gate off run side by side)")
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("bench_bargein: espeak-ng is needed (apt install espeak-ng)")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgevoice-bargein-") as tmp:
        corpus = build_corpus(tmp)
    jobs = [("gate_on", BargeInSettings(), corpus),
            ("gate_off", replace(BargeInSettings(), gate=False), corpus)]
    if args.jobs > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(min(args.jobs, len(jobs))) as pool:
            results = dict(pool.map(_run_job, jobs))
    else:
        results = dict(map(_run_job, jobs))
    results["corpus"] = corpus.describe()
    results["detector_source"] = _source_id()
    results["bench_seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps({"barge_in": results}, indent=2))


if __name__ == "__main__":
    main()
