"""Defects found in review, kept fixed: a half-open connection, server ids that are not
ids, late audio on napster, libsoxr reset races, secrets in parse errors."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time

import numpy as np

from edgevoice.audio.engine import AudioEngine
from edgevoice.config import ConfigError, parse
from tests.conftest import QUESTION_WAV
from tests.test_bargein import Rig, _paused_rig
from tests.test_daemon_e2e import wait_until

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


def test_ids_that_are_not_ids_do_not_kill_the_receive_thread():
    rig = _paused_rig("napster")
    rig.server('{"type":"message_received","data":{"role":"assistant","action":"cancelled",'
               '"response_id":["r1"]}}')
    assert rig.engine.buffer.buffered_bytes == 0  # flushed all the same
    rig = Rig("xuna")
    rig.server('{"type":"audio","audio_event":{"audio_base_64":"AQACAA==","event_id":{}}}')
    assert rig.engine.buffer.buffered_bytes == 4
    rig.tick(None)  # and it plays
    assert rig.engine.buffer.buffered_bytes == 0


def test_napster_cancellation_with_a_response_id_drops_the_late_audio():
    rig = _paused_rig("napster")
    rig.server('{"type":"message_received","data":{"role":"assistant","action":"cancelled",'
               '"reason":"turn_detected","response_id":"r7"}}')
    rig.server('{"event":"audio_received","data":{"data":"AQACAA=="}}')
    assert rig.engine.buffer.buffered_bytes == 0
    assert rig.session.stats.late_chunks_dropped == 1


def test_flushing_from_other_threads_while_resampling_is_safe():
    """libsoxr must not be reset while the receive thread is inside it (this crashed the
    process with SIGSEGV before)."""
    import types
    device = types.SimpleNamespace(rate=16000, close=lambda: None)
    engine = AudioEngine(device, device, 16000, buffer_seconds=5)
    chunk = (np.sin(np.arange(2400) / 5) * 8000).astype("<i2").tobytes()  # 100 ms at 24 kHz
    stop = threading.Event()

    def receive():
        while not stop.is_set():
            engine.play(chunk, 24000)

    threads = [threading.Thread(target=receive)] + [
        threading.Thread(target=lambda: [engine.flush_playback() for _ in range(3000)])
        for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(20)
    stop.set()
    threads[0].join(5)
    assert not any(t.is_alive() for t in threads)


def test_a_pasted_secret_is_not_echoed_by_a_parse_error():
    try:
        parse("[xuna]\nagent_id = a\nsk_live_PASTED_SECRET_123\n")
    except ConfigError as exc:
        assert "sk_live_PASTED_SECRET_123" not in str(exc)
        assert "line 3" in str(exc)
    else:
        raise AssertionError("accepted a line without '='")
