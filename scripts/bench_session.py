"""Benchmark of a full-duplex session (run by scripts/bench; prints JSON).

The parent starts the local agent and a daemon *child process* (so that the daemon's CPU
time and memory are measured alone), with file audio: a spoken question repeated with
pauses, so the user talks and the agent answers for the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _percentile(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def child(config_path: str, seconds: float) -> None:
    """Run the daemon for ``seconds`` of streaming and print its own figures as JSON."""
    from edgevoice.config import load
    from edgevoice.daemon import Daemon

    daemon = Daemon(load(config_path))
    runner = threading.Thread(target=daemon.run)
    runner.start()
    deadline = time.monotonic() + 30
    while daemon.stats.frames_sent == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    cpu0 = time.process_time()
    t_start = time.monotonic()
    frames0 = daemon.stats.frames_sent
    time.sleep(seconds)  # the measured interval itself
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - t_start
    stats = daemon.stats
    frames = stats.frames_sent - frames0
    engine = daemon.engine
    daemon.stop()
    runner.join(5)
    sends = list(stats.send_times)
    gaps = np.diff(np.array(sends)) * 1000.0 if len(sends) > 2 else np.array([])
    jitter = np.abs(gaps - 20.0) if len(gaps) else np.array([float("nan")])
    lat = [x * 1000.0 for x in stats.latencies]
    print(json.dumps({
        "audio_seconds": round(wall, 3),
        "frames_sent": frames,
        "cpu_seconds": round(cpu, 4),
        "cpu_seconds_per_audio_second": round(cpu / wall, 5),
        "cpu_percent_of_one_core": round(100.0 * cpu / wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "capture_to_wire_ms": {"p50": round(_percentile(lat, 0.50), 3),
                               "p99": round(_percentile(lat, 0.99), 3)},
        "send_cadence_jitter_ms_p99": round(float(np.percentile(jitter, 99)), 3),
        "playback_underruns": engine.buffer.underruns + getattr(engine.playback, "xruns", 0),
        "agent_audio_seconds": round(stats.agent_audio_seconds, 2),
        "mic_frames_dropped": stats.frames_dropped,
    }))


def make_input(path: str, seconds: float) -> None:
    with wave.open(os.path.join(ROOT, "edgevoice", "data", "question.wav"), "rb") as wav:
        rate = wav.getframerate()
        q = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    gap = np.zeros(int(rate * 3.5), dtype="<i2")
    reps = int(seconds // ((len(q) + len(gap)) / rate)) + 2
    audio = np.concatenate([np.concatenate([q, gap]) for _ in range(reps)])
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(audio.tobytes())


def parent(seconds: float, dialect: str) -> dict:
    from edgevoice.config import ini_text
    from edgevoice.localagent import AgentOptions, LocalAgent

    agent = LocalAgent(dialect=dialect, options=AgentOptions())
    agent.start()
    try:
        with tempfile.TemporaryDirectory(prefix="edgevoice-bench-") as tmp:
            wav_in = os.path.join(tmp, "in.wav")
            make_input(wav_in, seconds + 5)
            sections = agent.config_values()
            sections["audio"] = {"backend": "file", "input_file": wav_in,
                                 "output_file": os.path.join(tmp, "out.wav")}
            sections["log"] = {"level": "warning"}
            conf = os.path.join(tmp, "edgevoice.conf")
            with open(conf, "w") as f:
                f.write(ini_text(sections))
            out = subprocess.run([sys.executable, __file__, "--child", conf, str(seconds)],
                                 capture_output=True, text=True, timeout=seconds + 60)
            if out.returncode != 0:
                raise SystemExit(f"bench child failed:\n{out.stderr}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["dialect"] = dialect
            result["agent_replies"] = agent.count("reply_start")
            return result
    finally:
        agent.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--dialect", default="xuna", choices=("xuna", "voiceapi"))
    ap.add_argument("--child", nargs=2, metavar=("CONFIG", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]))
        return
    print(json.dumps({"full_duplex_session": parent(args.seconds, args.dialect)}, indent=2))


if __name__ == "__main__":
    main()
