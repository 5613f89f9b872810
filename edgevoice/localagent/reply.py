"""Pacing of one reply: which audio chunks are due now, and when playback ends.

Real TTS servers send a little audio ahead and then stream in real time. A reply sends
everything that starts within ``lead_s`` of the playback clock: the first ``lead_s`` at
once, then one chunk whenever playback advances by a chunk. Playback is assumed to start
when the first chunk is sent (``start``), so the reply is *playing* from then until
``start + seconds``: that window is when user speech counts as barge-in.
"""

from __future__ import annotations


class ReplyStream:
    """Reply audio split into chunks, handed out on a real-time schedule."""

    def __init__(
        self, event_id: int, pcm: bytes, rate: int, chunk_bytes: int, lead_s: float
    ) -> None:
        if chunk_bytes <= 0 or chunk_bytes % 2:
            raise ValueError("chunk_bytes must be a positive even number")
        self.event_id = event_id
        self.rate = rate
        self.lead_s = lead_s
        self.chunks = [pcm[i : i + chunk_bytes] for i in range(0, len(pcm), chunk_bytes)]
        self.seconds = len(pcm) / 2 / rate
        self._offsets: list[float] = []
        position = 0
        for chunk in self.chunks:
            self._offsets.append(position / 2 / rate)
            position += len(chunk)
        self.next_index = 0
        self.start: float | None = None
        self.cancelled = False
        self.end_recorded = False  # set by the session once it recorded reply_end

    def due(self, now: float) -> list[bytes]:
        """Chunks to send now, in order; the first call starts the playback clock."""
        if self.cancelled:
            return []
        if self.start is None:
            self.start = now
        horizon = now - self.start + self.lead_s + 1e-6
        out = []
        while self.next_index < len(self.chunks) and self._offsets[self.next_index] < horizon:
            out.append(self.chunks[self.next_index])
            self.next_index += 1
        return out

    def next_due_at(self) -> float | None:
        """Monotonic time the next chunk becomes due (None: nothing left or not started)."""
        if self.cancelled or self.start is None or self.next_index >= len(self.chunks):
            return None
        return self.start + self._offsets[self.next_index] - self.lead_s

    def remaining(self) -> list[bytes]:
        """Chunks not sent yet."""
        return self.chunks[self.next_index :]

    @property
    def fully_sent(self) -> bool:
        return self.next_index >= len(self.chunks)

    @property
    def sent_seconds(self) -> float:
        return sum(len(c) for c in self.chunks[: self.next_index]) / 2 / self.rate

    @property
    def ends_at(self) -> float | None:
        """Monotonic time playback of the whole reply ends (None before the first chunk)."""
        return None if self.start is None else self.start + self.seconds

    def playing(self, now: float) -> bool:
        """True while the reply is audible: first chunk sent, not cancelled, not yet over."""
        return not self.cancelled and self.start is not None and now < self.start + self.seconds

    def cancel(self) -> None:
        self.cancelled = True
