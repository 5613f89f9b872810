"""The whole daemon against the local agent on loopback, file audio, both dialects.

The output WAV is the speaker's timeline on the same clock as the input WAV, so the tests
read from it when the agent was audible and compare that with what the agent did.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time

import numpy as np
import pytest

from tests.support import (BargeInRun, QUESTION_WAV, answer_matches_question, audible_spans,
                           drained, question, question_then_barge_in, speaker_spans,
                           unplug_microphone, wait_until)

DAEMON_THREADS = ("edgevoice-session", "edgevoice-capture", "edgevoice-player", "edgevoice-send",
                  "edgevoice-recv")


@pytest.mark.parametrize("private,rate", [(False, 16000), (True, 24000)])
def test_xuna_question_in_answer_out_with_pings(make_agent, run_daemon, private, rate):
    agent = make_agent("xuna", ping_interval=0.4, private=private, output_rate=rate)
    handle = run_daemon(agent)
    agent.wait_for("reply_end", timeout=20)
    agent.wait_for("pong_ok", count=3, timeout=10)
    wait_until(lambda: drained(handle), 10, "the answer to play out")
    t0 = handle.t0()
    handle.stop()

    assert agent.count("pong_bad") == 0
    opened = agent.wait_for("ws_open")[0]
    assert opened.data.get("auth") == ("signed" if private else "public")
    init = agent.wait_for("client_init")[0]
    assert init.data["first"] is True  # initiation message came first
    samples, out_rate, spans = speaker_spans(handle)
    assert out_rate == 16000
    assert len(spans) == 1, spans
    start, end = spans[0]
    reply_start = agent.wait_for("reply_start")[0]
    # audible when the agent started sending (plus a frame or two), for as long as it said
    assert abs(start - (reply_start.t - t0)) < 0.25, (start, reply_start.t - t0)
    assert abs((end - start) - reply_start.data["seconds"]) < 0.25
    answer = samples[int(start * out_rate):int(end * out_rate)]
    assert answer_matches_question(answer, out_rate) > 0.8
    stats = handle.daemon.stats
    assert stats.frames_sent > 100 and stats.frames_dropped == 0
    assert stats.pongs_sent >= 3


def test_xuna_interruption_stops_playback_and_drops_late_audio(make_agent, run_daemon, tmp_path):
    """The server's interruption alone (local barge-in off)."""
    agent = make_agent("xuna", late_audio_after_interrupt=True)
    handle = run_daemon(agent, question_then_barge_in(tmp_path, 1.0),
                        extra={"agent": {"barge_in": "off"}})
    interrupted = agent.wait_for("interrupted", timeout=20)[0]
    second = agent.wait_for("reply_start", count=2, timeout=20)[1]
    agent.wait_for("reply_end", timeout=20,
                   predicate=lambda e: e.data["event_id"] == second.data["event_id"])
    wait_until(lambda: drained(handle), 10, "the second answer to play out")
    t0 = handle.t0()
    stats = handle.daemon.stats
    handle.stop()

    assert stats.interruptions == 1
    assert stats.late_chunks_dropped == 3  # the agent sent 3 chunks after its interruption
    samples, rate, spans = speaker_spans(handle)
    cut = interrupted.t - t0
    first_answer = spans[0]
    assert first_answer[0] < cut < first_answer[1] + 0.1
    # the agent's voice stops within 100 ms of the interruption (one block of playback)
    assert first_answer[1] - cut < 0.1, (first_answer, cut)
    # and nothing is heard between the interruption and the second answer
    quiet = samples[int((cut + 0.1) * rate):int((second.t - t0) * rate)]
    assert len(quiet) > rate // 2 and np.abs(quiet).max() < 300
    assert any(abs(s - (second.t - t0)) < 0.25 for s, _ in spans[1:])


def test_voiceapi_question_answer_and_reconnect_with_a_fresh_token(make_agent, run_daemon):
    agent = make_agent("voiceapi", close_after_reply=True)
    handle = run_daemon(agent)
    reply = agent.wait_for("reply_start", timeout=20)[0]
    closed = agent.wait_for("ws_closed", timeout=20)[0]
    reopened = agent.wait_for("ws_open", count=2, timeout=10)[1]
    tokens = [e.data["token"] for e in agent.wait_for("http_token", count=2)]
    wait_until(lambda: handle.daemon.stats.sessions_streaming >= 2, 10, "streaming again")
    handle.stop()

    assert len(set(tokens)) == 2  # a fresh token for the new session
    assert reopened.t - closed.t < 1.5  # first retry within a second, plus connecting
    assert handle.daemon.stats.sessions_streaming >= 2
    samples, rate, spans = speaker_spans(handle)
    start, end = spans[0]
    assert abs((end - start) - reply.data["seconds"]) < 0.25
    assert answer_matches_question(samples[int(start * rate):int(end * rate)], rate) > 0.8


def test_garbage_from_the_server_is_logged_and_skipped(make_agent, run_daemon, caplog):
    agent = make_agent("xuna", send_garbage=True, garbage_big_bytes=90_000)
    handle = run_daemon(agent, extra={"session": {"max_message_bytes": "100000"}})
    agent.wait_for("garbage_sent", timeout=10)
    agent.wait_for("reply_end", timeout=20)
    wait_until(lambda: drained(handle), 10, "the answer to play out")
    stats = handle.daemon.stats
    handle.stop()

    assert stats.malformed >= 6
    assert stats.sessions_started == 1  # the session survived all of it
    samples, rate, spans = speaker_spans(handle)
    assert len(spans) == 1


