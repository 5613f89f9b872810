"""Benchmark of wake-word mode: wake word → first frame on the wire (run by scripts/bench;
prints JSON).

The local agent (xuna dialect, loopback) and a daemon in wake-word mode run in this
process on the file backend, in real time. The microphone hears, ``--cycles`` times:
espeak-ng saying "okay nabu", a short question, then silence long enough for the answer,
the follow-up window and the session's end. For each wake:

- ``wake_to_first_frame_ms``: the capture instant of the 20 ms frame in which the detector
  fired → the local agent receiving the first audio of that session (it has to be opened:
  connect, first messages, the server's ready; then the held question goes out);
- ``wake_to_streaming_ms``: the same wake → the session streaming (the server is ready);
- ``question_heard_in_full``: every utterance the agent heard is as long as the question's
  speech (nothing of it lost while the session opened: it waits in the backlog).

The alternative design, a session held open and un-muted on the wake word, would put the
first frame on the wire one capture→wire latency after the wake (the ``full_duplex_session``
bench: ``capture_to_wire_ms``), at the price of a session billed by the minute that hears
nothing but silence.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RATE = 16000
CYCLE_S = 7.0


def speak(text: str, folder: str) -> np.ndarray:
    from edgevoice.audio.file_backend import read_wav_mono16, resample_pcm
    path = os.path.join(folder, "speech.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", path, text], check=True,
                   capture_output=True)
    pcm, rate = read_wav_mono16(path)
    return np.frombuffer(resample_pcm(pcm, rate, RATE), dtype="<i2")


def make_input(path: str, folder: str, cycles: int) -> float:
    """The microphone's WAV; returns the question's speech length (s)."""
    wake = speak("okay nabu", folder)
    question = speak("what time is it in Lisbon", folder)
    voiced = np.nonzero(np.abs(question) > 300)[0]
    cycle = np.zeros(int(CYCLE_S * RATE), dtype="<i2")
    start = int(0.5 * RATE)
    cycle[start:start + len(wake)] = wake
    start += len(wake) + int(0.4 * RATE)
    cycle[start:start + len(question)] = question
    with wave.open(path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(np.tile(cycle, cycles).tobytes())
    return float(voiced[-1] - voiced[0]) / RATE


def stats(values_s: list[float]) -> dict:
    ms = sorted(v * 1000.0 for v in values_s)
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": round(float(np.percentile(ms, 50)), 1),
            "p90": round(float(np.percentile(ms, 90)), 1), "max": round(ms[-1], 1)}


def run(cycles: int) -> dict:
    from edgevoice.config import ini_text, parse
    from edgevoice.daemon import Daemon
    from edgevoice.lifecycle import DaemonState
    from edgevoice.localagent import LocalAgent

    agent = LocalAgent(dialect="xuna")
    agent.start()
    folder = tempfile.mkdtemp(prefix="edgevoice-wake-bench-")
    try:
        wav = os.path.join(folder, "mic.wav")
        question_s = make_input(wav, folder, cycles)
        values = agent.config_values()
        values["agent"].update({"mode": "wake-word", "history": "off"})
        values["audio"] = {"backend": "file", "input_file": wav,
                           "output_file": os.path.join(folder, "speaker.wav")}
        values["wake_word"] = {"follow_up_s": "0.5", "quiet_s": "3"}
        daemon = Daemon(parse(ini_text(values)))
        wakes: list[float] = []

        def on_state(state, detail) -> None:  # the session thread: woken_at is set by now
            if state is DaemonState.CONNECTING and daemon.wake_word.woken_at is not None:
                if not wakes or wakes[-1] != daemon.wake_word.woken_at:
                    wakes.append(daemon.wake_word.woken_at)

        streaming: list[float] = []

        def on_end(state, detail) -> None:
            after = daemon.wake_word.streaming_after_s
            if state is DaemonState.WAITING_FOR_WAKE and after is not None:
                if len(streaming) < len(wakes):
                    streaming.append(after)

        daemon.add_listener(on_state)
        daemon.add_listener(on_end)
        runner = threading.Thread(target=daemon.run, name="bench-daemon")
        runner.start()
        deadline = time.monotonic() + cycles * CYCLE_S + 10
        while time.monotonic() < deadline and agent.count("ws_closed") < cycles:
            time.sleep(0.1)
        daemon.stop()
        runner.join(5)
        firsts = {e.data["conversation"]: e.t for e in agent.event_log.matching("audio_first")}
        opens = [e.data["conversation"] for e in agent.event_log.matching("ws_open")]
        heard = [e.data["seconds"] for e in agent.event_log.matching("user_speech_end")]
        to_wire = [firsts[c] - w for c, w in zip(opens, wakes) if c in firsts]
        detector = daemon.wake_word.detector
        return {
            "wake_word_session": {
                "design": "a session is opened on the wake word; the question waits in a "
                          "bounded backlog and follows at network speed",
                "cycles": cycles,
                "wakes_detected": len(wakes),
                "sessions_opened": len(opens),
                "wake_to_first_frame_ms": stats(to_wire),
                "wake_to_streaming_ms": stats(streaming),
                "question_speech_s": round(question_s, 2),
                "question_heard_s": [round(h, 2) for h in heard],
                "question_heard_in_full": bool(heard) and min(heard) >= question_s - 0.1,
                "detector_cpu_percent_of_one_core": round(
                    100.0 * detector.busy_s / max(detector.seconds_processed, 1e-9), 2)
                if detector is not None else None,
            }
        }
    finally:
        agent.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=6, help="wake words spoken (7 s each)")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("bench_wake_latency: espeak-ng is needed (apt install espeak-ng)")
    print(json.dumps(run(args.cycles), indent=2))


if __name__ == "__main__":
    main()
