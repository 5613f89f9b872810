"""The playback buffer's bookkeeping: bytes per response, overflow with audio already in it,
odd sizes, wrap-around, the run-dry (underrun) window, and the counters the logs and the
bench report."""

from __future__ import annotations

import types

import pytest

from edgevoice.audio import playback_buffer as pbmod
from edgevoice.audio.playback_buffer import UNDERRUN_WINDOW_S, PlaybackBuffer


def play(buf: PlaybackBuffer, block: int) -> tuple[bytes, int]:
    out = bytearray(b"\xee" * block)  # not zero: silence must be written, not assumed
    n = buf.read_into(memoryview(out))
    return bytes(out), n


@pytest.fixture
def clock(monkeypatch):
    """The buffer's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(pbmod, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_a_new_buffer_is_empty_and_silent():
    buf = PlaybackBuffer(64)
    assert (buf.buffered_bytes, buf.paused, buf.current_response) == (0, False, None)
    assert (buf.underruns, buf.overflow_bytes, buf.played_bytes, buf.written_bytes) == (0, 0, 0, 0)
    assert play(buf, 32) == (bytes(32), 0)
    assert buf.played_of(None) == 0


def test_an_odd_capacity_holds_whole_samples_only():
    buf = PlaybackBuffer(11)
    assert buf.write(b"\x01" * 12) == 10
    assert buf.overflow_bytes == 2 and buf.buffered_bytes == 10
    assert play(buf, 12) == (b"\x01" * 10 + bytes(2), 10)


def test_an_odd_chunk_loses_its_last_byte_and_counts_it():
    buf = PlaybackBuffer(100)
    assert buf.write(b"abc", "r") == 2
    assert buf.overflow_bytes == 1 and buf.written_bytes == 2
    assert buf.write(b"d", "r") == 0
    assert buf.overflow_bytes == 2 and buf.buffered_bytes == 2
    assert play(buf, 4) == (b"ab" + bytes(2), 2)


def test_overflow_with_audio_in_the_buffer_keeps_the_oldest_in_order():
    buf = PlaybackBuffer(10)
    assert buf.write(b"AABBCC", 1) == 6
    assert buf.write(b"DDEEFFGG", 2) == 4
    assert buf.overflow_bytes == 4 and buf.written_bytes == 10
    assert buf.write(b"HH", 2) == 0  # full
    assert buf.overflow_bytes == 6
    assert play(buf, 12) == (b"AABBCCDDEE" + bytes(2), 10)
    assert buf.played_of(1) == 6 and buf.played_of(2) == 4


def test_writes_and_reads_wrap_around_the_end_in_pieces():
    buf = PlaybackBuffer(10)
    buf.write(b"01234567", "a")
    assert play(buf, 6)[0] == b"012345"
    assert buf.write(b"abcdefgh", "b") == 8  # 2 at the end, 6 wrapped to the start
    assert buf.buffered_bytes == 10
    assert play(buf, 4) == (b"67ab", 4)
    assert play(buf, 8) == (b"cdefgh" + bytes(2), 6)
    assert buf.played_bytes == 16 and buf.written_bytes == 16
    assert buf.played_of("a") == 8 and buf.played_of("b") == 8


def test_bytes_are_counted_per_response_in_the_order_played():
    buf = PlaybackBuffer(1000)
    buf.write(b"\x01\x00" * 50, "r1")
    buf.write(b"\x02\x00" * 20, "r1")  # more of the same response: one segment
    buf.write(b"\x03\x00" * 30, "r2")
    buf.write(b"\x04\x00" * 10, "r1")  # r1 again after r2: counted for r1 when it plays
    assert play(buf, 100)[1] == 100
    assert (buf.played_of("r1"), buf.played_of("r2"), buf.current_response) == (100, 0, "r1")
    assert play(buf, 100)[1] == 100
    assert (buf.played_of("r1"), buf.played_of("r2"), buf.current_response) == (140, 60, "r2")
    assert play(buf, 100)[1] == 20
    assert (buf.played_of("r1"), buf.played_of("r2"), buf.current_response) == (160, 60, "r1")
    assert buf.played_of("never") == 0


def test_the_current_response_is_the_one_heard_last():
    buf = PlaybackBuffer(1000)
    buf.write(bytes(40), 7)
    buf.write(bytes(40), 8)
    play(buf, 40)
    assert buf.current_response == 7
    play(buf, 2)
    assert buf.current_response == 8
    buf.pause()
    play(buf, 40)
    assert buf.current_response == 8


def test_the_last_16_responses_are_remembered():
    buf = PlaybackBuffer(10000)
    for r in range(16):
        buf.write(bytes(10), r)
    play(buf, 160)
    assert [buf.played_of(r) for r in range(16)] == [10] * 16
    buf.write(bytes(10), 16)
    play(buf, 10)
    assert buf.played_of(0) == 0  # the oldest is forgotten
    assert [buf.played_of(r) for r in range(1, 17)] == [10] * 16


def test_pause_plays_silence_and_keeps_everything():
    buf = PlaybackBuffer(100)
    buf.write(b"xxyy", 1)
    buf.pause()
    assert buf.paused is True
    assert play(buf, 8) == (bytes(8), 0)
    assert (buf.buffered_bytes, buf.played_bytes, buf.played_of(1)) == (4, 0, 0)
    buf.write(b"zz", 1)  # audio keeps arriving while paused
    buf.resume()
    assert buf.paused is False
    assert play(buf, 8) == (b"xxyyzz" + bytes(2), 6)


def test_flush_drops_unpauses_and_starts_clean():
    buf = PlaybackBuffer(10)
    buf.write(b"0123456789", "old")
    play(buf, 4)
    buf.pause()
    assert buf.flush() == 6
    assert (buf.paused, buf.buffered_bytes) == (False, 0)
    assert buf.flush() == 0
    assert buf.played_of("old") == 4  # what was heard stays counted
    buf.write(b"abcdefgh", "new")  # starts at the beginning of the ring again
    assert play(buf, 8) == (b"abcdefgh", 8)
    assert buf.played_of("new") == 8 and buf.played_of("old") == 4


def test_an_underrun_is_the_same_response_arriving_soon_after_running_dry(clock):
    buf = PlaybackBuffer(1000)
    buf.write(bytes(20), "r")
    play(buf, 40)  # ran dry
    clock[0] += UNDERRUN_WINDOW_S - 0.01
    buf.write(bytes(20), "r")
    assert buf.underruns == 1
    buf.write(bytes(20), "r")  # once counted, the next chunk is not another underrun
    assert buf.underruns == 1


def test_arriving_after_the_window_is_a_pause_in_speech_not_an_underrun(clock):
    buf = PlaybackBuffer(1000)
    buf.write(bytes(20), "r")
    play(buf, 40)
    clock[0] += UNDERRUN_WINDOW_S
    buf.write(bytes(20), "r")
    assert buf.underruns == 0


def test_running_dry_between_responses_or_after_a_flush_is_no_underrun(clock):
    buf = PlaybackBuffer(1000)
    buf.write(bytes(20), "a")
    play(buf, 40)
    buf.write(bytes(20), "b")  # the next response
    assert buf.underruns == 0
    play(buf, 40)
    buf.flush()
    buf.write(bytes(20), "b")
    assert buf.underruns == 0


def test_running_dry_is_noticed_only_when_the_buffer_empties(clock):
    buf = PlaybackBuffer(1000)
    buf.write(bytes(40), "r")
    play(buf, 20)  # still 20 buffered: not dry
    buf.write(bytes(20), "r")
    assert buf.underruns == 0
    play(buf, 40)  # now dry, with r heard last
    buf.write(bytes(2), "r")
    assert buf.underruns == 1


def test_a_paused_buffer_does_not_run_dry(clock):
    buf = PlaybackBuffer(1000)
    buf.pause()
    play(buf, 40)
    buf.write(bytes(20), None)
    assert buf.underruns == 0


def test_the_underrun_window_is_one_second():
    assert UNDERRUN_WINDOW_S == 1.0


def test_a_block_larger_than_the_audio_is_padded_with_silence():
    buf = PlaybackBuffer(100_000)
    buf.write(b"\x11" * 1000)
    data, n = play(buf, 4000)
    assert n == 1000 and data == b"\x11" * 1000 + bytes(3000)


# -- cutting the mic stream into frames ---------------------------------------------------------
def test_frame_sizes_are_whole_samples_at_any_rate():
    from edgevoice.audio.frames import frame_bytes, frame_samples
    assert [frame_samples(r) for r in (8000, 16000, 24000, 44100, 11025)] == [160, 320, 480, 882, 220]
    assert all(type(frame_samples(r)) is int for r in (16000, 11025))
    assert frame_bytes(11025) == 440 and type(frame_bytes(16000)) is int


def test_a_whole_frame_read_passes_through_uncopied():
    from edgevoice.audio.frames import Framer
    framer = Framer(4)
    chunk = b"abcd"
    assert framer.push(chunk)[0] is chunk  # the 20 ms path: no allocation


def test_a_whole_frame_after_a_partial_one_keeps_the_order():
    from edgevoice.audio.frames import Framer
    framer = Framer(4)
    assert list(framer.push(b"ab")) == []
    assert list(framer.push(b"cdef")) == [b"abcd"]
    assert list(framer.push(b"gh")) == [b"efgh"]
    framer.push(b"x")
    framer.reset()
    assert list(framer.push(b"1234")) == [b"1234"]


def test_underruns_add_up_and_a_chunk_too_small_to_store_is_not_one(clock):
    buf = PlaybackBuffer(1000)
    buf.write(bytes(20), "r")
    play(buf, 40)  # dry
    assert buf.write(b"x", "r") == 0  # nothing stored: not audio arriving, not an underrun
    assert buf.underruns == 0
    buf.write(bytes(20), "r")
    assert buf.underruns == 1
    play(buf, 40)  # dry again
    buf.write(bytes(20), "r")
    assert buf.underruns == 2
