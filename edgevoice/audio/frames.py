"""Exact 20 ms frames of PCM16 mono."""

from __future__ import annotations

FRAME_MS = 20
SAMPLE_BYTES = 2  # PCM16


def frame_samples(rate: int) -> int:
    """Samples in one 20 ms frame at ``rate`` (320 at 16 kHz, 480 at 24 kHz)."""
    return rate * FRAME_MS // 1000


def frame_bytes(rate: int) -> int:
    """Bytes in one 20 ms frame at ``rate`` (640 at 16 kHz, 960 at 24 kHz)."""
    return frame_samples(rate) * SAMPLE_BYTES


class Framer:
    """Cuts a stream of PCM chunks of any length into exact frames.

    A partial frame waits for the next chunk. ``push`` returns the complete frames.
    """

    __slots__ = ("size", "_buf")

    def __init__(self, frame_size: int) -> None:
        self.size = frame_size
        self._buf = bytearray()

    def push(self, chunk: bytes) -> list[bytes] | tuple[bytes]:
        buf = self._buf
        if not buf and len(chunk) == self.size:
            return (chunk,)  # the common case: one read is one frame, no copy
        buf += chunk
        size = self.size
        if len(buf) < size:
            return []
        count = len(buf) // size
        frames = [bytes(buf[i * size:(i + 1) * size]) for i in range(count)]
        del buf[:count * size]
        return frames

    def reset(self) -> None:
        self._buf.clear()
