"""Shared fixtures: an ALSA configuration of `file` PCMs, the local agent, and a daemon
running against it with the file audio backend."""

from __future__ import annotations

import os
import pathlib
import tempfile
import threading
import wave

import numpy as np
import pytest

# --- ALSA: must be in place before PortAudio initialises, i.e. before any test runs ------
ALSA_DIR = pathlib.Path(tempfile.mkdtemp(prefix="edgevoice-alsa-"))
ALSA_CONF = ALSA_DIR / "asoundrc"


def _file_pcm(name: str, description: str, infile: str | None, outfile: str) -> str:
    infile_line = f'  infile "{infile}"\n' if infile else ""
    return (f"pcm.{name} {{\n  type file\n  slave.pcm null\n  file \"{outfile}\"\n"
            f"{infile_line}  format \"raw\"\n  hint {{ show on description \"{description}\" }}\n}}\n")


ALSA_CONF.write_text(
    "</usr/share/alsa/alsa.conf>\n"
    + _file_pcm("edgevoice_test_mic", "Test USB Microphone", str(ALSA_DIR / "mic.raw"), "/dev/null")
    + _file_pcm("edgevoice_test_speaker", "Test Speaker", None, str(ALSA_DIR / "speaker.raw"))
    + _file_pcm("edgevoice_mic48", "Test 48k-only Microphone", str(ALSA_DIR / "mic48.raw"),
                "/dev/null")
    + _file_pcm("edgevoice_speaker48", "Test 48k-only Speaker", None,
                str(ALSA_DIR / "speaker48.raw"))
)
for _raw in ("mic.raw", "mic48.raw"):  # capture appears only if its infile exists at enumeration
    (ALSA_DIR / _raw).write_bytes(bytes(640))
os.environ["ALSA_CONFIG_PATH"] = str(ALSA_CONF)

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUESTION_WAV = ROOT / "edgevoice" / "data" / "question.wav"


# --- audio helpers ----------------------------------------------------------------------
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


# --- local agent + daemon ----------------------------------------------------------------
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

@pytest.fixture
def make_agent():
    from edgevoice.localagent import AgentOptions, LocalAgent

    agents = []

    def make(dialect: str = "xuna", **options):
        agent = LocalAgent(dialect=dialect, options=AgentOptions(**options))
        agent.start()
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


from edgevoice.config import ini_text as ini  # noqa: E402  (after the ALSA setup above)


class RunningDaemon:
    """A daemon in a background thread, file audio, against a local agent."""

    def __init__(self, config, thread, daemon, output):
        self.config = config
        self.thread = thread
        self.daemon = daemon
        self.output = output

    def t0(self) -> float:
        """Monotonic time of the file clock's sample 0 (input and output WAVs)."""
        return self.daemon.engine.capture._clock.t0()

    def stop(self, timeout: float = 5.0) -> None:
        self.daemon.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "daemon did not stop"


@pytest.fixture
def run_daemon(tmp_path):
    from edgevoice.config import parse
    from edgevoice.daemon import Daemon

    running: list[RunningDaemon] = []

    def start(agent, input_wav=None, extra: dict | None = None, listeners=()) -> RunningDaemon:
        sections = agent.config_values()
        output = tmp_path / f"speaker{len(running)}.wav"
        sections["audio"] = {"backend": "file", "input_file": str(input_wav or QUESTION_WAV),
                             "output_file": str(output)}
        sections["session"] = {"connect_timeout": "5", "reconnect_max_delay": "5",
                               "auth_retry_delay": "60"}
        for section, keys in (extra or {}).items():
            sections.setdefault(section, {}).update(keys)
        path = tmp_path / f"edgevoice{len(running)}.conf"
        path.write_text(ini(sections))
        config = parse(path.read_text(), str(path))
        daemon = Daemon(config)
        for listener in listeners:
            daemon.add_listener(listener)
        thread = threading.Thread(target=daemon.run, name="test-daemon-main")
        thread.start()
        assert daemon.ready.wait(5), "audio did not open"
        handle = RunningDaemon(config, thread, daemon, output)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.daemon.stop()
        handle.thread.join(5)
