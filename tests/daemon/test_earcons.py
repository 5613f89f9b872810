"""Earcons end to end, found by correlation in the speaker's output WAV (file and room
backends, the local agent as the server): "listening" when a session starts listening and
on unmute, "ended" when the button ends it, "error" once when the agent cannot be reached,
the quiet "thinking" loop while a slow [tools] program runs; and none of them ever pauses
or interrupts the agent (barge-in on, the room backend's echo at the user's level)."""

from __future__ import annotations

import time

import numpy as np

from edgevoice.audio.room_backend import side_paths
from tests.support.bargein import room_ir
from edgevoice.lifecycle import DaemonObserver, DaemonState
from tests.support import audible_spans, drained, question, read_wav, wait_until, write_wav
from tests.support.earcons import (SOUNDS, slow_tool, earcon_done, gain_db, occurrences,
                                    silence, template)

RATE = 16000


class Timeline(DaemonObserver):
    """When each state was entered and tools ran (monotonic), as the daemon reports them."""

    def __init__(self) -> None:
        self.states: list[tuple[DaemonState, float]] = []
        self.tools: list[tuple[int, float]] = []

    def __call__(self, state, detail) -> None:
        if not self.states or self.states[-1][0] is not state:
            self.states.append((state, time.monotonic()))

    def tools_running(self, count: int) -> None:
        self.tools.append((count, time.monotonic()))

    def first(self, state: DaemonState) -> float:
        return next(t for s, t in self.states if s is state)


def test_listening_at_the_start_and_on_unmute_ended_at_the_end(make_agent, run_daemon,
                                                                 tmp_path):
    agent = make_agent("xuna")
    timeline = Timeline()
    handle = run_daemon(agent, silence(tmp_path), listeners=[timeline],
                        extra={"sounds": SOUNDS})
    daemon = handle.daemon
    wait_until(lambda: daemon.state is DaemonState.LISTENING, 10, "the session to listen")
    wait_until(lambda: earcon_done(handle), 5, "the listening sound")
    blocks = daemon.engine.mixer.earcon_blocks
    daemon.set_muted(True)  # the privacy mute ends the session: "ended"
    wait_until(lambda: daemon.state is DaemonState.MUTED, 5, "the mute")
    wait_until(lambda: daemon.engine.mixer.earcon_blocks > blocks and earcon_done(handle), 5,
               "the mute's ended sound")
    blocks = daemon.engine.mixer.earcon_blocks
    daemon.set_muted(False)  # a new session listens: "listening"
    wait_until(lambda: daemon.engine.mixer.earcon_blocks > blocks and earcon_done(handle), 5,
               "the unmute sound")
    blocks = daemon.engine.mixer.earcon_blocks
    daemon.end_session()
    wait_until(lambda: daemon.state is DaemonState.IDLE, 5, "the session to end")
    wait_until(lambda: daemon.engine.mixer.earcon_blocks > blocks and earcon_done(handle), 5,
               "the ended sound")
    t0 = handle.t0()
    handle.stop()

    speaker, rate = read_wav(handle.output)
    listening = occurrences(speaker, template("listening", rate), rate)
    ended = occurrences(speaker, template("ended", rate), rate)
    assert len(listening) == 2 and len(ended) == 2, (listening, ended)
    assert all(abs(gain_db(g)) < 0.1 for _, g in listening + ended)  # volume 100, level 0 dB
    started = timeline.first(DaemonState.LISTENING) - t0
    assert 0 <= listening[0][0] - started < 0.2, (listening, started)
    muted = timeline.first(DaemonState.MUTED) - t0
    assert abs(ended[0][0] - muted) < 0.2, (ended, muted)
    idle = timeline.first(DaemonState.IDLE) - t0
    assert abs(ended[1][0] - idle) < 0.2, (ended, idle)
    assert listening[0][0] < ended[0][0] < listening[1][0] < ended[1][0]
    # nothing else was played: the sounds are all there is in the output
    loud = np.abs(speaker) > 200
    covered = np.zeros(len(speaker), dtype=bool)
    for start, _ in listening + ended:
        covered[int(start * rate):int((start + 0.3) * rate)] = True
    assert not (loud & ~covered).any()


def test_error_once_while_the_agent_cannot_be_reached(make_agent, run_daemon, tmp_path):
    agent = make_agent("xuna")
    agent.stop()  # its port refuses connections now
    timeline = Timeline()
    handle = run_daemon(agent, silence(tmp_path), listeners=[timeline],
                        extra={"sounds": SOUNDS})
    wait_until(lambda: handle.daemon.stats.sessions_started >= 3, 20, "three attempts")
    wait_until(lambda: earcon_done(handle), 5, "the error sound")
    t0 = handle.t0()
    handle.stop()

    speaker, rate = read_wav(handle.output)
    errors = occurrences(speaker, template("error", rate), rate)
    assert len(errors) == 1, errors  # once per outage, not once per attempt
    offline = timeline.first(DaemonState.OFFLINE) - t0
    assert abs(errors[0][0] - offline) < 0.2, (errors, offline)
    assert not occurrences(speaker, template("listening", rate), rate)


