"""The player's mix: the volume curve, an earcon over the agent's voice (ducked, not cut),
a flush of the agent's voice that leaves the earcon playing and the agent's played-time
accounting exact, loops, and no allocation per block. The player thread is played by
hand: PlaybackBuffer.read_into, then Mixer.mix, block after block."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edgevoice.audio.mixer import RANGE_DB, Mixer, volume_db, volume_gain
from edgevoice.audio.playback_buffer import PlaybackBuffer
from edgevoice.sounds import NAMES, load_sound

RATE = 16000
BLOCK = RATE // 50


def db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)


def tone(seconds: float, amplitude: float = 8000.0, freq: float = 300.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2")


class Player:
    """The player thread's loop without a device: buffer → mix → the "speaker"."""

    def __init__(self, mixer: Mixer, buffer: PlaybackBuffer) -> None:
        self.mixer, self.buffer = mixer, buffer
        self.block = bytearray(BLOCK * 2)
        self.samples = np.frombuffer(self.block, dtype="<i2")
        self.out: list[np.ndarray] = []
        self.earcon_blocks: list[bool] = []

    def run(self, blocks: int) -> np.ndarray:
        for _ in range(blocks):
            audible = self.buffer.read_into(memoryview(self.block)) > 0
            self.earcon_blocks.append(self.mixer.mix(self.samples, audible))
            self.out.append(self.samples.copy())
        return np.concatenate(self.out[-blocks:])


def test_the_volume_curve_is_even_in_decibels():
    assert volume_db(100) == 0.0 and volume_gain(100) == 1.0
    assert volume_db(50) == pytest.approx(-RANGE_DB / 2) == pytest.approx(-20.0)
    assert volume_db(10) == pytest.approx(-36.0) and volume_db(1) == pytest.approx(-39.6)
    assert volume_gain(0) == 0.0 and volume_db(0) == float("-inf")
    steps = [volume_db(v + 10) - volume_db(v) for v in range(10, 100, 10)]
    assert steps == pytest.approx([4.0] * 9)


def test_full_volume_without_an_earcon_leaves_the_agent_untouched():
    buffer, mixer = PlaybackBuffer(RATE * 4), Mixer(BLOCK)
    voice = tone(0.5)
    buffer.write(voice.tobytes(), "r1")
    out = Player(mixer, buffer).run(25)
    assert np.array_equal(out, voice)


@pytest.mark.parametrize("level", [50, 75, 10])
def test_the_agent_is_played_at_the_volume(level):
    buffer, mixer = PlaybackBuffer(RATE * 4), Mixer(BLOCK)
    mixer.set_volume(level)
    voice = tone(1.0)
    buffer.write(voice.tobytes(), "r1")
    player = Player(mixer, buffer)
    player.run(1)  # the first block glides from full volume to the new one
    out = player.run(49)
    assert db(out) - db(voice[BLOCK:]) == pytest.approx(volume_db(level), abs=0.05)


def test_an_earcon_ducks_the_agent_and_a_flush_of_the_agent_keeps_the_earcon():
    buffer, mixer = PlaybackBuffer(RATE * 8), Mixer(BLOCK, duck_db=12.0)
    voice = tone(3.0, freq=300.0)
    buffer.write(voice.tobytes(), "r1")
    player = Player(mixer, buffer)
    before = player.run(10)
    assert np.array_equal(before, voice[:10 * BLOCK])
    earcon = tone(0.4, amplitude=3000.0, freq=1000.0).astype(np.float32)
    mixer.play("test", earcon)
    player.run(1)  # the duck glides in over one block (no click)
    mixed = player.run(9)  # earcon samples 320.. under the ducked voice
    start = 11 * BLOCK
    agent_part = mixed - np.round(earcon[BLOCK:10 * BLOCK]).astype(np.int64)
    ducked = db(agent_part) - db(voice[start:start + 9 * BLOCK])
    assert ducked == pytest.approx(-12.0, abs=0.1)  # ducked, not cut
    # barge-in: the agent's voice is flushed; the earcon plays on, the accounting is exact
    played_before = buffer.played_of("r1")
    assert played_before == 20 * BLOCK * 2
    buffer.flush()
    rest = player.run(10)
    assert buffer.played_of("r1") == played_before  # earcon samples are not agent samples
    tail = np.round(earcon[10 * BLOCK:20 * BLOCK]).astype(np.int64)
    assert np.abs(rest.astype(np.int64) - tail).max() <= 1
    assert player.earcon_blocks[-10:] == [True] * 10
    after = player.run(5)
    assert not after.any() and mixer.playing == "" and player.earcon_blocks[-1] is False


def test_a_loop_repeats_until_stopped_and_a_one_shot_replaces_it():
    buffer, mixer = PlaybackBuffer(RATE), Mixer(BLOCK)
    period = np.zeros(BLOCK * 5, dtype=np.float32)
    period[:BLOCK] = 1000.0
    mixer.play("thinking", period, loop=True)
    player = Player(mixer, buffer)
    out = player.run(20).reshape(20, BLOCK)
    loud = [bool(b.any()) for b in out]
    assert loud == [True, False, False, False, False] * 4
    mixer.stop(only_loop=False)
    mixer.stop()  # nothing loops any more: harmless
    assert not player.run(10).any()
    mixer.play("thinking", period, loop=True)
    mixer.play("ended", np.full(BLOCK, 500.0, dtype=np.float32))
    mixer.stop(only_loop=True)  # the one-shot replaced the loop: it plays out
    out = player.run(3).reshape(3, BLOCK)
    assert out[0].min() == 500 and not out[1:].any()


def test_volume_applies_to_earcons_and_zero_is_silence():
    buffer, mixer = PlaybackBuffer(RATE), Mixer(BLOCK)
    earcon = np.full(BLOCK * 3, 2000.0, dtype=np.float32)
    mixer.set_volume(50)
    mixer.play("a", earcon)
    out = Player(mixer, buffer).run(3)
    assert np.abs(out - 200).max() <= 1  # -20 dB
    mixer.set_volume(0)
    mixer.play("a", earcon)
    buffer.write(tone(0.2).tobytes(), "r")
    player = Player(mixer, buffer)
    player.run(1)
    assert not player.run(5).any()


def test_mixing_allocates_nothing_per_block():
    buffer, mixer = PlaybackBuffer(RATE * 30), Mixer(BLOCK)
    buffer.write(tone(20.0).tobytes(), "r")
    mixer.set_volume(60)
    loop = np.full(BLOCK * 7 + 13, 300.0, dtype=np.float32)
    mixer.play("thinking", loop, loop=True)
    block = bytearray(BLOCK * 2)
    samples = np.frombuffer(block, dtype="<i2")
    view = memoryview(block)
    for _ in range(50):  # warm up
        mixer.mix(samples, buffer.read_into(view) > 0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(500):
            mixer.mix(samples, buffer.read_into(view) > 0)
        grown = tracemalloc.get_traced_memory()[0] - base
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert grown < 2048 and peak < 4096, (grown, peak)  # views only, never a block's buffer


@pytest.mark.parametrize("name", NAMES)
def test_the_bundled_sounds_load_at_any_speaker_rate(name):
    for rate in (16000, 44100, 48000):
        sound = load_sound("default", name, rate, 1.0)
        assert sound.dtype == np.float32 and 0.2 * rate < len(sound) < 1.5 * rate
        peak = 20 * np.log10(np.abs(sound).max() / 32768)
        assert peak < -11.0  # quiet enough to sit under the agent's voice
    assert load_sound("off", name, RATE, 1.0) is None
