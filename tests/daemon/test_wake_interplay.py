"""Wake-word mode meeting the other parts of issue 14 in a running daemon (file audio, the
local agent): a SIGHUP that changes [wake_word] while the daemon waits for the word."""

from __future__ import annotations

import threading

from edgevoice.config import parse
from edgevoice.lifecycle import DaemonState
from edgevoice.service import Service
from tests.support.earcons import slow_tool  # 3 s, then "21.5 degrees"
from tests.support.states import StateLog
from tests.support import ini, unplug_microphone, wait_until
from tests.support.speech import espeak, silence, the_question, write_speech

S = DaemonState
SOUNDS_OFF = {name: "off" for name in ("listening", "ended", "error", "thinking")}


def _service(agent, tmp_path, wav: str, wake_word: dict) -> tuple[Service, dict, object]:
    sections = agent.config_values()
    sections["agent"].update({"state_dir": str(tmp_path / "state"), "mode": "wake-word"})
    sections["audio"] = {"backend": "file", "input_file": wav,
                         "output_file": str(tmp_path / "out.wav")}
    sections["sounds"] = dict(SOUNDS_OFF)
    sections["wake_word"] = dict(wake_word)
    path = tmp_path / "edgevoice.conf"
    path.write_text(ini(sections))
    return Service(str(path), parse(path.read_text(), str(path))), sections, path


def test_a_reload_with_new_wake_words_is_heard_while_waiting(make_agent, tmp_path):
    """Waiting for "okay nabu", a SIGHUP switches [wake_word] models to alexa (nothing that
    needs a new session): the very next "alexa" opens a session, without a session by the
    old word first, and the waiting status names the new word."""
    wav = write_speech(tmp_path / "in.wav", silence(4.0), espeak("alexa"), silence(0.8),
                       the_question(), silence(8.0))
    agent = make_agent("xuna")
    service, sections, path = _service(agent, tmp_path, wav,
                                       {"models": "okay_nabu", "follow_up_s": "1"})
    states = StateLog()
    service.daemon.add_listener(states)
    thread = threading.Thread(target=service.run, name="test-service")
    thread.start()
    try:
        daemon = service.daemon
        assert daemon.ready.wait(5)
        states.wait_for(S.WAITING_FOR_WAKE)
        sections["wake_word"]["models"] = "alexa"
        path.write_text(ini(sections))
        daemon.request_reload()  # what SIGHUP does
        wait_until(lambda: service.metrics.counters.reloads["ok"] == 1, 5, "the reload")
        assert daemon.engine.frames_captured < 3.5 * 50  # applied before "alexa" is said
        states.wait_for(S.WAITING_FOR_WAKE, S.CONNECTING, S.LISTENING, timeout=15)
        waits = [d for s, d, _ in states.calls if s is S.WAITING_FOR_WAKE]
        assert 'say "alexa"' in waits[-1], waits
        agent.wait_for("user_speech_end", timeout=15)
    finally:
        service.stop()
        thread.join(5)
    assert not thread.is_alive()



def test_a_tool_that_outlasts_the_quiet_time_still_gets_its_answer_heard(make_agent,
                                                                         run_daemon, tmp_path):
    """Woken, the user asks; the agent calls a [tools] program that runs 3 s, longer than
    quiet_s (2 s) while the thinking sound says "working on it": the session must wait
    for the tool, hand its output to the agent and play the answer, then end as usual."""
    tool = slow_tool(tmp_path)
    agent = make_agent("napster", function_call={"name": "get_temperature",
                                                 "arguments": {"room": "kitchen"}},
                       function_timeout_s=10.0)
    wav = write_speech(tmp_path / "in.wav", silence(1.0), the_question(), silence(14.0))
    states = StateLog()
    handle = run_daemon(agent, wav, listeners=[states],
                        extra={"agent": {"mode": "wake-word"},
                               "wake_word": {"quiet_s": "2", "follow_up_s": "1"},
                               "tools": {"get_temperature": str(tool)}})
    states.wait_for(S.WAITING_FOR_WAKE)
    handle.daemon.wake()  # the button, before the question
    [output] = agent.wait_for("function_output", timeout=20)
    assert output.data["output"] == "21.5 degrees"
    agent.wait_for("reply_end", timeout=10)
    states.wait_for(S.CONNECTING, S.LISTENING, S.SPEAKING, S.WAITING_FOR_WAKE, timeout=15)
    assert agent.count("ws_open") == 1


