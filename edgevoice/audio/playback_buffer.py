"""The ring buffer between the network and the speaker.

Servers send agent audio faster than real time, so the buffer holds whole responses. The
player thread takes one block at a time with :meth:`PlaybackBuffer.read_into`, which fills
the rest of the block with silence when the buffer is empty or paused. :meth:`pause`,
:meth:`resume` and :meth:`flush` take effect at the next block (well under one frame).
The buffer counts how many bytes of each response actually went to the speaker.
"""

from __future__ import annotations

import collections
import threading
import time

UNDERRUN_WINDOW_S = 1.0  # audio of the same response arriving this soon after running dry


class PlaybackBuffer:
    """Bounded byte ring of PCM16 at the output device's rate. Thread-safe; the lock is
    held only for memory copies, never across I/O."""

    def __init__(self, capacity_bytes: int) -> None:
        capacity_bytes -= capacity_bytes % 2
        self._buf = bytearray(capacity_bytes)
        self._view = memoryview(self._buf)
        self._cap = capacity_bytes
        self._read = 0
        self._fill = 0
        self._paused = False
        self._lock = threading.Lock()
        self._zeros = memoryview(bytes(65536))
        # segments of buffered audio: [response_id, bytes still buffered]
        self._segments: collections.deque[list] = collections.deque()
        self._played: collections.OrderedDict = collections.OrderedDict()
        self._dry_at: float | None = None
        self._dry_response: object = None
        self.underruns = 0
        self.overflow_bytes = 0
        self.played_bytes = 0      # real audio handed to the speaker, all responses
        self.written_bytes = 0

    # -- writer side (receive thread) --------------------------------------------------
    def write(self, pcm: bytes, response_id: object = None) -> int:
        """Append agent audio; returns the bytes stored (the rest is dropped and counted)."""
        now = time.monotonic()
        with self._lock:
            room = self._cap - self._fill
            n = min(len(pcm), room)
            n -= n % 2
            if n < len(pcm):
                self.overflow_bytes += len(pcm) - n
            if n == 0:
                return 0
            start = (self._read + self._fill) % self._cap
            first = min(n, self._cap - start)
            self._view[start:start + first] = pcm[:first]
            if first < n:
                self._view[0:n - first] = pcm[first:n]
            self._fill += n
            self.written_bytes += n
            if self._segments and self._segments[-1][0] == response_id:
                self._segments[-1][1] += n
            else:
                self._segments.append([response_id, n])
            if (self._dry_at is not None and self._dry_response == response_id
                    and now - self._dry_at < UNDERRUN_WINDOW_S):
                self.underruns += 1
            self._dry_at = None
            return n

    # -- reader side (player thread) ---------------------------------------------------
    def read_into(self, out: memoryview) -> int:
        """Fill ``out`` with the next block; returns how many bytes were real audio."""
        want = len(out)
        n = 0
        with self._lock:
            if not self._paused and self._fill:
                n = min(want, self._fill)
                start = self._read
                first = min(n, self._cap - start)
                out[:first] = self._view[start:start + first]
                if first < n:
                    out[first:n] = self._view[0:n - first]
                self._read = (start + n) % self._cap
                self._fill -= n
                self.played_bytes += n
                self._account(n)
                if self._fill == 0:
                    self._dry_at = time.monotonic()
                    self._dry_response = self._last_played_id
        if n < want:
            out[n:want] = self._zeros[:want - n]
        return n

    _last_played_id: object = None

    def _account(self, n: int) -> None:
        segments = self._segments
        while n and segments:
            seg = segments[0]
            take = min(n, seg[1])
            seg[1] -= take
            n -= take
            key = seg[0]
            self._played[key] = self._played.get(key, 0) + take
            self._last_played_id = key
            if seg[1] == 0:
                segments.popleft()
        while len(self._played) > 16:
            self._played.popitem(last=False)

    # -- control (any thread) ----------------------------------------------------------
    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def flush(self) -> int:
        """Drop everything buffered (and un-pause); returns the bytes dropped."""
        with self._lock:
            dropped = self._fill
            self._fill = 0
            self._read = 0
            self._paused = False
            self._segments.clear()
            self._dry_at = None
            return dropped

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def buffered_bytes(self) -> int:
        return self._fill

    @property
    def current_response(self) -> object:
        """The response whose audio played last."""
        return self._last_played_id

    def played_of(self, response_id: object) -> int:
        """Bytes of the response ``response_id`` that reached the speaker so far."""
        with self._lock:
            return self._played.get(response_id, 0)
