"""Echo cancellation + barge-in benchmark on simulated rooms (run by scripts/bench; JSON).

Offline and faster than real time, on a synthetic clock, this drives the daemon's real
capture path per canceller (``speex``, ``webrtc`` and ``none``):
:class:`~edgevoice.audio.echo_path.SpeakerReference` (fed by the "player" with a device
latency it misreports), :class:`~edgevoice.audio.echo_path.EchoPath` (alignment, delay
tracking, the canceller) and :class:`~edgevoice.audio.bargein.BargeInDetector` on the
cleaned frames, whose "pause"/"resume" pause and resume the player.

Rooms: image-source impulse responses from ``pyroomacoustics`` (fixed seeds, computed at
run time), 6 shoebox rooms with RT60 0.2-0.8 s and speaker-mic distances 5-30 cm, each with
the speaker clean and soft-clipped (12 conversations per canceller, a fresh canceller and
detector each, as after a daemon start). The user stands 1-2.5 m away in the same room.
Signals: espeak-ng speech (the corpus of ``bench_bargein.py``). The echo is set to -26 dBFS
active level at the mic; the user's active level is the echo's plus SER (-12..+12 dB).

Figures per canceller and per SER: misses (no pause within 1 s of onset), onset -> the
speaker falling silent (the pause decision plus what the device buffer still held),
p50/p95/max; false pauses per minute of echo-only playback; ERLE of what is sent during
echo-only answers (echo at the mic over what leaves the canceller); CPU of the capture
path (reference, canceller, detector) per audio second; peak RSS of a process running the
daemon's imports and this pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import webrtcvad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from bench_bargein import (  # noqa: E402
    BLOCK, FS, GAP_S, MISS_WINDOW_S, ONSET_OFFSETS_S, SERVER_INTERRUPT_S, Corpus,
    _onset, _pct, active_level_db, answer_maker, build_corpus, fft_convolve)
from edgevoice.audio.bargein import (  # noqa: E402
    SILENCE_DB, BargeInDetector, BargeInSettings, SpeakerLevels, level_db)
from edgevoice.audio.echo_cancel import open_canceller  # noqa: E402
from edgevoice.audio.echo_path import EchoPath, SpeakerReference  # noqa: E402
from edgevoice.audio.room_backend import soft_clip  # noqa: E402

SER_DB = (-12.0, -6.0, 0.0, 6.0, 12.0)
ROOMS = ((0.2, 0.05), (0.3, 0.10), (0.4, 0.15), (0.5, 0.20), (0.65, 0.25), (0.8, 0.30))
DISTORTION_DRIVE = 3.0
ECHO_DBFS = -26.0            # active level of the echo at the mic
NOISE_DBFS = -65.0
OUT_LATENCY_S = 0.04         # device buffer: a block handed over is heard this much later
LATENCY_ERROR_S = (0.0, 0.012, 0.025, 0.006, 0.018, 0.03)  # what the device misreports
ROUNDS = 3                   # per conversation: ROUNDS x (echo-only answer + one per SER)
ECHO_ANSWER_S = 17.0
CANCELLERS = ("speex", "webrtc", "none")
TARGETS = {"false_pauses": 0, "max_misses_per_30_at_ser_ge_-6": 1, "p95_ms_ser_ge_0": 80.0,
           "p95_ms_ser_-6": 120.0, "erle_db": 25.0, "cpu_percent": 5.0, "peak_rss_mb": 60.0}


def room_irs(rt60: float, distance: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(speaker -> mic, user -> mic) impulse responses of one shoebox room."""
    import pyroomacoustics as pra
    rng = np.random.default_rng(seed)
    dims = [rng.uniform(3.5, 6.0), rng.uniform(3.0, 5.0), rng.uniform(2.4, 3.0)]
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=FS, materials=pra.Material(absorption), max_order=max_order)
    mic = np.array([rng.uniform(0.5, dims[0] - 0.5), rng.uniform(0.3, 0.6), 0.8])
    angle = rng.uniform(0, np.pi)
    room.add_source(list(mic + distance * np.array([np.cos(angle), np.sin(angle), 0.0])))
    far = rng.uniform(1.0, 2.5)
    room.add_source([float(np.clip(mic[0] + rng.uniform(-1, 1), 0.3, dims[0] - 0.3)),
                     float(min(mic[1] + far, dims[1] - 0.3)), 1.6])
    room.add_microphone(list(mic))
    room.compute_rir()

    def trimmed(h: np.ndarray) -> np.ndarray:
        energy = np.cumsum(h[::-1] ** 2)[::-1]
        end = int(np.searchsorted(-energy, -energy[0] * 1e-6))  # -60 dB of what is left
        return h[:max(end, 64)]
    return trimmed(np.asarray(room.rir[0][0])), trimmed(np.asarray(room.rir[0][1]))


