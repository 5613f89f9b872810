"""End-of-utterance detection on the user's audio (webrtcvad on 20 ms frames at 16 kHz).

An utterance starts at the first voiced frame and ends once ``end_silence_ms`` of
non-voiced frames follow; its audio is the span from the first to the last voiced frame.
Utterances shorter than ``min_speech_ms`` are dropped silently (coughs, clicks).

Pure logic, no threads or sockets::

    listener = UtteranceListener(vad_mode=2, end_silence_ms=600, min_speech_ms=300)
    for frame in listener.frames(pcm):
        result = listener.process(frame)   # None, SpeechStarted or SpeechEnded
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import webrtcvad

SAMPLE_RATE = 16000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * 2  # 640


@dataclass(frozen=True)
class SpeechStarted:
    """Speech has lasted ``min_speech_ms``; ``at`` is its onset in session audio seconds."""

    at: float


@dataclass(frozen=True)
class SpeechEnded:
    """A complete utterance: its PCM16 16 kHz audio, duration and end position (seconds)."""

    pcm: bytes
    seconds: float
    at: float


class UtteranceListener:
    """Feeds 20 ms frames to webrtcvad and reports utterance boundaries."""

    def __init__(
        self,
        vad_mode: int = 2,
        end_silence_ms: int = 600,
        min_speech_ms: int = 300,
        max_utterance_s: float = 30.0,
    ) -> None:
        self._vad = webrtcvad.Vad(vad_mode)
        self._end_silence_frames = max(1, end_silence_ms // FRAME_MS)
        self._min_speech_frames = max(1, min_speech_ms // FRAME_MS)
        self._max_frames = max(1, int(max_utterance_s * 1000) // FRAME_MS)
        self._pending = b""  # bytes short of a whole frame
        self._frames_seen = 0  # session audio position, in frames
        self._utterance: list[bytes] | None = None  # frames since onset, None when idle
        self._onset_frame = 0
        self._last_voiced = 0  # index into _utterance
        self._voiced_count = 0
        self._silence_run = 0
        self._announced = False

    # --- input ---------------------------------------------------------------
    def frames(self, pcm: bytes) -> Iterator[bytes]:
        """Split arbitrary-length PCM into whole 640-byte frames, keeping the remainder."""
        data = self._pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        for start in range(0, whole, FRAME_BYTES):
            yield data[start : start + FRAME_BYTES]

    def process(self, frame: bytes) -> SpeechStarted | SpeechEnded | None:
        """Classify one 640-byte frame and advance the utterance state."""
        voiced = self._vad.is_speech(frame, SAMPLE_RATE)
        self._frames_seen += 1
        if self._utterance is None:
            if not voiced:
                return None
            self._utterance = []
            self._onset_frame = self._frames_seen - 1
            self._voiced_count = 0
            self._announced = False
        self._utterance.append(frame)
        if voiced:
            self._voiced_count += 1
            self._silence_run = 0
            self._last_voiced = len(self._utterance) - 1
        else:
            self._silence_run += 1
        if (self._silence_run >= self._end_silence_frames
                or len(self._utterance) >= self._max_frames):
            return self._finish()
        if not self._announced and self._last_voiced + 1 >= self._min_speech_frames:
            self._announced = True
            return SpeechStarted(at=self._onset_frame * FRAME_MS / 1000)
        return None

    def _finish(self) -> SpeechEnded | None:
        assert self._utterance is not None
        speech = self._utterance[: self._last_voiced + 1]
        self._utterance = None
        self._silence_run = 0
        self._voiced_count = 0
        if len(speech) < self._min_speech_frames:
            return None
        seconds = len(speech) * FRAME_MS / 1000
        return SpeechEnded(
            pcm=b"".join(speech),
            seconds=seconds,
            at=(self._onset_frame + len(speech)) * FRAME_MS / 1000,
        )

    # --- state for barge-in ------------------------------------------------------
    @property
    def voiced_ms(self) -> int:
        """Voiced audio in the utterance under way (0 when the user is silent)."""
        return self._voiced_count * FRAME_MS if self._utterance is not None else 0

    @property
    def active(self) -> bool:
        """True from the first voiced frame of an utterance until it ends (or is dropped)."""
        return self._utterance is not None
