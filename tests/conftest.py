"""Shared fixtures: the local agent, a daemon running against it with the file audio backend,
and systemd's notify socket. Helpers live in ``tests/support/``; this file first puts the
ALSA configuration of `file` PCMs in place, before anything initialises PortAudio."""

from __future__ import annotations

import os
import tempfile
import threading

import pytest

import tests.support.alsa  # noqa: F401  (first: sets ALSA_CONFIG_PATH)
from tests.support import QUESTION_WAV, NotifySocket, ini

# No test (nor a daemon it starts) keeps state in the machine's /var/lib/edgevoice: a
# privacy mute left there would start every later daemon muted.
os.environ["STATE_DIRECTORY"] = tempfile.mkdtemp(prefix="edgevoice-state-")


# --- local agent + daemon ----------------------------------------------------------------
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

    def start(agent, input_wav=None, extra: dict | None = None, listeners=(),
              adjust=None) -> RunningDaemon:
        """``adjust(config) -> config``: settings the file cannot give (tunables)."""
        sections = agent.config_values()
        # history and other state stay in the test's own folder (not /var/lib/edgevoice)
        sections["agent"]["state_dir"] = str(tmp_path / "state")
        output = tmp_path / f"speaker{len(running)}.wav"
        sections["audio"] = {"backend": "file", "input_file": str(input_wav or QUESTION_WAV),
                             "output_file": str(output)}
        sections["session"] = {"connect_timeout": "5", "reconnect_max_delay": "5",
                               "auth_retry_delay": "60"}
        # the speaker's output holds the agent's voice alone unless a test asks for sounds
        sections["sounds"] = {name: "off" for name in ("listening", "ended", "error",
                                                       "thinking")}
        for section, keys in (extra or {}).items():
            sections.setdefault(section, {}).update(keys)
        path = tmp_path / f"edgevoice{len(running)}.conf"
        path.write_text(ini(sections))
        config = parse(path.read_text(), str(path))
        if adjust is not None:
            config = adjust(config)
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


@pytest.fixture
def notify():
    sock = NotifySocket()
    yield sock
    sock.close()