@dataclass
class Trial:
    ser: float
    onset_s: float
    early: bool = False
    latency_ms: float | None = None


@dataclass
class Outcome:
    trials: list[Trial] = field(default_factory=list)
    echo_s: float = 0.0
    false_pauses: int = 0
    false_pause_at_s: list[float] = field(default_factory=list)
    linear_energy: float = 0.0
    echo_energy: float = 0.0
    sent_energy: float = 0.0
    cpu_s: float = 0.0
    audio_s: float = 0.0
    delay_errors_ms: list[float] = field(default_factory=list)


class Timeline:
    """Signals on the mic's sample clock, grown on demand."""

    def __init__(self) -> None:
        self.x = np.zeros(60 * FS)

    def add(self, at: int, y: np.ndarray, sign: float = 1.0) -> None:
        if at + len(y) > len(self.x):
            self.x = np.concatenate([self.x, np.zeros(at + len(y) - len(self.x) + 60 * FS)])
        self.x[at:at + len(y)] += sign * y

    def get(self, a: int, b: int) -> np.ndarray:
        if b > len(self.x):
            self.x = np.concatenate([self.x, np.zeros(b - len(self.x) + 60 * FS)])
        return self.x[a:b]


def conversation(corpus: Corpus, cond: int, canceller: str) -> Outcome:
    rt60, distance = ROOMS[cond % len(ROOMS)]
    distorted = cond >= len(ROOMS)
    h_echo, h_user = room_irs(rt60, distance, 100 + cond % len(ROOMS))
    agent_all = np.concatenate(corpus.agent)
    played_level = active_level_db(fft_convolve(
        soft_clip(agent_all, DISTORTION_DRIVE if distorted else 0.0), h_echo))
    h_echo = h_echo * 10 ** ((ECHO_DBFS - played_level) / 20)
    user_level = active_level_db(fft_convolve(np.concatenate(corpus.user), h_user))
    h_user = h_user * 10 ** ((ECHO_DBFS - user_level) / 20)
    rng = np.random.default_rng(500 + cond)
    drive = DISTORTION_DRIVE if distorted else 0.0

    echo, user, spk = Timeline(), Timeline(), Timeline()
    reference = SpeakerReference(FS)
    path = EchoPath(open_canceller(canceller, FS), reference) if canceller != "none" else None
    levels = SpeakerLevels()
    det = BargeInDetector(BargeInSettings(), FS, levels, confirm_locally=False)
    onset_vad = webrtcvad.Vad(0)
    latency_error = LATENCY_ERROR_S[cond % len(LATENCY_ERROR_S)]
    out = Outcome()

    # episodes: (kind, answer, ser, user phrase, onset offset)
    episodes = []
    quantised = [np.round(a * 32768) / 32768 for a in corpus.agent]  # as PCM16 carries it
    answer = answer_maker(quantised, cond * 3, np.zeros(int(0.25 * FS)))

    for r in range(ROUNDS):
        episodes.append(("echo", answer(ECHO_ANSWER_S), 0.0, 0, 0.0))
        for i, ser in enumerate(SER_DB):
            offset = ONSET_OFFSETS_S[(r + i + cond) % len(ONSET_OFFSETS_S)]
            episodes.append(("barge", answer(offset + 2.5), ser,
                             (r * len(SER_DB) + i + cond) % len(corpus.user), offset))

    phase = int(rng.integers(0, BLOCK))
    noise_scale = 10 ** (NOISE_DBFS / 20)
    frame = 0
    heard_next = phase          # speaker sample at which the next block is heard
    ans = None                  # current answer
    pos = 0                     # next answer sample to hand over
    seg_start = None            # (answer pos, heard sample) of the segment playing
    paused = False
    ep_i, enqueue_at, trial, interrupt_at, end_at = 0, FS, None, None, None
    silent_from = 0             # speaker sample from which nothing more is heard
    ep_started = False
    echo_window = None          # (start, end) samples of the echo-only answer

    def segment(start_pos: int, at: int, sign: float) -> None:
        y = ans[start_pos:]
        echo.add(at, fft_convolve(soft_clip(y, drive), h_echo), sign)
        spk.add(at, y, sign)

    while ep_i < len(episodes):
        a, b = frame * BLOCK, (frame + 1) * BLOCK
        wall = b  # the mic frame [a, b) is judged at sample b
        ep = episodes[ep_i]
        if ans is None and end_at is None and wall >= enqueue_at:
            ans, pos, paused, ep_started = ep[1], 0, False, False
        # the player hands over every block due before this frame is judged
        while heard_next - int(OUT_LATENCY_S * FS) <= wall:
            at = heard_next
            playing = ans is not None and not paused and pos < len(ans)
            if playing:
                if seg_start is None:
                    seg_start = (pos, at)
                    segment(pos, at, 1.0)
                if not ep_started:
                    ep_started = True
                    if ep[0] == "barge":
                        u = corpus.user[ep[3]]
                        wet = fft_convolve(u, h_user) * 10 ** (ep[2] / 20)
                        onset_at = at + int(ep[4] * FS)
                        user.add(onset_at, wet)
                        trial = Trial(ep[2], _onset(u, onset_at, onset_vad))
                        interrupt_at = int((trial.onset_s + SERVER_INTERRUPT_S) * FS)
                        end_at = max(interrupt_at, onset_at + len(u)) + int(GAP_S * FS)
                    else:
                        echo_window = [at, None]
                pos += BLOCK
                silent_from = at + BLOCK
            elif seg_start is not None:  # paused, flushed or finished: the segment ends
                if ans is not None and pos < len(ans):
                    segment(pos, seg_start[1] + pos - seg_start[0], -1.0)
                seg_start = None
            block = spk.get(at, at + BLOCK)
            pcm = np.clip(np.round(block * 32768), -32768, 32767).astype("<i2")
            heard_s = at / FS - latency_error  # the device says it is heard earlier
            t0 = time.process_time()
            levels.record(heard_s, level_db(pcm) if playing else SILENCE_DB, playing)
            reference.record(pcm.tobytes(), heard_s)
            out.cpu_s += time.process_time() - t0
            heard_next += BLOCK
        # the mic
        e = echo.get(a, b)
        mic_f = e + user.get(a, b) + rng.standard_normal(BLOCK) * noise_scale
        mic = np.clip(np.round(mic_f * 32768), -32768, 32767).astype("<i2").tobytes()
        t0 = time.process_time()
        sent = path.process(mic, b / FS) if path is not None else mic
        decision = (det.process(path.linear, b / FS, path.reduction_db) if path is not None
                    else det.process(mic, b / FS))  # as the session does
        out.cpu_s += time.process_time() - t0
        out.audio_s += BLOCK / FS
        if ep[0] == "echo" and echo_window is not None:
            s = np.frombuffer(sent, dtype="<i2").astype(np.float64) / 32768
            out.echo_energy += float(np.dot(e, e))
            out.sent_energy += float(np.dot(s, s))
            lin = (np.frombuffer(path.linear, dtype="<i2").astype(np.float64) / 32768
                   if path is not None else mic_f)
            out.linear_energy += float(np.dot(lin, lin))
        if decision == "pause":
            paused = True
            if ep[0] == "echo":
                out.false_pauses += 1
                out.false_pause_at_s.append(round(b / FS, 2))
            elif trial is not None:
                if b / FS <= trial.onset_s + 1e-9:
                    trial.early = True
                elif trial.latency_ms is None and not trial.early:
                    trial.latency_ms = (silent_from / FS - trial.onset_s) * 1000.0
        elif decision == "resume":
            paused = False
        if ep[0] == "echo" and ans is not None and pos >= len(ans) and not paused:
            out.echo_s += len(ans) / FS
            ans, ep_i, enqueue_at, echo_window = None, ep_i + 1, wall + int(GAP_S * FS), None
        elif ep[0] == "echo" and ans is not None and paused and wall - silent_from > 5 * FS:
            ans, paused = None, False  # stuck paused: give up on this answer
        elif ep[0] == "barge" and interrupt_at is not None:
            if wall >= interrupt_at and ans is not None:
                if seg_start is not None and pos < len(ans):
                    segment(pos, seg_start[1] + pos - seg_start[0], -1.0)
                seg_start = None
                ans, paused = None, False  # the server's interruption flushes the answer
                det.confirmed()
            if wall >= end_at:
                out.trials.append(trial)
                trial = interrupt_at = end_at = None
                ep_i += 1
                enqueue_at = wall
        frame += 1
        if frame > 3600 * 50:
            raise RuntimeError("conversation did not finish")
    if path is not None:
        out.delay_errors_ms.append(round((path.delay_s - latency_error) * 1000, 1))
    return out


