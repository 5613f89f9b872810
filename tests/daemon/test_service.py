"""`edgevoice run` as a systemd service: sd_notify read from a real NOTIFY_SOCKET, SIGHUP
reloads (valid and invalid), the watchdog following thread health, the button modes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edgevoice.config import parse
from tests.support import QUESTION_WAV, ROOT, LineReader, ini, question, wait_until, write_wav


def test_ready_status_watchdog_reload_and_stopping(make_agent, tmp_path, notify):
    agent = make_agent("xuna")
    sections = agent.config_values()
    sections["audio"] = {"backend": "file", "input_file": str(QUESTION_WAV),
                         "output_file": str(tmp_path / "out.wav")}
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(ini(sections))
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="1000000")
    proc = subprocess.Popen([sys.executable, "-m", "edgevoice", "run", "--config", str(conf)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=env)
    reader = LineReader(proc.stderr)
    try:
        ready = notify.wait_for("READY=1")[0]
        opened = reader.wait_for("file audio: input", timeout=5)
        assert opened  # READY came once the sound devices were open
        notify.wait_for("STATUS=connected to xuna agent", timeout=10)
        notify.wait_for("WATCHDOG=1", count=3, timeout=5, after=ready[0])
        agent.wait_for("ws_open")

        # a valid change of agent settings: RELOADING, READY, a new session
        sections["xuna"]["first_message"] = "Hello from the reloaded config"
        conf.write_text(ini(sections))
        t = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1", after=t)
        notify.wait_for("READY=1", after=t)
        second = agent.wait_for("client_init", count=2, timeout=10)[1]
        assert second.data["message"]["conversation_config_override"]["agent"][
            "first_message"] == "Hello from the reloaded config"

        # an invalid config is rejected and the running one stays
        bad = {**sections, "audio": {**sections["audio"], "backend": "tape"}}
        conf.write_text(ini(bad))
        t = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1", after=t)
        notify.wait_for("READY=1", after=t)
        reader.wait_for("reload rejected: [audio] backend", timeout=5)
        assert any("reload rejected" in s for s in notify.lines("STATUS=", after=t))
        notify.wait_for("WATCHDOG=1", count=2, timeout=5, after=time.monotonic())
        assert agent.count("ws_open") == 2 and proc.poll() is None

        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        notify.wait_for("STOPPING=1", after=t, timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def _service(tmp_path, agent, extra=None, input_wav=None, pin_factory=None):
    from edgevoice.service import Service

    sections = agent.config_values()
    sections["audio"] = {"backend": "file", "input_file": str(input_wav or QUESTION_WAV),
                         "output_file": str(tmp_path / "out.wav")}
    sections["agent"]["state_dir"] = str(tmp_path / "state")  # the mute is kept there
    for section, keys in (extra or {}).items():
        sections.setdefault(section, {}).update(keys)
    path = tmp_path / "edgevoice.conf"
    path.write_text(ini(sections))
    service = Service(str(path), parse(path.read_text(), str(path)), pin_factory=pin_factory)
    thread = threading.Thread(target=service.run)
    thread.start()
    assert service.daemon.ready.wait(5)
    return service, thread


def test_watchdog_stops_while_a_thread_is_stuck_and_resumes(make_agent, tmp_path, notify,
                                                           monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "600000")  # a ping every 0.3 s while healthy
    agent = make_agent("xuna")
    service, thread = _service(tmp_path, agent)
    try:
        notify.wait_for("WATCHDOG=1", count=3, timeout=5)
        capture = service.daemon.engine.capture
        stuck, release = threading.Event(), threading.Event()
        clock = capture._clock

        class StuckClock:  # the capture thread hangs in its next read
            def wait_until_sample(self, n):
                stuck.set()
                release.wait(10)
                return clock.wait_until_sample(n)

            def __getattr__(self, name):
                return getattr(clock, name)

        capture._clock = StuckClock()
        assert stuck.wait(2)
        t = time.monotonic()
        wait_until(lambda: time.monotonic() - t > 1.5, 3, "1.5 s of a stuck capture thread")
        late = [m for m in notify.messages if m[1] == "WATCHDOG=1" and m[0] > t + 0.7]
        assert late == [], "the watchdog kept pinging with the capture thread stuck"
        capture._clock = clock
        release.set()
        notify.wait_for("WATCHDOG=1", count=2, timeout=5, after=time.monotonic())
    finally:
        release.set()
        service.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_push_to_talk_sends_the_mic_only_while_the_button_is_held(make_agent, tmp_path):
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    q, rate = question()
    gap = np.zeros(int(2.0 * rate), dtype="<i2")
    wav = tmp_path / "twice.wav"
    write_wav(wav, np.concatenate([q, gap, q]), rate)  # asked at 0 s and again at 5.5 s
    factory = MockFactory(pin_class=MockPWMPin)
    agent = make_agent("xuna")
    service, thread = _service(tmp_path, agent, input_wav=wav, pin_factory=factory,
                               extra={"agent": {"mode": "push-to-talk"},
                                      "gpio": {"enabled": "yes", "button_pin": "17",
                                               "led_pin": "18"}})
    try:
        agent.wait_for("audio_first", timeout=10)
        t0 = service.daemon.engine.capture._clock.t0()
        wait_until(lambda: time.monotonic() > t0 + 5.0, 8, "the first question to pass")
        assert agent.count("user_speech_start") == 0  # button up: the agent heard silence
        assert service.daemon.mic_enabled is False
        factory.pin(17).drive_low()  # press (the button pulls the pin to ground)
        wait_until(lambda: service.daemon.mic_enabled, 2, "the press to open the mic")
        # the LED follows once the session thread has applied the press
        wait_until(lambda: service.led.state == "listening", 2, "the LED to show listening")
        heard = agent.wait_for("user_speech_end", timeout=10)[0]
        factory.pin(17).drive_high()
        wait_until(lambda: not service.daemon.mic_enabled, 2, "the release to close the mic")
        assert heard.t > t0 + 5.0
        assert agent.count("user_speech_end") == 1
    finally:
        service.stop()
        thread.join(5)


def test_the_service_follows_the_daemons_states_on_the_led_and_in_status(
        make_agent, tmp_path, notify, monkeypatch):
    """No hooks patched onto the daemon: the service listens to its states and observes its
    commands, and shows them on the LED and in STATUS=."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from edgevoice.lifecycle import DaemonState

    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    factory = MockFactory(pin_class=MockPWMPin)
    agent = make_agent("xuna")
    service, thread = _service(tmp_path, agent, pin_factory=factory,
                               extra={"gpio": {"enabled": "yes", "button_pin": "17",
                                               "led_pin": "18"}})
    try:
        notify.wait_for("STATUS=connected to xuna agent, listening")
        wait_until(lambda: service.led.state == "listening", 2, "the LED to show listening")
        assert service.daemon.state in (DaemonState.LISTENING, DaemonState.SPEAKING)
        t = time.monotonic()
        factory.pin(17).drive_low()   # a short press in always-on mode: privacy mute
        factory.pin(17).drive_high()
        notify.wait_for("STATUS=privacy mute: microphone closed", after=t)
        wait_until(lambda: service.led.state == "muted", 2, "the LED to show muted")
        assert service.daemon.state is DaemonState.MUTED
        assert service.daemon.mic_enabled is False and service.daemon.session is None

        t = time.monotonic()
        factory.pin(17).drive_low()   # the same press again: unmuted, always-on reconnects
        factory.pin(17).drive_high()
        notify.wait_for("STATUS=connected to xuna agent, listening", after=t)
        wait_until(lambda: service.led.state == "listening", 2, "the LED to show listening")

        agent.stop()  # the agent goes away: offline, retrying
        notify.wait_for("STATUS=offline, retry in", timeout=15)
        wait_until(lambda: service.led.state == "offline", 2, "the LED to show offline")
        assert service.daemon.state is DaemonState.OFFLINE
        t = time.monotonic()
    finally:
        service.stop()
        thread.join(5)
    assert not thread.is_alive()
    notify.wait_for("STOPPING=1", after=t, timeout=2)
    assert service.led is None or service.led.state is None  # closed on the way out