def test_thinking_ticks_while_a_slow_tool_runs_and_stops_for_the_answer(make_agent, run_daemon,
                                                                        tmp_path):
    tool = slow_tool(tmp_path)
    agent = make_agent("napster", function_call={"name": "get_temperature",
                                                 "arguments": {"room": "kitchen"}},
                       function_timeout_s=8.0)
    timeline = Timeline()
    handle = run_daemon(agent, listeners=[timeline],
                        extra={"tools": {"get_temperature": str(tool)},
                               "sounds": {**SOUNDS, "thinking_after_s": "0"}})  # the tool alone
    handle.daemon.add_observer(timeline)
    output = agent.wait_for("function_output", timeout=25)[0]
    agent.wait_for("reply_end", timeout=20)
    wait_until(lambda: drained(handle), 10, "the answer to play out")
    t0 = handle.t0()
    handle.stop()

    assert output.data["output"] == "21.5 degrees"
    started = next(t for n, t in timeline.tools if n == 1) - t0
    finished = next(t for n, t in timeline.tools if n == 0) - t0
    assert finished - started > 2.9
    speaker, rate = read_wav(handle.output)
    ticks = occurrences(speaker, template("thinking", rate, seconds=0.3), rate)
    assert len(ticks) >= 2, ticks  # every 1.2 s for 3 s
    assert all(started - 0.05 < t < finished + 0.1 for t, _ in ticks), (ticks, started, finished)
    assert all(abs(gain_db(g)) < 0.5 for _, g in ticks)
    tick_level = 20 * np.log10(np.abs(template("thinking", rate)).max() / 32768)
    assert tick_level < -30  # quiet: in the background


def test_sounds_over_the_agents_voice_never_barge_in(make_agent, run_daemon, tmp_path):
    """Room backend, the echo at the level the speaker plays, barge-in on: the listening
    sound at the start and three more over a long reply go through the speaker,
    the canceller and the echo gate like the agent's voice; the reply plays out whole."""
    q, _ = question()
    (first, last), = audible_spans(q, RATE)[:1]
    speech = q[int(first * RATE):int(last * RATE)]
    user = np.concatenate([q[:int(first * RATE)], speech, speech[:len(speech) // 2], speech,
                           np.zeros(12 * RATE, dtype="<i2")])  # one long question
    write_wav(tmp_path / "user.wav", user, RATE)
    audio = {"backend": "room", "room_ir": room_ir(tmp_path / "ir.wav"),
             "room_echo_gain_db": "0", "room_noise_dbfs": "-70", "echo_cancel": "speex"}
    agent = make_agent("xuna")
    handle = run_daemon(agent, str(tmp_path / "user.wav"),
                        extra={"audio": audio, "sounds": SOUNDS})
    daemon = handle.daemon
    assert daemon.config.agent.barge_in
    [start] = agent.wait_for("reply_start", timeout=30)
    assert start.data["seconds"] > 5.0
    buffer = daemon.engine.buffer
    rate = daemon.engine.playback.rate
    over_voice = []
    for at in (1.0, 2.5, 4.0):  # seconds into the reply
        wait_until(lambda: buffer.played_of(buffer.current_response) >= at * 2 * rate, 15,
                   f"{at} s of the reply")
        blocks = daemon.engine.mixer.earcon_blocks
        daemon.sounds.play("listening")  # (an unmute ends the session since the privacy mute)
        wait_until(lambda: daemon.engine.mixer.earcon_blocks > blocks + 10, 5, "a sound")
        over_voice.append(daemon.state)
    agent.wait_for("reply_end", timeout=20)
    wait_until(lambda: drained(handle), 10, "the answer to play out")
    stats = daemon.stats
    handle.stop()

    assert over_voice == [DaemonState.SPEAKING] * 3  # over the agent's voice, each of them
    assert stats.local_pauses == 0 and stats.interruptions == 0 and stats.local_flushes == 0
    assert stats.false_barge_ins == 0 and agent.count("interrupted") == 0
    [end] = agent.wait_for("reply_end")
    assert end.data["interrupted"] is False
    speaker, rate = read_wav(handle.output)
    found = occurrences(speaker, template("listening", rate), rate, threshold=0.3)
    gains = [g for _, g in found if g > 0.5]  # (not the near-silence that correlates a bit)
    assert len(gains) == 4 and all(abs(gain_db(g)) < 0.5 for g in gains), found
    mic, _ = read_wav(side_paths(str(handle.output))[0])
    assert np.abs(mic).max() > 3000  # the sounds and the voice really came back to the mic