def summarize(outcomes: list[Outcome]) -> dict:
    trials = [t for o in outcomes for t in o.trials]
    echo_s = sum(o.echo_s for o in outcomes)
    fp = sum(o.false_pauses for o in outcomes)
    by_ser = {}
    for ser in SER_DB:
        ts = [t for t in trials if t.ser == ser and not t.early]
        lat = [t.latency_ms for t in ts if t.latency_ms is not None
               and t.latency_ms <= MISS_WINDOW_S * 1000]
        by_ser[f"{ser:+g}" if ser else "0"] = {
            "misses": f"{len(ts) - len(lat)}/{len(ts)}",
            "paused_before_onset": sum(1 for t in trials if t.ser == ser and t.early),
            "onset_to_silence_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95),
                                    "max": _pct(lat, 100)}}
    echo_e = sum(o.echo_energy for o in outcomes)
    sent_e = sum(o.sent_energy for o in outcomes)
    cpu = sum(o.cpu_s for o in outcomes) / sum(o.audio_s for o in outcomes) * 100
    return {"by_ser_db": by_ser, "false_pauses": fp,
            "false_pauses_per_min": round(fp / (echo_s / 60), 3) if echo_s else None,
            "echo_only_minutes": round(echo_s / 60, 2),
            "erle_db": round(10 * np.log10(echo_e / max(sent_e, 1e-12)), 1),
            "erle_linear_db": round(10 * np.log10(echo_e / max(
                sum(o.linear_energy for o in outcomes), 1e-12)), 1),
            "false_pause_at_s": [o.false_pause_at_s for o in outcomes],
            "cpu_percent_of_one_core": round(cpu, 2),
            "delay_error_ms": [e for o in outcomes for e in o.delay_errors_ms]}


