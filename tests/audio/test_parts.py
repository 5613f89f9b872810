"""Framing, resampling, the playback buffer, the mic queue, late-audio dropping, backoff."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.frames import Framer, frame_bytes
from edgevoice.audio.playback_buffer import PlaybackBuffer
from edgevoice.audio.resample import StreamResampler
from edgevoice.lifecycle import ReconnectPolicy
from edgevoice.providers.base import Outcome
from edgevoice.flow import LateAudioFilter, MicQueue, Stats
from tests.support import peak_freq, sine


def test_frame_sizes():
    assert frame_bytes(16000) == 640 and frame_bytes(24000) == 960 and frame_bytes(48000) == 1920


def test_framer_emits_exact_frames_and_keeps_the_rest():
    framer = Framer(640)
    assert framer.push(b"\x01" * 600) == []
    frames = framer.push(b"\x02" * 1000)
    assert [len(f) for f in frames] == [640, 640]
    assert frames[0] == b"\x01" * 600 + b"\x02" * 40
    assert framer.push(b"\x03" * 319) == []
    assert framer.push(b"\x03") == [b"\x02" * 320 + b"\x03" * 320]


@pytest.mark.parametrize("src,dst", [(48000, 16000), (44100, 16000), (16000, 48000),
                                     (24000, 16000), (16000, 16000)])
def test_streaming_resampler_keeps_pitch_and_length(src, dst):
    signal = sine(1000, src, 1.0)
    rs = StreamResampler(src, dst)
    pieces = [rs.process(signal[i:i + src // 50].tobytes()) for i in range(0, len(signal), src // 50)]
    pieces.append(rs.process(b"", last=True))
    out = np.frombuffer(b"".join(pieces), dtype="<i2")
    assert abs(len(out) - dst) <= 2
    assert abs(peak_freq(out[dst // 10:], dst) - 1000) < 10
    assert 0.8 * 8000 < np.abs(out[dst // 10: -dst // 10]).max() < 1.1 * 8000


def _play(buf: PlaybackBuffer, block: int) -> tuple[bytes, int]:
    out = bytearray(block)
    n = buf.read_into(memoryview(out))
    return bytes(out), n


def test_playback_buffer_plays_in_order_then_silence():
    buf = PlaybackBuffer(1000)
    buf.write(b"\x01\x01" * 100, response_id=1)
    data, n = _play(buf, 300)
    assert n == 200 and data == b"\x01\x01" * 100 + bytes(100)
    assert _play(buf, 300) == (bytes(300), 0)


def test_playback_buffer_wraps_around():
    buf = PlaybackBuffer(100)
    for round_ in range(10):
        payload = bytes([round_ + 1]) * 60
        assert buf.write(payload, 1) == 60
        assert _play(buf, 60) == (payload, 60)


def test_pause_keeps_audio_and_resume_continues_where_it_stopped():
    buf = PlaybackBuffer(10000)
    buf.write(bytes(range(200)), response_id=7)
    assert _play(buf, 100)[0] == bytes(range(100))
    buf.pause()
    assert _play(buf, 100) == (bytes(100), 0)
    assert buf.buffered_bytes == 100
    buf.resume()
    assert _play(buf, 100)[0] == bytes(range(100, 200))
    assert buf.played_of(7) == 200


def test_flush_drops_everything_and_counts_what_was_played():
    buf = PlaybackBuffer(10000)
    buf.write(b"\x05\x00" * 500, response_id=3)
    _play(buf, 400)
    assert buf.flush() == 600
    assert _play(buf, 100) == (bytes(100), 0)
    assert buf.played_of(3) == 400
    buf.write(b"\x07\x00" * 10, response_id=4)
    assert _play(buf, 20)[0] == b"\x07\x00" * 10


def test_overflow_is_dropped_and_counted():
    buf = PlaybackBuffer(100)
    assert buf.write(bytes(150)) == 100
    assert buf.overflow_bytes == 50


def test_underrun_counted_when_a_response_runs_dry_mid_way():
    buf = PlaybackBuffer(1000)
    buf.write(bytes(100), response_id=1)
    _play(buf, 200)                      # ran dry
    buf.write(bytes(100), response_id=1)  # more of the same response arrives late
    assert buf.underruns == 1
    _play(buf, 200)
    buf.write(bytes(100), response_id=2)  # a new response is not an underrun
    assert buf.underruns == 1


def test_mic_queue_drops_oldest_and_never_blocks():
    q = MicQueue(3)
    for i in range(5):
        q.put(bytes([i]), float(i))
    assert q.dropped == 2
    assert [q.get(0.01)[0] for _ in range(3)] == [b"\x02", b"\x03", b"\x04"]
    assert q.get(0.01) is None


def test_late_audio_filter_by_event_id():
    late = LateAudioFilter()
    assert late.admit(1) and late.admit(2)
    late.interrupt(2)
    assert not late.admit(2) and not late.admit(1)
    assert late.admit(3)
    late.interrupt(None)  # no id: everything up to the last seen id is late
    assert not late.admit(3) and late.admit(4)
    assert late.admit(None)


def test_reconnect_backoff_full_jitter_capped():
    policy = ReconnectPolicy(max_delay=30, auth_delay=300, rng=random.Random(1))
    soon = Outcome("x")
    delays = [policy.next_delay(soon) for _ in range(12)]
    assert delays[0] <= 1.0
    assert all(d <= 30 for d in delays)
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30]
    assert all(d <= c for d, c in zip(delays, ceilings))
    policy.reset()
    assert policy.next_delay(soon) <= 1.0
    assert 270 <= policy.next_delay(Outcome("bad key", "auth")) <= 330
    assert policy.next_delay(Outcome("429", "later", 12.0)) >= 12.0


def test_latency_percentiles():
    stats = Stats()
    stats.latencies.extend([i / 1000 for i in range(1, 101)])
    assert stats.latency_percentiles() == {"p50_ms": 51.0, "p99_ms": 100.0}


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