def test_a_wake_after_a_failed_session_is_no_reconnect(make_agent, run_daemon, tmp_path):
    """Wake-word mode does not retry a failed session: it waits for the word again, as
    toggle mode waits for a press. The user's next wake is a new attempt, not one of the
    reconnects the metrics count (connection attempts the daemon made after a failure)."""
    from edgevoice.metrics import DaemonCounters

    agent = make_agent("xuna", reject_auth=True)
    states = StateLog()
    handle = run_daemon(agent, write_speech(tmp_path / "quiet.wav", silence(10.0)),
                        extra={"agent": {"mode": "wake-word"}}, listeners=[states])
    daemon = handle.daemon
    counters = DaemonCounters(daemon)
    daemon.add_listener(counters.state_changed)
    daemon.add_observer(counters)
    states.wait_for(S.WAITING_FOR_WAKE)
    daemon.wake()
    states.wait_for(S.CONNECTING, S.OFFLINE, S.WAITING_FOR_WAKE)
    daemon.wake()
    states.wait_for(S.OFFLINE, S.WAITING_FOR_WAKE, S.CONNECTING, S.OFFLINE,
                    S.WAITING_FOR_WAKE)
    assert counters.failed["auth"] == 2
    assert counters.reconnects == 0


def test_after_the_microphone_fails_in_a_session_it_waits_for_the_word_again(
        make_agent, run_daemon, tmp_path):
    """A wake session runs; the microphone fails (pulled out) and the sound devices are
    reopened, which may take any time (a missing device is retried every 5 s). Nobody
    has said the wake word since: the daemon waits for it again instead of opening a
    session by itself and streaming the room."""
    agent = make_agent("xuna")
    states = StateLog()
    handle = run_daemon(agent, write_speech(tmp_path / "quiet.wav", silence(20.0)),
                        extra={"agent": {"mode": "wake-word"},
                               "wake_word": {"quiet_s": "60"}}, listeners=[states])
    daemon = handle.daemon
    states.wait_for(S.WAITING_FOR_WAKE)
    daemon.wake()
    agent.wait_for("audio_first", timeout=10)
    old = daemon.engine
    unplug_microphone(old)
    wait_until(lambda: daemon.engine is not old and daemon.engine is not None, 10,
               "the sound devices to be reopened")
    agent.wait_for("ws_closed", timeout=10)
    states.wait_for(S.LISTENING, S.WAITING_FOR_WAKE, timeout=10)
    new = daemon.engine
    wait_until(lambda: new.frames_captured > 50, 10, "a second of the new microphone")
    assert agent.count("ws_open") == 1 and daemon.stats.sessions_started == 1
    assert daemon.state is S.WAITING_FOR_WAKE


def test_the_follow_up_window_waits_for_a_tool_after_a_spoken_preamble():
    """The agent says "let me look that up" (speaking), then a tool runs longer than the
    follow-up window: the window counts from the tool's end, not from the preamble."""
    from types import SimpleNamespace

    from edgevoice.wake import WakeWord
    from tests.support.wake import Host

    host = Host(16000, follow_up_s=1.0, quiet_s=5.0)
    wake = WakeWord(host)
    wake.listen(host.engine)
    wake.woken("button")
    session = SimpleNamespace(streamed_since=100.0)
    wake.sink(session)
    wake.user_spoke_at = 101.0                      # the question
    host.state = S.SPEAKING
    assert wake.check(session, 102.0) is None       # the preamble
    host.state = S.LISTENING
    wake.tools = 1                                  # the tool starts
    assert wake.shown(S.LISTENING) is S.LISTENING   # not "speak again": the agent works
    assert wake.check(session, 102.5) is None
    assert wake.check(session, 106.0) is None       # 4 s: longer than the window
    wake.tools = 0
    assert wake.shown(S.LISTENING) is S.FOLLOW_UP
    assert wake.check(session, 106.1) is None
    assert wake.check(session, 106.9) is None       # the window counts from here
    outcome = wake.check(session, 107.2)
    assert outcome is not None and "follow-up" in outcome.reason
