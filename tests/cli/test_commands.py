"""Every console command the README shows, typed the way a user types it: the installed
``edgevoice`` entry point in a subprocess, with its real argument parser."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import ini, read_wav

EDGEVOICE = str(Path(sys.executable).parent / "edgevoice")


def edgevoice(*args: str, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([EDGEVOICE, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, stdin=subprocess.DEVNULL)


class LocalAgentProcess:
    """``edgevoice localagent ...`` running; ``config`` is the INI text it printed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([EDGEVOICE, "localagent", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        lines = []
        for line in self.proc.stdout:  # the config block ends with a blank line after the last section
            lines.append(line)
            if line.strip() == "" and sum(1 for l in lines if l.startswith("[")) >= 2:
                break
        self.config = "".join(l for l in lines if not l.startswith("#"))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def localagent():
    started: list[LocalAgentProcess] = []

    def start(*args: str) -> LocalAgentProcess:
        agent = LocalAgentProcess(*args)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.stop()


def test_localagent_prints_its_config_and_the_daemon_accepts_it(localagent, tmp_path):
    agent = localagent("--dialect", "xuna", "--port", "0")
    assert "[agent]\nprovider = xuna" in agent.config
    assert "url = ws://127.0.0.1:" in agent.config and ":0/" not in agent.config
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(agent.config)
    checked = edgevoice("check-config", "--config", str(conf))
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stderr
    shown = edgevoice("config", "--config", str(conf))
    assert shown.returncode == 0 and "[xuna]" in shown.stdout and "[audio]" in shown.stdout
    assert agent.stop() == 0
    assert any("agent stopped" in line for line in agent.stderr)


@pytest.mark.parametrize("args", [("--dialect", "napster", "--omniagent"),
                                  ("--dialect", "navtalk"), ("--dialect", "voiceapi"),
                                  ("--dialect", "xuna", "--private", "--output-rate", "24000")])
def test_localagent_every_dialect_and_option(localagent, args):
    agent = localagent(*args, "--port", "0", "--log-level", "warning")
    dialect = args[1]
    assert f"provider = {dialect}" in agent.config
    if "--omniagent" in args:
        assert "agent_id = " in agent.config
    if "--private" in args:
        assert "api_key = " in agent.config
    assert agent.stop() == 0


def test_check_config_and_config_on_a_broken_file_exit_78_naming_the_key(tmp_path):
    conf = tmp_path / "edgevoice.conf"
    conf.write_text("[agent]\nprovider = xuna\n[xuna]\nagent_id = a1\n[audio]\nbackend = fil\n")
    for command in ("check-config", "config", "run"):
        result = edgevoice(command, "--config", str(conf))
        assert result.returncode == 78, (command, result.stderr)
        assert "[audio]" in result.stderr and "backend" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_config_masks_secrets(tmp_path):
    conf = tmp_path / "edgevoice.conf"
    conf.write_text("[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = http://127.0.0.1:9\n"
                    "api_key = sk-cli-secret-0042\n")
    result = edgevoice("config", "--config", str(conf))
    assert result.returncode == 0, result.stderr
    assert "sk-cli-secret-0042" not in result.stdout + result.stderr and "***" in result.stdout
    assert "provider = voiceapi" in result.stdout
    assert "[session]" in result.stdout  # defaults are shown too


def test_devices_lists_the_alsa_devices():
    result = edgevoice("devices")
    assert result.returncode == 0, result.stderr
    assert "edgevoice_test_mic" in result.stdout and "16000" in result.stdout


def test_demo_answers_the_question_into_a_wav(tmp_path):
    result = edgevoice("demo", "--dialect", "voiceapi", "--output", "answer.wav", cwd=tmp_path,
                       timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    samples, rate = read_wav(tmp_path / "answer.wav")
    assert rate > 0 and len(samples) > rate and abs(samples).max() > 1000


def test_napster_create_and_update_agent(localagent, tmp_path):
    agent = localagent("--dialect", "napster", "--port", "0")
    values = agent.config
    api_url = next(l.split("=", 1)[1].strip() for l in values.splitlines()
                   if l.startswith("api_url"))
    api_key = next(l.split("=", 1)[1].strip() for l in values.splitlines()
                   if l.startswith("api_key"))
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(ini({"agent": {"provider": "napster"},
                         "napster": {"api_url": api_url, "api_key": api_key,
                                     "companion_id": "comp_lobby", "voice_id": "nova"}}))
    dry = edgevoice("napster", "create-agent", "--config", str(conf), "--name", "Lobby",
                    "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("POST ") and '"Lobby"' in dry.stdout
    assert api_key not in dry.stdout
    created = edgevoice("napster", "create-agent", "--config", str(conf), "--name", "Lobby")
    assert created.returncode == 0, created.stderr
    line = next(l for l in created.stdout.splitlines() if l.strip().startswith("agent_id = "))
    conf.write_text(conf.read_text().replace("[napster]\n", f"[napster]\n{line.strip()}\n"))
    updated = edgevoice("napster", "update-agent", "--config", str(conf))
    assert updated.returncode == 0, updated.stderr
    assert line.split("=", 1)[1].strip() in updated.stdout
    assert api_key not in created.stdout + updated.stdout + created.stderr + updated.stderr


def test_every_command_has_help_and_a_bad_option_is_refused():
    for command in ("run", "check-config", "config", "devices", "demo", "localagent", "napster",
                    "reload", "mute"):
        result = edgevoice(command, "--help")
        assert result.returncode == 0 and f"usage: edgevoice {command}" in result.stdout
    bad = edgevoice("localagent", "--dialect", "nosuch")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    version = edgevoice("--version")
    assert version.returncode == 0 and version.stdout.startswith("edgevoice ")


def test_python_m_localagent_matches_the_sub_command():
    result = subprocess.run([sys.executable, "-m", "edgevoice.localagent", "--help"],
                            capture_output=True, text=True, timeout=60)
    sub = edgevoice("localagent", "--help")
    options = lambda text: {w.strip("[],()") for w in text.split() if w.startswith("--")}  # noqa: E731
    assert result.returncode == 0 and options(result.stdout) == options(sub.stdout)
    assert "--omniagent" in sub.stdout


def test_the_daemons_cli_does_not_load_the_local_agent_server():
    probe = subprocess.run([sys.executable, "-c", "import sys, edgevoice.cli; "
                            "edgevoice.cli.build_parser(); "
                            "print(sorted(m for m in sys.modules if m.startswith('websockets') "
                            "or m == 'edgevoice.localagent.server'))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_cli_check_config_exit_codes(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[agent]\nprovider = nope\n[audio]\nbackend = tape\n")
    result = edgevoice("check-config", "--config", str(bad))
    assert result.returncode == 78
    assert "[agent] provider" in result.stderr and "[audio] backend" in result.stderr
    assert "Traceback" not in result.stderr
    good = tmp_path / "good.conf"
    good.write_text("[xuna]\nagent_id = a\n")
    result = edgevoice("check-config", "--config", str(good))
    assert result.returncode == 0, result.stderr


def test_cli_run_with_invalid_config_exits_78_without_traceback(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[agent]\nprovider = nope\n")
    result = edgevoice("run", "--config", str(bad))
    assert result.returncode == 78
    assert "[agent] provider" in result.stderr and "Traceback" not in result.stderr
    result = edgevoice("run", "--config", str(tmp_path / "missing.conf"))
    assert result.returncode == 78 and "does not exist" in result.stderr
