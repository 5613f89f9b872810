"""Wake-word mode end to end: espeak-ng speech in the file backend, the local agent as the
server. The local agent answers every utterance it hears with that utterance's own audio,
so the speaker's WAV holds exactly what reached the agent as speech."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from edgevoice.audio.wakeword import WakeWordDetector
from edgevoice.lifecycle import DaemonState
from tests.support.states import StateLog
from tests.support import answer_matches_question, speaker_spans, wait_until
from tests.support.speech import espeak, silence, the_question, write_speech

S = DaemonState
WAKE = {"agent": {"mode": "wake-word"}}
#: the question's speech (the shipped WAV has 0.3 s of silence before it, 0.7 s after)
QUESTION_SPEECH_S = 2.52


def wake_config(**wake_word) -> dict:
    return {**WAKE, "wake_word": {k: str(v) for k, v in wake_word.items()}}


def wake_words_in(samples: np.ndarray) -> list[str]:
    """What the detector hears in ``samples`` (16 kHz)."""
    detector = WakeWordDetector(["okay_nabu"], 16000)
    pcm = samples.astype("<i2").tobytes()
    heard = [detector.process(pcm[i:i + 640]) for i in range(0, len(pcm) - 639, 640)]
    detector.close()
    return [h for h in heard if h]


def test_okay_nabu_opens_a_session_and_only_the_question_reaches_the_agent(
        make_agent, run_daemon, tmp_path):
    """Speech before the wake word, the wake word, then a question: one session, one
    utterance heard by the agent (the question), neither the earlier speech nor the wake
    phrase; then the follow-up window closes and the daemon waits for the word again."""
    before = espeak("the weather is nice today, is it not")
    wav = write_speech(tmp_path / "in.wav", silence(0.5), before, silence(0.8),
                       espeak("okay nabu"), silence(1.0), the_question(), silence(8.0))
    agent = make_agent("xuna")
    states = StateLog()
    handle = run_daemon(agent, wav, extra=wake_config(follow_up_s=1.5, quiet_s=6),
                        listeners=[states])
    states.wait_for(S.WAITING_FOR_WAKE, S.CONNECTING, S.LISTENING, S.SPEAKING, S.FOLLOW_UP,
                    S.WAITING_FOR_WAKE, timeout=30)
    agent.wait_for("ws_closed", timeout=5)
    assert agent.count("ws_open") == 1
    [heard] = agent.wait_for("user_speech_end")
    assert abs(heard.data["seconds"] - QUESTION_SPEECH_S) < 0.3, heard.data
    [closed] = agent.wait_for("ws_closed")
    assert closed.data["by"] == "client" and closed.data["code"] == 1000  # ended gracefully
    # what the agent heard, it said back: the question, and only it
    samples, rate, spans = speaker_spans(handle)
    assert len(spans) == 1, spans
    start, end = spans[0]
    answer = samples[int(start * rate):int(end * rate)]
    assert answer_matches_question(answer, rate) > 0.9
    assert wake_words_in(samples) == []
    assert 0 < handle.daemon.wake_word.streaming_after_s < 5  # wake → streaming
    assert handle.daemon.stats.sessions_started == 1


def test_a_minute_of_speech_without_the_wake_word_opens_nothing(make_agent, run_daemon,
                                                                tmp_path):
    """A minute of talk (on the file clock, 10x faster than real time): no session, no
    connection, not one request to the agent."""
    talk = espeak("Good morning everyone. Today we talk about the garden, the tomatoes and "
                  "the beans, and how much water they need when the summer is dry. Then we "
                  "look at the bees, which visit the flowers every morning, and at the old "
                  "apple tree by the wall. Please ask questions at any time, and thank you "
                  "for coming. The next walk starts at two in the afternoon near the gate.")
    parts = []
    while sum(len(p) for p in parts) < 60 * 16000:
        parts += [talk, silence(0.7)]
    wav = write_speech(tmp_path / "talk.wav", *parts)
    seconds = sum(len(p) for p in parts) / 16000
    agent = make_agent("xuna")
    states = StateLog()
    handle = run_daemon(agent, wav, extra=WAKE, listeners=[states],
                        adjust=lambda c: dataclasses.replace(c, sections={
                            **c.sections, "audio": dataclasses.replace(c.audio, file_speed=10.0)}))
    engine = handle.daemon.engine
    wait_until(lambda: engine.frames_captured >= seconds * 50, 60, "the minute of talk")
    detector = handle.daemon.wake_word.detector
    assert detector.seconds_processed >= 60
    assert detector.detections == 0
    assert states.states() == [S.WAITING_FOR_WAKE]
    assert agent.event_log.events == []  # no request, no connection
    assert handle.daemon.stats.sessions_started == 0


def test_a_second_question_in_the_follow_up_window_stays_in_the_session(
        make_agent, run_daemon, tmp_path):
    """Wake word, question, answer; a second question inside the follow-up window, without
    the wake word, reaches the agent in the same session; after the window has passed
    quietly the daemon waits for the wake word again."""
    q = the_question()
    # the first answer: ~0.6 s of end-of-speech silence, then 2.5 s of parroted speech;
    # the second question comes ~2 s into a 6 s window after it
    wav = write_speech(tmp_path / "in.wav", silence(0.5), espeak("okay nabu"), silence(0.8),
                       q, silence(5.0), q, silence(14.0))
    agent = make_agent("xuna")
    states = StateLog()
    handle = run_daemon(agent, wav, extra=wake_config(follow_up_s=6, quiet_s=10),
                        listeners=[states])
    states.wait_for(S.LISTENING, S.SPEAKING, S.FOLLOW_UP, S.LISTENING, S.SPEAKING,
                    S.FOLLOW_UP, S.WAITING_FOR_WAKE, timeout=40)
    ends = agent.wait_for("user_speech_end", count=2)
    assert len(ends) == 2 and len({e.data["conversation"] for e in ends}) == 1
    assert agent.count("ws_open") == 1
    assert handle.daemon.state is S.WAITING_FOR_WAKE


def test_the_button_wakes_it_and_the_session_ends_when_nobody_speaks(make_agent, run_daemon,
                                                                      tmp_path, caplog):
    """Daemon.wake() (the button) opens a session like the wake word; with nothing said
    it ends after quiet_s, gracefully, and the wait for the wake word starts again. The
    wake and the end are journal events."""
    caplog.set_level(logging.INFO, logger="edgevoice.wake")
    agent = make_agent("xuna")
    states = StateLog()
    wav = write_speech(tmp_path / "quiet.wav", silence(12.0))
    handle = run_daemon(agent, wav, extra=wake_config(quiet_s=2), listeners=[states])
    states.wait_for(S.WAITING_FOR_WAKE)
    handle.daemon.wake()
    states.wait_for(S.WAITING_FOR_WAKE, S.CONNECTING, S.LISTENING, S.WAITING_FOR_WAKE,
                    timeout=15)
    [closed] = agent.wait_for("ws_closed")
    assert closed.data["by"] == "client" and closed.data["code"] == 1000
    assert S.FOLLOW_UP not in states.states()  # no answer, no follow-up window
    events = {r.event: r.getMessage() for r in caplog.records if hasattr(r, "event")}
    assert events["wake_word"] == "woken by the button"
    assert "nobody spoke for 2 s" in events["wake_session_ended"]


def test_each_wake_word_talks_to_its_own_agent(make_agent, run_daemon, tmp_path):
    """models = okay_nabu, alexa with agents = alexa: voiceapi: "alexa" opens a session with
    the [voiceapi] agent, and the [agent] provider's agent hears nothing."""
    wav = write_speech(tmp_path / "in.wav", silence(0.5), espeak("alexa"), silence(0.8),
                       the_question(), silence(6.0))
    main_agent = make_agent("xuna")
    alexa_agent = make_agent("voiceapi")
    extra = {section: keys for section, keys in alexa_agent.config_values().items()
             if section != "agent"}
    extra.update(wake_config(models="okay_nabu, alexa", agents="alexa: voiceapi",
                             follow_up_s=1, quiet_s=5))
    states = StateLog()
    run_daemon(main_agent, wav, extra=extra, listeners=[states])
    states.wait_for(S.WAITING_FOR_WAKE, S.CONNECTING, S.SPEAKING, S.WAITING_FOR_WAKE,
                    timeout=30)
    [heard] = alexa_agent.wait_for("user_speech_end")
    assert abs(heard.data["seconds"] - QUESTION_SPEECH_S) < 0.3
    assert main_agent.event_log.events == []


