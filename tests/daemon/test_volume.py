"""The output volume, measured in the speaker's output WAV (file backend, the local agent as
the server): the agent's voice and the sounds follow ``[audio] volume`` on the dB curve,
``Daemon.change_volume`` changes it at once, the level survives a restart (two daemons on
one state directory), and a reload with a new volume applies it without reopening the
sound devices or restarting the session. The remembering rule itself: VolumeControl."""

from __future__ import annotations

import logging
import os
import signal
import threading
import wave

import numpy as np
import pytest

from edgevoice import statefile
from edgevoice.audio.mixer import volume_db
from edgevoice.config import parse
from edgevoice.lifecycle import DaemonState
from edgevoice.service import Service
from edgevoice.volume import STATE_FILE, VolumeControl
from tests.support import (drained, ini, question, read_wav, start_run, wait_until,
                           write_wav)
from tests.support.config import XUNA
from tests.support.earcons import (SOUNDS, earcon_done, gain_db, occurrences, silence,
                                    template)

def wav_seconds(path) -> float:
    """Seconds in a WAV that another process is writing (its header is kept current)."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate()
    except (OSError, EOFError, wave.Error):
        return 0.0


def energy_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.sum(x.astype(np.float64) ** 2))


def test_the_agents_voice_follows_the_configured_volume(make_agent, run_daemon):
    agent = make_agent("xuna")  # it answers with the user's own words, as it heard them
    handle = run_daemon(agent, extra={"audio": {"volume": "50"}})  # (sounds off)
    [reply] = agent.wait_for("reply_end", timeout=30)
    wait_until(lambda: drained(handle), 10, "the answer to play out")
    handle.stop()

    speaker, _ = read_wav(handle.output)
    q, _ = question()
    # the whole answer against the whole question: 50 is -20 dB on the curve
    assert energy_db(speaker) - energy_db(q) == pytest.approx(volume_db(50), abs=0.5)


def _sound_gains(output, name: str) -> list[float]:
    speaker, rate = read_wav(output)
    return [round(gain_db(g), 2) for _, g in occurrences(speaker, template(name, rate), rate)]


def _listening_sound(handle) -> None:
    mixer = handle.daemon.engine.mixer
    blocks = mixer.earcon_blocks
    handle.daemon.sounds.play("listening")
    wait_until(lambda: mixer.earcon_blocks > blocks and earcon_done(handle), 5, "the sound")


def test_change_volume_applies_at_once_and_the_level_survives_a_restart(make_agent, run_daemon,
                                                                        tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edgevoice.volume")
    agent = make_agent("xuna")
    quiet = silence(tmp_path)
    first = run_daemon(agent, quiet, extra={"sounds": SOUNDS})
    daemon = first.daemon
    wait_until(lambda: daemon.state is DaemonState.LISTENING and earcon_done(first), 10,
               "the session and its sound")
    daemon.change_volume(50)
    wait_until(lambda: daemon.volume.level == 50, 5, "volume 50")
    _listening_sound(first)
    daemon.change_volume(step=+10)
    daemon.change_volume(step=+500)  # clamped
    daemon.change_volume(level=60)
    wait_until(lambda: len([r for r in caplog.records
                            if getattr(r, "event", "") == "volume"]) == 4, 5, "four changes")
    _listening_sound(first)
    first.stop()
    levels = [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "volume"]
    assert [m.split()[1] for m in levels] == ["50", "60", "100", "60"]

    state = tmp_path / "state" / STATE_FILE
    assert statefile.read_json(state) == {"level": 60, "config": 100}
    assert os.stat(state).st_mode & 0o777 == 0o600
    second = run_daemon(agent, quiet, extra={"sounds": SOUNDS})  # the same state directory
    wait_until(lambda: second.daemon.state is DaemonState.LISTENING and earcon_done(second),
               10, "the second session's sound")
    xruns = (first.daemon.engine.playback.xruns, second.daemon.engine.playback.xruns)
    second.stop()

    assert _sound_gains(first.output, "listening") == pytest.approx([0.0, -20.0, -16.0],
                                                                     abs=0.1)
    assert _sound_gains(second.output, "listening") == pytest.approx([-16.0], abs=0.1), xruns


def test_a_reload_with_a_new_volume_applies_it_without_reopening_anything(make_agent, tmp_path):
    agent = make_agent("xuna")
    sections = agent.config_values()
    sections["agent"]["state_dir"] = str(tmp_path / "state")
    sections["audio"] = {"backend": "file", "input_file": silence(tmp_path),
                         "output_file": str(tmp_path / "out.wav"), "volume": "100"}
    path = tmp_path / "edgevoice.conf"
    path.write_text(ini(sections))
    service = Service(str(path), parse(path.read_text(), str(path)))
    thread = threading.Thread(target=service.run, name="test-service")
    thread.start()
    try:
        daemon = service.daemon
        assert daemon.ready.wait(5)

        class Handle:
            pass
        handle = Handle()
        handle.daemon = daemon
        wait_until(lambda: daemon.state is DaemonState.LISTENING and earcon_done(handle), 10,
                   "the session and its sound")
        engine = daemon.engine
        sections["audio"]["volume"] = "25"
        path.write_text(ini(sections))
        daemon.request_reload()  # what SIGHUP does
        wait_until(lambda: daemon.volume.level == 25, 5, "the reloaded volume")
        _listening_sound(handle)
        assert daemon.engine is engine and engine.mixer.gain == pytest.approx(10 ** (-30 / 20))
        assert agent.count("ws_open") == 1 and daemon.stats.sessions_started == 1
        # a runtime change is remembered against the configured 25
        daemon.change_volume(step=-5)
        wait_until(lambda: daemon.volume.level == 20, 5, "volume 20")
    finally:
        service.stop()
        thread.join(5)
    assert statefile.read_json(tmp_path / "state" / STATE_FILE) == {"level": 20, "config": 25}
    assert _sound_gains(tmp_path / "out.wav", "listening") == pytest.approx(
        [0.0, volume_db(25)], abs=0.1)


# -- the remembering rule -----------------------------------------------------------------------
def _control(tmp_path, volume: int) -> VolumeControl:
    return VolumeControl(parse(XUNA + f"[agent]\nstate_dir = {tmp_path}\n"
                                      f"[audio]\nvolume = {volume}\n"))


def test_the_remembered_level_wins_until_the_configured_value_is_edited(tmp_path):
    assert _control(tmp_path, 70).level == 70  # nothing remembered yet
    assert not (tmp_path / STATE_FILE).exists()  # (and nothing written for it)
    control = _control(tmp_path, 70)
    assert control.change(step=-25) == 45
    assert _control(tmp_path, 70).level == 45  # the same config: the runtime level
    assert _control(tmp_path, 80).level == 80  # the config was edited: it wins
    edited = _control(tmp_path, 80)
    edited.change(level=10)
    assert _control(tmp_path, 80).level == 10


@pytest.mark.parametrize("content", ['{"level": 300, "config": 70}', '{"level": "x"}', "[1]",
                                     "not json", '{"level": 55.5, "config": 70}'])
def test_a_bad_volume_file_falls_back_to_the_config(tmp_path, content):
    (tmp_path / STATE_FILE).write_text(content)
    assert _control(tmp_path, 70).level == 70


def test_an_unwritable_state_directory_keeps_the_level_for_this_run(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    control = VolumeControl(parse(XUNA + f"[agent]\nstate_dir = {blocker}/sub\n"))
    assert control.change(level=30, step=-50) == 0
    assert control.level == 0
    assert any("cannot write" in r.getMessage() for r in caplog.records)


def test_sighup_with_a_new_volume_turns_the_next_answer_down(make_agent, tmp_path, notify):
    """``edgevoice run`` for real: SIGHUP after editing [audio] volume; the answer that
    follows is measured in the output WAV at the new level, in the same session."""
    agent = make_agent("xuna")
    q, rate = question()
    wav = tmp_path / "later.wav"
    write_wav(wav, np.concatenate([np.zeros(4 * rate, dtype="<i2"), q]), rate)
    sections = agent.config_values()
    sections["agent"]["state_dir"] = str(tmp_path / "state")
    sections["audio"] = {"backend": "file", "input_file": str(wav),
                         "output_file": str(tmp_path / "out.wav"), "volume": "100"}
    sections["sounds"] = {"listening": "off"}
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(ini(sections))
    proc, reader = start_run(conf, NOTIFY_SOCKET=notify.path)
    try:
        notify.wait_for("READY=1", timeout=10)
        agent.wait_for("ws_open", timeout=10)
        sections["audio"]["volume"] = "30"
        conf.write_text(ini(sections))
        proc.send_signal(signal.SIGHUP)
        reader.wait_for("volume 30 (configuration reloaded)", timeout=5)
        reader.wait_for("nothing that needs a new session changed", timeout=5)
        [reply] = agent.wait_for("reply_end", timeout=30)
        # the speaker's WAV grows in real time: wait until it holds the whole answer
        needed = 4.0 + len(q) / rate + reply.data["seconds"] + 1.0
        wait_until(lambda: wav_seconds(tmp_path / "out.wav") >= needed, 15, "the answer")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert agent.count("ws_open") == 1  # the same session throughout
    assert "reopening the sound devices" not in reader.text()
    speaker, _ = read_wav(tmp_path / "out.wav")
    assert energy_db(speaker) - energy_db(q) == pytest.approx(volume_db(30), abs=0.5)
