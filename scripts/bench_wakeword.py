"""Wake word engine benchmark (run by scripts/bench; prints JSON).

Compares the two engines of :mod:`edgevoice.audio.wakeword` (``micro``: pymicro-wakeword,
``open``: pyopen-wakeword) on the espeak-ng corpus of :mod:`wakeword_corpus` (made at
bench time, cached): each engine runs in a fresh subprocess that

1. imports numpy and the detector module, and notes its peak RSS (the baseline);
2. loads the engine with all four bundled models (timed; peak RSS again: what loading
   adds);
3. feeds the wake track then the negative track through ONE detector, 20 ms frames at
   16 kHz as the capture thread would, as fast as it can (not paced), and counts
   detections: a detection of a phrase's model from its start to 1 s after its end is a
   hit, any other detection a false accept;
4. feeds 30 s of the corpus to a detector with only ``okay_nabu`` (the cost of one model).

CPU per audio second: the process's CPU time (every thread) over the loop / the audio
seconds fed (``cpu_per_audio_s``: what the engine costs the machine); the feeding thread's
alone (``thread_cpu_per_audio_s``) and the detector's own ``busy_s`` (``busy_per_audio_s``,
thread CPU inside ``process()``, what the daemon's capture thread pays). They differ when
the engine runs threads of its own: pyopen-wakeword's TensorFlow Lite interpreters do (a
pool per interpreter), pymicro-wakeword's do not. Both engines run side by side
(``--jobs 2``); the figures are CPU time, not wall time, so that changes them little.

Usage: ``.venv/bin/python scripts/bench_wakeword.py [--negative-minutes 30] [--trials 48]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

FRAME = 640  # bytes: 20 ms at 16 kHz
HIT_AFTER_END_S = 1.0
ENGINES = ("micro", "open")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - Linux only


def _feed(detector, pcm: bytes) -> list[tuple[float, str]]:
    """Every detection as (end of its frame in s, model)."""
    found = []
    process = detector.process
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        heard = process(pcm[i:i + FRAME])
        if heard is not None:
            found.append(((i + FRAME) / (2 * 16000), heard))
    return found


def score(events: list[dict], found: list[tuple[float, str]]) -> tuple[dict, list]:
    """Per model hits over phrases; the detections that were not hits."""
    hit_ids = set()
    stray = []
    for t, model in found:
        match = next((i for i, e in enumerate(events) if e["model"] == model
                      and e["start_s"] <= t <= e["end_s"] + HIT_AFTER_END_S
                      and i not in hit_ids), None)
        if match is None:
            stray.append((t, model))
        else:
            hit_ids.add(match)
    per_model = {}
    for i, e in enumerate(events):
        m = per_model.setdefault(e["model"], {"phrases": 0, "hits": 0})
        m["phrases"] += 1
        m["hits"] += i in hit_ids
    for m in per_model.values():
        m["recall"] = round(m["hits"] / m["phrases"], 3)
    out = {"per_model": per_model, "recall": round(len(hit_ids) / max(len(events), 1), 3)}
    for key, unit in (("snr_db", " dB"), ("voice", ""), ("speed", " wpm"), ("pitch", "")):
        tally: dict[str, list[int]] = {}
        for i, e in enumerate(events):
            counts = tally.setdefault(f"{e[key]:g}{unit}" if unit else str(e[key]), [0, 0])
            counts[0] += i in hit_ids
            counts[1] += 1
        out[f"recall_by_{key.split('_')[0]}"] = {k: round(h / n, 3)
                                                for k, (h, n) in sorted(tally.items())}
    return out, stray


def worker(engine: str, corpus_args: dict) -> dict:
    """One engine, in this (fresh) process."""
    import numpy  # noqa: F401  (the baseline includes numpy)
    import wakeword_corpus as wc
    from edgevoice.audio.wakeword import WakeWordDetector, builtin_models
    baseline = _peak_rss_mb()
    models = list(wc.PHRASES)
    started = time.perf_counter()
    detector = WakeWordDetector(models, 16000, engine=engine)
    load_s = time.perf_counter() - started
    loaded = _peak_rss_mb()
    threads = len(os.listdir("/proc/self/task"))
    corpus, _ = wc.load(wc.Settings(**corpus_args))  # after the RSS figures: it is big
    wake, negative = corpus.wake.tobytes(), corpus.negative.tobytes()
    del corpus.wake, corpus.negative
    cpu0, thread0 = time.process_time(), time.thread_time()
    found_wake = _feed(detector, wake)
    detector.reset()
    found_negative = _feed(detector, negative)
    cpu, thread_cpu = time.process_time() - cpu0, time.thread_time() - thread0
    audio_s = (len(wake) + len(negative)) / 32000
    recall, stray = score(corpus.events, found_wake)
    negative_h = len(negative) / 32000 / 3600
    fa_models = {m: sum(1 for _, h in found_negative if h == m) for m in models}
    result = {
        "models": models,
        "builtin_models": list(builtin_models(engine)),
        "load_s": round(load_s, 3),
        "rss_baseline_mb": round(baseline, 1),
        "rss_added_by_loading_mb": round(loaded - baseline, 1),
        "threads_after_loading": threads,
        "cpu_per_audio_s": round(cpu / audio_s, 4),
        "thread_cpu_per_audio_s": round(thread_cpu / audio_s, 4),
        "busy_per_audio_s": round(detector.busy_s / detector.seconds_processed, 4),
        **recall,
        "false_accepts_negative": len(found_negative),
        "false_accepts_per_hour": round(len(found_negative) / negative_h, 2),
        "false_accepts_per_hour_by_model": {m: round(n / negative_h, 2)
                                            for m, n in fa_models.items()},
        "stray_detections_in_wake_track": len(stray),
    }
    detector.close()
    one = WakeWordDetector(["okay_nabu"], 16000, engine=engine)
    cpu0 = time.process_time()
    _feed(one, negative[:30 * 32000])
    result["cpu_per_audio_s_okay_nabu_alone"] = round(
        (time.process_time() - cpu0) / one.seconds_processed, 4)
    one.close()
    return result


def _run_worker(engine: str, corpus_args: dict) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", engine,
                           "--corpus-args", json.dumps(corpus_args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--trials", type=int, default=8, help="phrases per model (1-48)")
    ap.add_argument("--negative-minutes", type=float, default=3.0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus-args", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.corpus_args))))
        return
    import wakeword_corpus as wc
    most = len(wc.VOICES) * len(wc.SPEEDS) * len(wc.PITCHES)
    if not 1 <= args.trials <= most:
        ap.error(f"--trials must be 1-{most} (one per voice x speed x pitch)")
    if not 0 < args.negative_minutes <= 600:
        ap.error("--negative-minutes must be more than 0 and at most 600")
    t0 = time.monotonic()
    corpus_args = {"trials": args.trials, "negative_minutes": args.negative_minutes}
    corpus, cached = wc.load(wc.Settings(**corpus_args))  # built once, before the workers
    engines = [e for e in args.engines.split(",") if e]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = dict(zip(engines, pool.map(lambda e: _run_worker(e, corpus_args), engines)))
    results["corpus"] = {**corpus.describe(), "from_cache": cached}
    results["bench_seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps({"wake_word": results}, indent=2))


if __name__ == "__main__":
    main()
