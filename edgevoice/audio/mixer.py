"""The player thread's mix: the agent's voice (from the :class:`PlaybackBuffer`) and one
earcon, at the output volume, into the block the speaker gets.

Per 20 ms block, on the player thread, in preallocated float32 buffers (no allocation, no
lock): the agent's block is scaled by the volume gain, and by the duck gain while an
earcon sounds (the gain glides over one block, so ducking never clicks); the earcon's next
samples are added at the volume gain times the earcon level; the sum is clipped back into
the block. With nothing to do (full volume, no earcon, not ducked) the block is left as
it is. Everything downstream (the speaker, the echo canceller's reference, the barge-in
detector's speaker levels) sees the mixed block.

Other threads steer it with :meth:`Mixer.play`, :meth:`Mixer.stop` and :meth:`set_volume`:
requests travel on a deque (its append and popleft are atomic) and gains are plain floats,
so the player thread never waits for anyone. The agent's buffer, its flushes and its
played-bytes accounting are not touched: an earcon is never dropped by a barge-in flush and
never counted as the agent's audio.

The volume curve (:func:`volume_gain`): 0 is silence, 1 to 100 span :data:`RANGE_DB` evenly
in decibels (100 is 0 dB, 50 is -20 dB, 10 is -36 dB), the way loudness is heard.
"""

from __future__ import annotations

import collections
import logging

import numpy as np

log = logging.getLogger(__name__)

RANGE_DB = 40.0  # volume 1 is this far under volume 100


def volume_db(level: int) -> float:
    """The gain (dB) of volume ``level`` (0-100); -inf for 0."""
    if level <= 0:
        return float("-inf")
    return -RANGE_DB * (100 - min(level, 100)) / 100.0


def volume_gain(level: int) -> float:
    """The linear gain of volume ``level`` (0-100)."""
    return 0.0 if level <= 0 else 10.0 ** (volume_db(level) / 20.0)


class Mixer:
    """The agent's voice and one earcon at a time, in blocks of ``block`` samples (the
    player's block, at the speaker's rate)."""

    def __init__(self, block: int, duck_db: float = 12.0) -> None:
        self.block = block
        self._acc = np.zeros(block, dtype=np.float32)
        self._tmp = np.zeros(block, dtype=np.float32)
        self._ramp = np.arange(1, block + 1, dtype=np.float32) / block
        self._requests: collections.deque = collections.deque()
        # player thread only
        self._sound: np.ndarray | None = None
        self._pos = 0
        self._loop = False
        self._applied = 1.0  # the agent gain at the end of the last block
        # set from any thread
        self.gain = 1.0            # the volume, linear
        self.duck = 10.0 ** (-duck_db / 20.0)
        self.playing = ""          # name of the earcon sounding now ("" none); for tests, logs
        self.earcon_blocks = 0     # blocks that carried an earcon

    # -- any thread --------------------------------------------------------------------------
    def set_volume(self, level: int) -> None:
        self.gain = volume_gain(level)

    def set_duck_db(self, duck_db: float) -> None:
        self.duck = 10.0 ** (-duck_db / 20.0)

    def play(self, name: str, sound: np.ndarray, loop: bool = False) -> None:
        """Start ``sound`` (float32, PCM16 units, at the player's rate, level applied) now,
        replacing whatever earcon sounds; ``loop``: again and again until :meth:`stop`."""
        self._requests.append((name, sound, loop))

    def stop(self, only_loop: bool = True) -> None:
        """End the looping earcon (``only_loop``), or whatever earcon sounds."""
        self._requests.append(("", None, only_loop))

    # -- the player thread -----------------------------------------------------------------
    def mix(self, samples: np.ndarray, audible: bool = True) -> bool:
        """Mix into ``samples`` (int16, the block, modified in place; ``audible`` False: it
        is silence); True when an earcon is in it."""
        requests = self._requests
        while requests:
            self._take(requests.popleft())
        sound = self._sound
        target = self.gain * (self.duck if sound is not None else 1.0)
        applied = self._applied
        if sound is None and (not audible or (target == 1.0 and applied == 1.0)):
            self._applied = target  # (after silence the voice starts at its gain: no glide)
            return False
        acc, tmp = self._acc, self._tmp
        if applied != target:  # glide over this block
            np.multiply(self._ramp, target - applied, out=tmp)
            tmp += applied
            np.multiply(samples, tmp, out=acc)
            self._applied = target
        else:
            np.multiply(samples, np.float32(target), out=acc)
        if sound is not None:
            self._add_earcon(acc, tmp, sound)
            self.earcon_blocks += 1
        np.rint(acc, out=acc)
        if sound is not None:  # (gains never exceed 1: only an earcon can clip)
            np.clip(acc, -32768.0, 32767.0, out=acc)
        np.copyto(samples, acc, casting="unsafe")
        return sound is not None

    def _add_earcon(self, acc: np.ndarray, tmp: np.ndarray, sound: np.ndarray) -> None:
        gain = self.gain
        filled = 0
        block = self.block
        while filled < block:
            n = min(block - filled, len(sound) - self._pos)
            part = tmp[filled:filled + n]
            np.multiply(sound[self._pos:self._pos + n], gain, out=part)
            acc[filled:filled + n] += part
            self._pos += n
            filled += n
            if self._pos >= len(sound):
                if not self._loop:
                    self._sound = None
                    self.playing = ""
                    return
                self._pos = 0

    def _take(self, request: tuple) -> None:
        name, sound, flag = request
        if sound is not None:
            if len(sound):
                self._sound, self._pos, self._loop, self.playing = sound, 0, flag, name
        elif self._sound is not None and (self._loop or not flag):
            self._sound, self.playing = None, ""
