"""Streaming sample-rate conversion (libsoxr through the ``soxr`` package)."""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Converts PCM16 mono chunks from ``in_rate`` to ``out_rate``, keeping filter state
    between chunks so that there are no clicks at chunk boundaries. Same rates: a no-op."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (None if in_rate == out_rate else
                        soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality))

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return self._stream.resample_chunk(samples, last=last).tobytes()

    def reset(self) -> None:
        if self._stream is not None:
            self._stream.clear()
