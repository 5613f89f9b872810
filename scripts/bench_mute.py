"""Privacy mute timings (run by scripts/bench; JSON).

The daemon in this process, file audio (paced in real time), always-on mode, against the
local agent on loopback. Each of ``--cycles`` rounds: mute, then unmute, measuring

- mute → capture stream closed (the capture thread closes it after the read in progress);
- mute → the agent sees the WebSocket closed (the session ends gracefully);
- unmute → the first mic frame of the new session reaches the agent (reopen the stream,
  reconnect, stream again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _until(condition, timeout: float = 15.0) -> float:
    """Poll (1 ms) until ``condition()``; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("bench_mute: timed out")
        time.sleep(0.001)
    return time.monotonic()


def _stats(values: list[float]) -> dict:
    ms = sorted(v * 1000 for v in values)
    return {"p50_ms": round(ms[len(ms) // 2], 1), "max_ms": round(ms[-1], 1), "n": len(ms)}


def run(cycles: int) -> dict:
    from edgevoice.config import ini_text, parse
    from edgevoice.daemon import Daemon
    from edgevoice.localagent import AgentOptions, LocalAgent

    agent = LocalAgent(dialect="xuna", options=AgentOptions())
    agent.start()
    closed, hung_up, first_frame = [], [], []
    try:
        with tempfile.TemporaryDirectory(prefix="edgevoice-bench-mute-") as tmp:
            sections = agent.config_values()
            sections["agent"]["state_dir"] = tmp
            sections["audio"] = {"backend": "file", "output_file": os.path.join(tmp, "o.wav")}
            sections["log"] = {"level": "warning"}
            daemon = Daemon(parse(ini_text(sections), "bench"))
            thread = threading.Thread(target=daemon.run, name="bench-daemon")
            thread.start()
            try:
                agent.wait_for("audio_first", timeout=15)
                for n in range(1, cycles + 1):
                    engine = daemon.engine
                    t = time.monotonic()
                    daemon.set_muted(True, "bench")
                    closed.append(_until(lambda: not engine.capture_open) - t)
                    gone = agent.wait_for("ws_closed", count=n, timeout=15)[-1]
                    hung_up.append(gone.t - t)
                    time.sleep(0.3)  # muted a moment, as a person would be
                    t = time.monotonic()
                    daemon.set_muted(False, "bench")
                    heard = agent.wait_for("audio_first", count=n + 1, timeout=15)[-1]
                    first_frame.append(heard.t - t)
            finally:
                daemon.stop()
                thread.join(10)
    finally:
        agent.stop()
    return {"privacy_mute": {
        "mute_to_capture_closed": _stats(closed),
        "mute_to_session_closed_at_agent": _stats(hung_up),
        "unmute_to_first_frame_at_agent": _stats(first_frame),
        "backend": "file (real-time paced), local xuna agent on loopback",
    }}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cycles", type=int, default=10)
    print(json.dumps(run(ap.parse_args().cycles), indent=2))


if __name__ == "__main__":
    main()
