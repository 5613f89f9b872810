"""`edgevoice run` as systemd runs it: a real process, SIGTERM, logs free of secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support import QUESTION_WAV, ROOT, LineReader, ini


def test_sigterm_stops_within_2s_and_no_secret_reaches_the_log(make_agent, tmp_path):
    agent = make_agent("xuna", private=True, ping_interval=0.5)
    sections = agent.config_values()
    api_key = sections["xuna"]["api_key"]
    sections["audio"] = {"backend": "file", "input_file": str(QUESTION_WAV),
                         "output_file": str(tmp_path / "out.wav")}
    sections["log"] = {"level": "debug"}
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(ini(sections))
    proc = subprocess.Popen([sys.executable, "-m", "edgevoice", "run", "--config", str(conf)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=dict(os.environ))
    reader = LineReader(proc.stderr)
    try:
        reader.wait_for("conversation conv_", timeout=20)
        agent.wait_for("pong_ok", count=2, timeout=10)
        agent.wait_for("user_speech_end", timeout=15)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    log = reader.text()
    assert code == 0, log
    assert took < 2.0, f"took {took:.2f} s to stop"
    assert "SIGTERM received, stopping" in log and "stopped" in log
    token = agent.wait_for("ws_open")[0].data["token"]
    assert api_key and api_key not in log
    assert token and token not in log
    assert "token=***" in log  # the signed URL is shown, redacted


def test_devices_lists_alsa_devices_by_name():
    result = subprocess.run([sys.executable, "-m", "edgevoice", "devices"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "edgevoice_test_mic" in result.stdout and "edgevoice_mic48" in result.stdout
    assert "16000" in result.stdout  # rates a device accepts are listed


def test_help_of_every_command():
    for command in ("run", "check-config", "config", "devices", "demo", "localagent"):
        result = subprocess.run([sys.executable, "-m", "edgevoice", command, "--help"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert result.returncode == 0 and "usage: edgevoice " + command in result.stdout
