"""Helpers the tests share (fixtures live in ``tests/conftest.py``; the barge-in rigs, config
helpers, server-message helpers, hostile server rig and fuzz strategies in the modules beside
this one)."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave

import numpy as np
import pytest

from edgevoice.config import ini_text as ini  # noqa: F401  (re-exported: INI text from dicts)
from edgevoice.redact import ScrubbingFormatter

ROOT = pathlib.Path(__file__).resolve().parents[2]


QUESTION_WAV = ROOT / "edgevoice" / "data" / "question.wav"


def read_wav(path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), wav.getframerate()


def write_wav(path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def question() -> tuple[np.ndarray, int]:
    return read_wav(QUESTION_WAV)


def audible_spans(samples: np.ndarray, rate: int, threshold: float = 300.0,
                  min_gap_s: float = 0.25) -> list[tuple[float, float]]:
    """(start_s, end_s) of stretches whose 20 ms RMS is above ``threshold``."""
    hop = rate // 50
    n = len(samples) // hop
    if n == 0:
        return []
    blocks = samples[: n * hop].astype(np.float64).reshape(n, hop)
    loud = np.sqrt((blocks ** 2).mean(axis=1)) > threshold
    spans: list[tuple[float, float]] = []
    start = None
    for i, on in enumerate(loud):
        if on and start is None:
            start = i
        elif not on and start is not None:
            spans.append((start / 50, i / 50))
            start = None
    if start is not None:
        spans.append((start / 50, n / 50))
    merged: list[tuple[float, float]] = []
    for span in spans:
        if merged and span[0] - merged[-1][1] < min_gap_s:
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def file_audio_config(agent, tmp_path, **sections) -> pathlib.Path:
    """Write ``tmp_path/edgevoice.conf``: ``agent``'s config lines, file audio (the shipped
    question in, ``out.wav`` out) and any further ``section={key: value}``."""
    values = agent.config_values()
    values["audio"] = {"backend": "file", "input_file": str(QUESTION_WAV),
                       "output_file": str(tmp_path / "out.wav")}
    for name, keys in sections.items():
        values.setdefault(name, {}).update(keys)
    path = tmp_path / "edgevoice.conf"
    path.write_text(ini(values))
    return path


def require_private_mounts() -> str:
    """The path of ``unshare`` when this process may make a private mount namespace (root
    and util-linux); skips the test, saying why, otherwise."""
    import shutil
    import subprocess

    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([unshare, "-m", "sh", "-c", "mount -t tmpfs tmpfs /run"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    return unshare


def wait_until(condition, timeout: float, what: str) -> None:
    """Wait for a condition on state the daemon updates (polled; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def unplug_microphone(engine) -> None:
    """Every read of ``engine``'s file-backend microphone fails from now on, as when a USB
    microphone is pulled out (its clock raises ENODEV; the rest of the clock works)."""
    clock = engine.capture._clock

    class Unplugged:
        def wait_until_sample(self, n):
            raise OSError(19, "No such device")

        def __getattr__(self, name):
            return getattr(clock, name)

    engine.capture._clock = Unplugged()


def envelope(samples: np.ndarray, rate: int) -> np.ndarray:
    hop = rate // 50
    n = len(samples) // hop
    return np.sqrt((samples[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(axis=1))


def answer_matches_question(answer: np.ndarray, rate: int) -> float:
    """Correlation of the 20 ms loudness envelopes of the answer and the question's speech
    (the local agent parrots the question back)."""
    q, q_rate = question()
    (start, end), = audible_spans(q, q_rate)[:1]
    qe = envelope(q[int(start * q_rate):int(end * q_rate)], q_rate)
    ae = envelope(answer, rate)
    best = 0.0
    for shift in range(0, max(1, len(ae) - len(qe) + 1)):
        seg = ae[shift:shift + len(qe)]
        if len(seg) == len(qe):
            best = max(best, float(np.corrcoef(seg, qe)[0, 1]))
    return best


def speaker_spans(handle):
    samples, rate = read_wav(handle.output)
    return samples, rate, audible_spans(samples, rate)


def drained(handle) -> bool:
    return handle.daemon.engine.buffer.buffered_bytes == 0


def question_then_barge_in(tmp_path, gap_s: float) -> str:
    q, rate = question()
    gap = np.zeros(int(gap_s * rate), dtype="<i2")
    path = tmp_path / "barge_in.wav"
    write_wav(path, np.concatenate([q, gap, q]), rate)
    return str(path)


def start_run(conf, **environ: str) -> "tuple[subprocess.Popen, LineReader]":
    """``edgevoice run --config conf`` as a child process with ``environ`` added to its
    environment, and a reader of its log (stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgevoice", "run", "--config", str(conf)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=dict(os.environ, **environ))
    return proc, LineReader(proc.stderr)


class LineReader:
    """Collects a process's stderr lines on a thread; waits for a line containing text."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line with {text!r} in:\n{''.join(self.lines)}")
                self._cond.wait(remaining)

    def text(self) -> str:
        self._thread.join(5)
        return "".join(self.lines)


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="ev-notify-", dir="/tmp")  # short path (108 max)
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self._cond:
                for line in data.decode().splitlines():
                    self.messages.append((time.monotonic(), line))
                self._cond.notify_all()

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 10.0,
                 after: float = 0.0) -> list[tuple[float, str]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if m[1].startswith(prefix) and m[0] >= after]
                if len(found) >= count:
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {count} x {prefix!r}; got {self.messages}")
                self._cond.wait(0.1)

    def lines(self, prefix: str, after: float = 0.0) -> list[str]:
        with self._cond:
            return [m[1] for m in self.messages if m[1].startswith(prefix) and m[0] >= after]

    def close(self) -> None:
        self.sock.close()


def sine(freq: float, rate: int, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2")


def peak_freq(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def program(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


class BargeInRun:
    """The daemon answering the question, then the user talking over the answer (``gap_s``
    after the question): what the agent logged and what the daemon counted, after the
    second answer played out and the daemon stopped."""

    def __init__(self, make_agent, run_daemon, tmp_path, dialect: str, gap_s: float = 1.0,
                 options: dict | None = None, **extra) -> None:
        self.agent = make_agent(dialect, **(options or {}))
        self.handle = run_daemon(self.agent, question_then_barge_in(tmp_path, gap_s),
                                 extra=extra or None)
        self.interrupted = self.agent.wait_for("interrupted", timeout=20)[0]
        self.second = self.agent.wait_for("reply_start", count=2, timeout=20)[1]
        daemon = self.handle.daemon
        wait_until(lambda: drained(self.handle) and daemon.stats.agent_audio_seconds > 3, 20,
                   "the second answer")
        self.t0 = self.handle.t0()
        self.stats = daemon.stats
        self.handle.stop()


# -- a [tools] program, and the logs and speaker output of a session ---------------------
TEMPERATURE_TOOL = """#!/bin/sh
# answers get_temperature: reads the call's JSON arguments on stdin
args=$(cat)
echo "21.5 degrees ($args)"
"""


def temperature_tool(tmp_path) -> str:
    """A [tools] program for get_temperature that answers with the arguments it got."""
    path = tmp_path / "get_temperature"
    path.write_text(TEMPERATURE_TOOL)
    path.chmod(0o755)
    return str(path)


def no_secret_in(records, *secrets: str) -> None:
    formatter = ScrubbingFormatter("%(message)s")
    for record in records:
        for text in (record.getMessage(), formatter.format(record)):
            for secret in secrets:
                assert secret not in text, f"secret in log line: {text}"


def answer_ok(handle, reply_seconds: float) -> None:
    samples, rate, spans = speaker_spans(handle)
    assert spans, "nothing was played"
    start, end = spans[-1]
    assert abs((end - start) - reply_seconds) < 0.3, (spans, reply_seconds)
    assert answer_matches_question(samples[int(start * rate):int(end * rate)], rate) > 0.8