def _clicks(pin, n: int, hold_s: float = 0.06) -> None:
    """``n`` quick presses of the button on ``pin``, each held ``hold_s`` (a finger's
    press is ~0.1 s; the hold also keeps each edge clear of the button's debounce)."""
    held = threading.Event()
    for _ in range(n):
        pin.drive_low()
        held.wait(hold_s)
        pin.drive_high()
        held.wait(hold_s)


def test_button_gestures_change_the_real_daemons_volume_and_it_is_kept(make_agent, tmp_path):
    """Two presses turn the running daemon up one step, three turn it down: the player's
    gain follows and volume.json in the state directory keeps the level."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from edgevoice.lifecycle import DaemonState
    from edgevoice.statefile import read_json

    factory = MockFactory(pin_class=MockPWMPin)
    agent = make_agent("xuna")
    service, thread = _service(tmp_path, agent, pin_factory=factory,
                               extra={"gpio": {"enabled": "yes", "button_pin": "17",
                                               "volume_step": "10"},
                                      "audio": {"volume": "50"}})
    daemon = service.daemon
    try:
        wait_until(lambda: daemon.state in (DaemonState.LISTENING, DaemonState.SPEAKING), 10,
                   "the session")
        assert daemon.volume.level == 50
        _clicks(factory.pin(17), 2)
        wait_until(lambda: daemon.volume.level == 60, 3, "two presses to turn it up")
        assert daemon.engine.mixer.gain == pytest.approx(10 ** (-16 / 20))  # 4 dB a step of 10
        _clicks(factory.pin(17), 3)
        wait_until(lambda: daemon.volume.level == 50, 3, "three presses to turn it down")
        _clicks(factory.pin(17), 3)
        wait_until(lambda: daemon.volume.level == 40, 3, "three more to turn it down again")
        assert daemon.engine.mixer.gain == pytest.approx(10 ** (-24 / 20))
        kept = tmp_path / "state" / "volume.json"  # written just after the level is set
        wait_until(lambda: (read_json(kept) or {}).get("level") == 40, 3, "the kept level")
        assert daemon.muted is False and daemon.session is not None  # no press was a mute
    finally:
        service.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_a_press_in_wake_word_mode_opens_a_session_on_the_real_daemon(make_agent, tmp_path):
    """Wake-word mode with no phrase spoken: the button wakes the daemon like the phrase."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from edgevoice.lifecycle import DaemonState

    factory = MockFactory(pin_class=MockPWMPin)
    agent = make_agent("xuna")
    silent = tmp_path / "silence.wav"
    write_wav(silent, np.zeros(16000 * 30, dtype="<i2"), 16000)
    service, thread = _service(tmp_path, agent, pin_factory=factory, input_wav=silent,
                               extra={"gpio": {"enabled": "yes", "button_pin": "17"},
                                      "agent": {"mode": "wake-word"}})
    daemon = service.daemon
    try:
        wait_until(lambda: daemon.state is DaemonState.WAITING_FOR_WAKE, 10,
                   "the wait for the wake word")
        assert agent.count("ws_open") == 0
        _clicks(factory.pin(17), 1)
        wait_until(lambda: agent.count("ws_open") == 1, 10, "the press to open a session")
        wait_until(lambda: daemon.state in (DaemonState.LISTENING, DaemonState.FOLLOW_UP), 10,
                   "the session to listen")
    finally:
        service.stop()
        thread.join(5)
    assert not thread.is_alive()