def peak_rss_mb(canceller: str) -> float:
    """Peak RSS of a fresh process with the daemon's imports running this pipeline."""
    code = f"""
import resource, sys, numpy as np
sys.path.insert(0, {ROOT!r})
import edgevoice.daemon
from edgevoice.audio.bargein import BargeInDetector, BargeInSettings, SpeakerLevels
from edgevoice.audio.echo_cancel import open_canceller
from edgevoice.audio.echo_path import EchoPath, SpeakerReference
ref = SpeakerReference(16000)
path = EchoPath(open_canceller({canceller!r}, 16000), ref) if {canceller!r} != "none" else None
det = BargeInDetector(BargeInSettings(), 16000, SpeakerLevels(), False)
x = (np.random.default_rng(1).standard_normal(16000 * 20) * 3000).astype("<i2")
for i in range(0, len(x), 320):
    f = x[i:i + 320].tobytes()
    ref.record(f, i / 16000)
    out = path.process(f, i / 16000 + 0.02) if path else f
    det.process(out, i / 16000 + 0.02)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return round(float(res.stdout.strip().splitlines()[-1]), 1)


def _job(args) -> tuple[str, int, Outcome]:
    corpus, cond, canceller = args
    return canceller, cond, conversation(corpus, cond, canceller)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cancellers", default=",".join(CANCELLERS))
    ap.add_argument("--conditions", type=int, default=2 * len(ROOMS))
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgevoice-aec-") as tmp:
        corpus = build_corpus(tmp)
    cancellers = args.cancellers.split(",")
    jobs = [(corpus, c, k) for k in cancellers for c in range(args.conditions)]
    if args.jobs > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            done = pool.map(_job, jobs, chunksize=1)
    else:
        done = list(map(_job, jobs))
    result = {}
    for k in cancellers:
        result[k] = summarize([o for name, _, o in sorted(done, key=lambda d: d[1])
                               if name == k])
        result[k]["peak_rss_mb"] = peak_rss_mb(k)
    result["rooms"] = [{"rt60_s": rt, "speaker_mic_cm": round(d * 100), "distortion": dist}
                       for dist in (False, True) for rt, d in ROOMS][:args.conditions]
    result["setup"] = {
        "ser_db": list(SER_DB), "echo_active_dbfs": ECHO_DBFS, "noise_dbfs": NOISE_DBFS,
        "device_buffer_ms": OUT_LATENCY_S * 1000, "misreported_latency_ms":
            [e * 1000 for e in LATENCY_ERROR_S], "soft_clip_drive": DISTORTION_DRIVE,
        "rounds_per_conversation": ROUNDS, "targets": TARGETS,
        "latency": "user onset (bench_bargein's definition) -> the speaker falls silent "
                   "(pause decision + blocks already in the device buffer)",
        "erle": "echo energy at the mic / energy sent, over echo-only answers, first "
                "seconds of a fresh canceller included"}
    result["bench_seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps({"echo_cancel": result}, indent=2))


if __name__ == "__main__":
    main()