def test_rejected_key_backs_off_long_and_says_so(make_agent, run_daemon, caplog):
    agent = make_agent("voiceapi", reject_auth=True)
    retries: list[str] = []
    offline = threading.Event()

    def listener(state, detail):
        if state == "offline" and "retry in" in detail:
            retries.append(detail)
            offline.set()

    handle = run_daemon(agent, listeners=[listener])
    assert offline.wait(10)
    handle.stop()
    assert agent.count("auth_rejected") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("key looks wrong" in m and "retrying in" in m for m in errors), errors
    delay = float(retries[0].split("retry in ")[1].split()[0])
    assert 50 <= delay <= 70  # auth_retry_delay = 60 s, +-10 % jitter


def test_stalled_server_is_detected_and_replaced(make_agent, run_daemon):
    agent = make_agent("xuna", ping_interval=0)
    handle = run_daemon(agent, extra={"session": {"idle_timeout": "5", "ping_interval": "1"}})
    agent.wait_for("ws_open", timeout=10)
    agent.options.stall = True
    agent.wait_for("stalled", timeout=10)
    agent.options.stall = False
    agent.wait_for("ws_open", count=2, timeout=15)
    handle.stop()
    assert handle.daemon.stats.sessions_started >= 2


def test_stop_leaves_no_thread_behind(make_agent, run_daemon):
    agent = make_agent("xuna")
    handle = run_daemon(agent)
    agent.wait_for("audio_first", timeout=10)
    started = time.monotonic()
    handle.stop()
    assert time.monotonic() - started < 2.0
    alive = [t.name for t in threading.enumerate() if t.name.startswith(DAEMON_THREADS)]
    assert alive == []


def _second_onset_s(gap_s: float) -> float:
    """When the user starts talking over the agent in the input WAV (seconds)."""
    q, rate = question()
    (first, _), = audible_spans(q, rate)[:1]
    return len(q) / rate + gap_s + first


@pytest.mark.parametrize("dialect", ["xuna", "voiceapi"])
def test_local_barge_in_stops_the_agent_within_100ms_of_the_users_onset(
        make_agent, run_daemon, tmp_path, dialect):
    run = BargeInRun(make_agent, run_daemon, tmp_path, dialect)
    handle, second, t0, stats = run.handle, run.second, run.t0, run.stats

    onset = _second_onset_s(1.0)
    samples, rate, spans = speaker_spans(handle)
    first_answer = spans[0]
    assert first_answer[0] < onset < first_answer[1] + 0.2, (spans, onset)
    assert first_answer[1] - onset <= 0.1, f"agent still audible {first_answer[1] - onset:.3f} s"
    assert stats.local_pauses >= 1
    if dialect == "voiceapi":  # no interruption event: the device confirms by itself
        assert stats.local_flushes == 1 and stats.interruptions == 0
    else:
        assert stats.interruptions == 1
    assert stats.false_barge_ins == 0
    # silence until the next answer, which plays normally
    quiet = samples[int((first_answer[1] + 0.05) * rate):int((second.t - t0) * rate)]
    assert np.abs(quiet).max() < 300
    assert any(abs(s - (second.t - t0)) < 0.25 for s, _ in spans[1:])


def test_a_sound_device_that_keeps_failing_is_reopened(make_agent, run_daemon, caplog):
    agent = make_agent("xuna")
    handle = run_daemon(agent)
    agent.wait_for("audio_first", timeout=10)
    old = handle.daemon.engine
    unplug_microphone(old)
    wait_until(lambda: handle.daemon.engine is not old and handle.daemon.engine is not None,
               10, "the sound devices to be reopened")
    agent.wait_for("ws_open", count=2, timeout=10)  # and a new session on them
    handle.stop()
    assert any("microphone keeps failing" in r.getMessage() for r in caplog.records)
    assert not old.threads[0].is_alive()


# -- a half-open link (Wi-Fi gone, TCP still up) is noticed and replaced ------------------
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


class DeafServer:
    """Accepts WebSocket handshakes, then never reads again (a half-open link: Wi-Fi gone,
    TCP still up). A tiny receive buffer makes the client's sends block within a second."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key"))
            accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            self.connections.append(conn)  # and never read from it again

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


def test_a_half_open_connection_is_replaced_and_stop_still_works(run_daemon, tmp_path):
    server = DeafServer()

    class Agent:  # what run_daemon needs from an agent
        @staticmethod
        def config_values():
            return {"agent": {"provider": "xuna"},
                    "xuna": {"agent_id": "a1",
                             "url": f"ws://127.0.0.1:{server.port}/v1/convai/conversation"}}

    try:
        handle = run_daemon(Agent, QUESTION_WAV, extra={"session": {
            "idle_timeout": "5", "ping_interval": "1", "reconnect_max_delay": "1"}})
        wait_until(lambda: len(server.connections) >= 2, 20,
                   "a new connection after the link went deaf")
        started = time.monotonic()
        handle.stop()
        assert time.monotonic() - started < 2.0
    finally:
        server.close()