def test_a_session_that_cannot_open_goes_back_to_waiting_and_says_why(make_agent, run_daemon,
                                                                     tmp_path):
    """The agent refuses the key: "offline", then the wait for the wake word again (not a
    retry loop the user did not ask for), its status naming the failure; the next wake
    tries once more."""
    agent = make_agent("xuna", reject_auth=True)
    states = StateLog()
    handle = run_daemon(agent, write_speech(tmp_path / "quiet.wav", silence(10.0)),
                        extra=WAKE, listeners=[states])
    states.wait_for(S.WAITING_FOR_WAKE)
    handle.daemon.wake()
    states.wait_for(S.WAITING_FOR_WAKE, S.CONNECTING, S.OFFLINE, S.WAITING_FOR_WAKE)
    last = [d for s, d, _ in states.calls if s is S.WAITING_FOR_WAKE][-1]
    assert "the last session failed" in last and 'say "okay nabu"' in last
    assert handle.daemon.stats.sessions_started == 1
    handle.daemon.wake()
    wait_until(lambda: handle.daemon.stats.sessions_started == 2, 10, "a second attempt")
    states.wait_for(S.OFFLINE, S.WAITING_FOR_WAKE, S.CONNECTING, S.OFFLINE, S.WAITING_FOR_WAKE)
