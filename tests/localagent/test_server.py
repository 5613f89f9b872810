"""The local agent as a whole: the config lines it prints for each dialect, its event log,
and `python -m edgevoice.localagent` as a process."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

import pytest
import requests

from edgevoice.localagent import LocalAgent
from tests.support import ROOT
from tests.support.localagent import KEY, TIMEOUT


def test_config_values_of_xuna_and_voiceapi(make_agent):
    xuna = make_agent("xuna")
    assert xuna.config_values() == {
        "agent": {"provider": "xuna"},
        "xuna": {"agent_id": "local-agent", "url": xuna.ws_base + "/v1/convai/conversation", "api_url": xuna.http_base},
    }
    private = make_agent("xuna", private=True)
    assert private.config_values()["xuna"]["api_key"] == "local-secret-key"
    voice = make_agent("voiceapi")
    assert voice.config_values() == {
        "agent": {"provider": "voiceapi"},
        "voiceapi": {"api_url": voice.http_base, "api_key": "local-secret-key"},
    }


def test_config_values_of_napster_and_navtalk(make_agent):
    napster = make_agent("napster")
    assert napster.config_values() == {
        "agent": {"provider": "napster"},
        "napster": {"api_url": napster.http_base, "api_key": KEY, "companion_id": "comp_local"},
    }
    omni = make_agent("napster", omniagent=True)
    assert omni.config_values()["napster"]["agent_id"] == "agent_local"
    navtalk = make_agent("navtalk")
    assert navtalk.config_values() == {
        "agent": {"provider": "navtalk"},
        "navtalk": {"url": navtalk.ws_base + "/wss/v2/realtime-chat", "license": KEY, "name": "navtalk.Local"},
    }
    with pytest.raises(ValueError, match="napster_audio_form"):
        LocalAgent("napster", options=type(napster.options)(napster_audio_form="binary"))


def test_wait_for_timeout_names_what_was_seen(make_agent):
    agent = make_agent("xuna")
    agent.event_log.record("something_else")
    with pytest.raises(TimeoutError, match="something_elsex1"):
        agent.wait_for("never_happens", timeout=0.05)
    assert agent.count("something_else") == 1


def test_cli_prints_config_and_stops_on_sigterm():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "edgevoice.localagent", "--dialect", "voiceapi", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout_lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [stdout_lines.put(line) for line in process.stdout], daemon=True)
        reader.start()
        lines: list[str] = []
        while not any(line.startswith("api_key") for line in lines):
            try:
                lines.append(stdout_lines.get(timeout=TIMEOUT).strip())
            except queue.Empty:
                raise AssertionError(f"no config printed; got {lines}") from None
        assert "[voiceapi]" in lines and "provider = voiceapi" in lines
        api_url = next(line.split(" = ")[1] for line in lines if line.startswith("api_url"))
        answer = requests.post(f"{api_url}/api/v1/sdk/token", headers={"Authorization": "Bearer local-secret-key"}, timeout=5)
        assert answer.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
        stderr = process.stderr.read()
        assert "http_token" in stderr and answer.json()["token"] not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
