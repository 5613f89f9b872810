"""The privacy mute through the whole daemon (file audio, the local agent): muted, the
capture stream is closed, the session ends and nothing reaches the agent; unmuted, the
stream opens again and the mode starts as at boot; the mute survives a restart; every
change is one journal event."""

from __future__ import annotations

import json
import logging
import stat

from edgevoice.lifecycle import DaemonState
from tests.support import wait_until

WAIT = 10.0


def _muted_for(engine, rounds: int) -> None:
    """Until the muted capture thread has waited ``rounds`` more times (0.1 s each)."""
    start = engine.muted_rounds
    wait_until(lambda: engine.muted_rounds >= start + rounds, WAIT, "the mute to last")


def _mute_events(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if getattr(r, "event", None) == "privacy_mute"]


def test_muted_nothing_is_captured_or_sent_and_unmute_reconnects(make_agent, run_daemon,
                                                                 caplog):
    caplog.set_level(logging.INFO)
    agent = make_agent("xuna")
    handle = run_daemon(agent)
    daemon, engine = handle.daemon, handle.daemon.engine
    agent.wait_for("audio_first", timeout=WAIT)
    wait_until(lambda: agent.context.audio_seconds > 0.5, WAIT, "mic audio at the agent")

    daemon.set_muted(True, "test")
    wait_until(lambda: daemon.state is DaemonState.MUTED, WAIT, "the muted state")
    agent.wait_for("ws_closed", timeout=WAIT)   # the session ended (gracefully)
    assert agent.wait_for("ws_closed")[0].data["by"] == "client"
    wait_until(lambda: not engine.capture_open, WAIT, "the capture stream to close")
    assert daemon.muted and not daemon.mic_enabled and daemon.session is None
    heard, captured = agent.context.audio_seconds, engine.frames_captured
    _muted_for(engine, 10)                      # a second of mute
    assert engine.frames_captured == captured   # the microphone was not read at all
    assert engine.capture_errors == 0           # (a read of a closed one would raise)
    assert agent.context.audio_seconds == heard and agent.count("ws_open") == 1

    daemon.start_session()                      # a press cannot open the mic while muted
    _muted_for(engine, 3)
    assert daemon.state is DaemonState.MUTED and agent.count("ws_open") == 1

    daemon.set_muted(False, "test")             # always-on: reconnects, the mic flows
    agent.wait_for("ws_open", count=2, timeout=WAIT)
    wait_until(lambda: agent.context.audio_seconds > heard + 0.5, WAIT, "mic audio again")
    assert engine.capture_open and engine.capture_reopened == 1
    assert daemon.state in (DaemonState.LISTENING, DaemonState.SPEAKING)

    events = _mute_events(caplog)
    assert len(events) == 2, events             # one line each way
    assert "muted=true" in events[0] and "(test)" in events[0]
    assert "muted=false" in events[1]


def test_the_mute_survives_a_restart(make_agent, run_daemon, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    agent = make_agent("xuna")
    first = run_daemon(agent)
    agent.wait_for("ws_open", timeout=WAIT)
    first.daemon.toggle_mute("test")
    wait_until(lambda: first.daemon.state is DaemonState.MUTED, WAIT, "the muted state")
    first.stop()
    kept = tmp_path / "state" / "mute.json"
    assert json.loads(kept.read_text()) == {"muted": True}
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    second = run_daemon(agent)                  # "after the power cut"
    daemon, engine = second.daemon, second.daemon.engine
    wait_until(lambda: daemon.state is DaemonState.MUTED, WAIT, "the muted state")
    _muted_for(engine, 5)
    assert engine.frames_captured == 0 and engine.capture_reopened == 0
    assert not engine.capture_open and agent.count("ws_open") == 1
    assert any("kept from before the restart" in m for m in _mute_events(caplog))

    daemon.toggle_mute("test")
    agent.wait_for("ws_open", count=2, timeout=WAIT)
    wait_until(lambda: engine.frames_captured > 0, WAIT, "frames after the unmute")
    assert json.loads(kept.read_text()) == {"muted": False}


def test_a_switch_holds_the_mute(make_agent, run_daemon):
    agent = make_agent("xuna")
    handle = run_daemon(agent)
    daemon = handle.daemon
    agent.wait_for("ws_open", timeout=WAIT)
    results = []

    class Answers:
        def mute_applied(self, result):
            results.append(result)

    daemon.add_observer(Answers())
    daemon.set_muted(True, "switch")
    daemon.set_muted(False, "cli")              # refused: the switch is closed
    daemon.toggle_mute("button")                # refused too
    wait_until(lambda: len(results) == 3, WAIT, "three answers")
    assert [(r.muted, r.changed, bool(r.refused)) for r in results] == \
        [(True, True, False), (True, False, True), (True, False, True)]
    assert "switch" in results[1].refused
    daemon.set_muted(False, "switch")           # opening the switch unmutes
    agent.wait_for("ws_open", count=2, timeout=WAIT)
    assert not daemon.muted


def test_toggle_mode_unmutes_to_idle_not_to_a_session(make_agent, tmp_path):
    """On unmute the mode starts as at boot: toggle waits for a press."""
    import threading

    from edgevoice.config import parse
    from edgevoice.daemon import Daemon
    from tests.support import QUESTION_WAV, ini

    agent = make_agent("xuna")
    sections = agent.config_values()
    sections["agent"]["state_dir"] = str(tmp_path / "state")
    sections["audio"] = {"backend": "file", "input_file": str(QUESTION_WAV),
                         "output_file": str(tmp_path / "out.wav")}
    daemon = Daemon(parse(ini(sections), "test"), start_session=False)
    thread = threading.Thread(target=daemon.run, name="test-daemon-main")
    thread.start()
    try:
        wait_until(lambda: daemon.state is DaemonState.IDLE, WAIT, "idle")
        daemon.start_session()                  # a press: a session
        agent.wait_for("ws_open", timeout=WAIT)
        daemon.toggle_mute("test")
        agent.wait_for("ws_closed", timeout=WAIT)
        wait_until(lambda: daemon.state is DaemonState.MUTED, WAIT, "the muted state")
        daemon.toggle_mute("test")
        wait_until(lambda: daemon.state is DaemonState.IDLE, WAIT, "idle again")
        assert not daemon.session_active() and agent.count("ws_open") == 1
        # the microphone is open again (the wake word would hear it), no session runs
        wait_until(lambda: daemon.engine.capture_open, WAIT, "the capture stream to reopen")
    finally:
        daemon.stop()
        thread.join(10)
    assert not thread.is_alive()
