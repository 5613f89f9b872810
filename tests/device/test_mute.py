"""The privacy mute from outside the daemon: the latching switch on a MockFactory pin, the
``edgevoice mute`` command (the installed entry point against ``edgevoice run``, both in
processes), the switch closed at boot, and the kept state read back safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from edgevoice.config import parse
from edgevoice.device.mute import MuteSwitch
from edgevoice.mute import MUTE_FILE, MuteRequest, PrivacyMute
from tests.support import LineReader, file_audio_config, wait_until
from tests.support.gpio import SwitchPin

EDGEVOICE = str(Path(sys.executable).parent / "edgevoice")
WAIT = 10.0


def _config(agent, tmp_path, **sections) -> Path:
    """File audio against ``agent``, the state (the kept mute) in the test's own folder."""
    conf = file_audio_config(agent, tmp_path, **sections)
    text = conf.read_text().replace("[agent]\n", f"[agent]\nstate_dir = {tmp_path / 'state'}\n")
    conf.write_text(text)
    assert "state_dir" in text
    return conf


def mute(*args: str, runtime: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RUNTIME_DIRECTORY"}  # as over SSH
    return subprocess.run([EDGEVOICE, "mute", *args, "--runtime-dir", str(runtime)], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_the_switch_mutes_while_closed_and_unmutes_when_opened():
    factory = MockFactory(pin_class=SwitchPin)
    calls = []
    done = threading.Event()

    def set_muted(muted, source):
        calls.append((muted, source))
        done.set()

    switch = MuteSwitch(27, set_muted, bounce_s=None, pin_factory=factory)
    assert switch.available and not switch.is_on
    pin = factory.pin(27)
    pin.close_switch()
    assert done.wait(WAIT) and switch.is_on
    done.clear()
    pin.open_switch()
    assert done.wait(WAIT) and not switch.is_on
    assert calls == [(True, "switch"), (False, "switch")]
    switch.close()
    switch.close()
    gpio = parse("[xuna]\nagent_id = a\n[gpio]\nenabled = yes\n").gpio
    assert MuteSwitch.from_settings(gpio, set_muted) is None   # mute_pin = -1: no switch


def test_the_kept_state_is_read_back_safely(tmp_path):
    assert PrivacyMute(tmp_path).muted is False                 # nothing kept: unmuted
    (tmp_path / MUTE_FILE).write_text('{"muted": tru')          # torn: unmuted, no crash
    assert PrivacyMute(tmp_path).muted is False
    (tmp_path / MUTE_FILE).write_text('[1, 2]')                 # foreign
    assert PrivacyMute(tmp_path).muted is False
    state = PrivacyMute(tmp_path)
    assert state.apply(MuteRequest(None, "button")).changed     # toggle: on
    assert PrivacyMute(tmp_path).muted is True
    assert not state.apply(MuteRequest(True, "cli")).changed     # already on
    assert state.apply(MuteRequest(False, "cli")).changed
    assert PrivacyMute(tmp_path).muted is False
    assert PrivacyMute(None).apply(MuteRequest(True)).changed   # no state dir: not kept


def test_the_mute_command_against_the_running_daemon(make_agent, tmp_path, notify):
    agent = make_agent("xuna")
    conf = _config(agent, tmp_path)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o750)
    env = dict(os.environ, RUNTIME_DIRECTORY=str(runtime), NOTIFY_SOCKET=notify.path,
               WATCHDOG_USEC="1000000")
    proc = subprocess.Popen([EDGEVOICE, "run", "--config", str(conf)], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    reader = LineReader(proc.stderr)
    try:
        notify.wait_for("STATUS=connected to xuna agent", timeout=15)
        status = mute("status", runtime=runtime)
        assert status.returncode == 0 and "privacy mute off" in status.stdout, status

        t = time.monotonic()
        on = mute("on", runtime=runtime)            # no --pid: found through mute-status.json
        assert on.returncode == 0, on.stderr
        assert "privacy mute on: the microphone is closed" in on.stdout
        notify.wait_for("STATUS=privacy mute: microphone closed", after=t)
        reader.wait_for("privacy mute: muted=true (cli)", timeout=5)
        agent.wait_for("ws_closed", timeout=WAIT)
        assert json.loads((tmp_path / "state" / MUTE_FILE).read_text()) == {"muted": True}
        # a closed microphone is no stuck one: the watchdog goes on being fed
        notify.wait_for("WATCHDOG=1", count=4, timeout=WAIT, after=time.monotonic())
        again = mute("on", runtime=runtime)         # already muted: still answered
        assert again.returncode == 0 and "privacy mute on" in again.stdout

        toggled = mute("toggle", runtime=runtime)   # toggle: off, and always-on reconnects
        assert toggled.returncode == 0 and "privacy mute off" in toggled.stdout
        agent.wait_for("ws_open", count=2, timeout=WAIT)
        reader.wait_for("privacy mute: muted=false (cli)", timeout=5)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
    gone = mute("on", runtime=runtime)              # no daemon any more: a clear failure
    assert gone.returncode == 2 and "no running edgevoice" in gone.stderr


def test_a_closed_switch_at_boot_keeps_the_microphone_closed_and_refuses_to_unmute(
        make_agent, tmp_path, notify, monkeypatch):
    from edgevoice.lifecycle import DaemonState
    from edgevoice.service import Service

    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    agent = make_agent("xuna")
    factory = MockFactory(pin_class=SwitchPin)
    factory.pin(27).close_switch()                  # the switch was closed before the boot
    conf = _config(agent, tmp_path, gpio={"enabled": "yes", "mute_pin": "27"})
    service = Service(str(conf), parse(conf.read_text(), str(conf)), pin_factory=factory)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        assert service.daemon.ready.wait(WAIT)
        daemon = service.daemon
        wait_until(lambda: daemon.state is DaemonState.MUTED, WAIT, "the muted state")
        wait_until(lambda: service.led.state == "muted", WAIT, "the LED to show the mute")
        assert daemon.engine.frames_captured == 0 and daemon.engine.capture_reopened == 0
        assert agent.count("ws_open") == 0

        daemon.set_muted(False, "cli")              # refused while the switch is closed
        status = tmp_path / "mute-status.json"
        wait_until(lambda: json.loads(status.read_text())["refused"], WAIT,
                   "the refusal to be published")
        answer = json.loads(status.read_text())
        assert answer["muted"] and answer["switch"] and "slide it off" in answer["refused"]
        assert daemon.muted and agent.count("ws_open") == 0

        factory.pin(27).open_switch()               # opening it unmutes: always-on connects
        agent.wait_for("ws_open", timeout=WAIT)
        wait_until(lambda: service.led.state in ("listening", "speaking"), WAIT, "the LED")
    finally:
        service.stop()
        thread.join(10)
    assert not thread.is_alive()
