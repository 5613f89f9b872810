"""The daemon's life as named states and queued commands: what its listeners hear, in
which order and on which thread, and how commands from other threads are applied."""

from __future__ import annotations

import logging
import threading

from edgevoice.daemon import DaemonObserver
from edgevoice.lifecycle import DaemonState
from edgevoice.threads import join_threads, start_thread
from tests.support.states import StateLog

S = DaemonState


class ControlLog(DaemonObserver):
    """An observer noting the thread each applied command reached it on."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.applied: list[tuple[str, bool]] = []
        self._cond = threading.Condition()

    def controls_changed(self) -> None:
        with self._cond:
            self.applied.append((threading.current_thread().name, self.daemon.mic_enabled))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.applied) >= count, timeout), \
                self.applied


def test_a_session_against_the_local_agent_goes_through_named_states(make_agent, run_daemon):
    agent = make_agent("xuna")
    log = StateLog()
    handle = run_daemon(agent, listeners=[log])
    # the question is asked, the agent answers (speaking) and falls silent again
    log.wait_for(S.CONNECTING, S.LISTENING, S.SPEAKING, S.LISTENING, timeout=20)
    handle.stop()
    states = log.states()
    assert states[:4] == [S.CONNECTING, S.LISTENING, S.SPEAKING, S.LISTENING], states
    assert states[-2:] == [S.STOPPING, S.STOPPED], states
    assert all(isinstance(state, DaemonState) for state, _, _ in log.calls)
    # one thread owns the daemon's life, and it has a name
    assert {name for _, _, name in log.calls} == {"edgevoice-session"}
    connecting = [detail for state, detail, _ in log.calls if state == "connecting"]
    assert any(d.startswith("connecting to xuna at ws://127.0.0.1:") for d in connecting)


def test_commands_from_other_threads_are_applied_in_order_by_the_session_thread(
        make_agent, run_daemon):
    agent = make_agent("xuna")
    log = StateLog()
    handle = run_daemon(agent, listeners=[log])
    daemon = handle.daemon
    controls = ControlLog(daemon)
    daemon.add_observer(controls)
    log.wait_for(S.LISTENING)

    def press_buttons() -> None:  # as gpiozero's threads do
        daemon.set_muted(True)
        daemon.set_mic_open(False)
        daemon.set_muted(False)

    button = threading.Thread(target=press_buttons, name="test-button")
    button.start()
    button.join(5)
    controls.wait_for(3)
    assert [name for name, _ in controls.applied] == ["edgevoice-session"] * 3
    assert [enabled for _, enabled in controls.applied] == [False, False, False]
    # the privacy mute ended the session; the unmute started a new one, mic still closed
    log.wait_for(S.LISTENING, S.MUTED, S.CONNECTING, S.LISTENING)
    assert daemon.session is not None and daemon.session.mic_open is False

    # toggle mode's press: the session ends (idle) and starts again on the next press
    daemon.end_session()
    log.wait_for(S.LISTENING, S.IDLE)
    assert not daemon.session_active()
    assert agent.wait_for("ws_closed", timeout=5)
    daemon.start_session()
    log.wait_for(S.IDLE, S.CONNECTING, S.LISTENING)
    assert agent.wait_for("ws_open", count=2, timeout=10)
    handle.stop()
    assert {name for _, _, name in log.calls} == {"edgevoice-session"}


def test_a_thread_that_will_not_end_is_named_in_the_log(caplog):
    caplog.set_level(logging.WARNING, logger="edgevoice.threads")
    release = threading.Event()
    quick = start_thread("quick", lambda: None)
    stubborn = start_thread("stubborn", lambda: release.wait(30))
    try:
        assert join_threads([quick, stubborn], 0.3) == ["edgevoice-stubborn"]
    finally:
        release.set()
        stubborn.join(5)
    stuck = [r for r in caplog.records if getattr(r, "event", None) == "thread_stuck"]
    assert len(stuck) == 1
    assert "edgevoice-stubborn" in stuck[0].getMessage()
    assert "quick" not in stuck[0].getMessage()
    assert join_threads([quick, stubborn], 0.3) == []  # both ended: nothing to say


def test_a_missing_sound_device_is_a_state_and_a_reload_naming_one_ends_the_wait(
        make_agent, tmp_path):
    from edgevoice.config import parse
    from edgevoice.daemon import Daemon
    from edgevoice.lifecycle import Reload
    from tests.support import QUESTION_WAV, ini

    agent = make_agent("xuna")
    sections = agent.config_values()
    sections["audio"] = {"backend": "alsa", "input_device": "no such microphone",
                         "output_device": "no such speaker"}
    missing = parse(ini(sections))
    sections["audio"] = {"backend": "file", "input_file": str(QUESTION_WAV),
                         "output_file": str(tmp_path / "out.wav")}
    fixed = parse(ini(sections))
    reloads: list[str] = []

    def reloader(current):
        reloads.append(threading.current_thread().name)
        assert current is missing
        return Reload.AUDIO, fixed

    daemon = Daemon(missing, reloader=reloader)
    log = StateLog()
    daemon.add_listener(log)
    runner = threading.Thread(target=daemon.run, name="test-daemon-main")
    runner.start()
    try:
        log.wait_for(S.WAITING_FOR_DEVICE)
        assert not daemon.ready.is_set()
        daemon.request_reload()  # SIGHUP after fixing the device name
        log.wait_for(S.WAITING_FOR_DEVICE, S.CONNECTING, S.LISTENING)
        assert daemon.ready.is_set() and daemon.config is fixed
    finally:
        daemon.stop()
        runner.join(5)
    assert not runner.is_alive()
    assert reloads == ["edgevoice-session"]
    waiting = [d for s, d, _ in log.calls if s == S.WAITING_FOR_DEVICE]
    assert waiting and all(d == "sound device missing" for d in waiting)
