"""The per-connection loop shared by every dialect.

A :class:`Session` runs entirely in the websockets server's per-connection thread. It
never blocks for long: it alternates between timed work (reply chunks that became due,
pings, scheduled closes) and ``recv`` with a short timeout, so user audio keeps being read
while a reply streams out. That is what lets barge-in be detected mid-reply.

Each dialect's session subclass (:mod:`.xuna`, :mod:`.voiceapi`, :mod:`.napster`,
:mod:`.navtalk`, :mod:`.elevenlabs`, :mod:`.openai`, :mod:`.gemini`) provides the wire
format through the ``on_*`` / ``send_*`` hooks. A session receives the agent's
:class:`~edgevoice.localagent.context.DialectContext`, the connection and what the
handshake said of it (``auth``), and nothing else. User audio arrives at
``input_rate`` (24 kHz for navtalk and openai) and is resampled to the VAD's 16 kHz here.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import Any

import numpy as np
import soxr
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.server import ServerConnection

from .context import DialectContext
from .listener import SAMPLE_RATE, SpeechEnded, SpeechStarted, UtteranceListener
from .options import AgentOptions
from .reply import ReplyStream

log = logging.getLogger(__name__)


def dumps(message: dict[str, Any]) -> str:
    """Compact JSON text for the wire."""
    return json.dumps(message, separators=(",", ":"))


def b64(pcm: bytes) -> str:
    """Base64 text of audio for a JSON message."""
    return base64.b64encode(pcm).decode("ascii")


# Malformed messages every dialect sends with ``options.send_garbage`` (see Session.garbage).
NOT_JSON = "this is not JSON {"
NOT_AN_OBJECT = "[1, 2, 3]"
BINARY_GARBAGE = b"\x00\x01\x02 binary garbage \xff"
BAD_BASE64 = "@@not*base64@@"
ODD_LENGTH_PCM = b"\x01\x02\x03"

#: Chunks of an interrupted reply sent after the interruption (``late_audio_after_interrupt``).
LATE_CHUNKS = 3

#: Longest the loop sleeps in ``recv``: bounds how fast run-time option changes take effect.
MAX_WAIT_S = 0.05


class EndSession(Exception):
    """Raised inside a session to leave its loop (the socket is already being closed)."""


class Session:
    """One conversation over one WebSocket connection."""

    output_rate = SAMPLE_RATE
    input_rate = SAMPLE_RATE  #: rate of the PCM16 a client sends; the VAD always gets 16 kHz
    conversation_prefix = "conv"  #: of the ids :meth:`new_conversation_id` hands out

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        self.context = context
        self.connection = connection
        self.auth = auth
        self.conversation_id = self.new_conversation_id()
        opts = self.options
        self.listener = UtteranceListener(
            opts.vad_mode, opts.end_silence_ms, opts.min_speech_ms, opts.max_utterance_s
        )
        self.opened_at = time.monotonic()
        self.reply: ReplyStream | None = None
        self.replies = 0
        self.audio_bytes = 0
        self.closed_by_server: tuple[int, str] | None = None
        self._resampler: soxr.ResampleStream | None = None

    @property
    def options(self) -> AgentOptions:
        return self.context.options

    # -- hooks for dialects -----------------------------------------------------------
    def new_conversation_id(self) -> str:
        """The id every event of this session carries (``conv_3``)."""
        return self.context.next_id(self.conversation_prefix)

    def authenticate(self) -> bool:
        """Run any in-band authentication; False ends the session (already closed)."""
        return True

    def on_open(self) -> None:
        """Send the opening messages."""

    def on_text(self, text: str) -> None:
        """A text message from the client."""
        raise NotImplementedError

    def on_binary(self, data: bytes) -> None:
        """A binary message from the client; most dialects have none."""
        self.record("client_unknown", binary_bytes=len(data))

    def on_tick(self, now: float) -> float | None:
        """Dialect timed work (pings). Returns the next time it wants to run."""
        return None

    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        """Messages sent before the first reply chunk (transcripts)."""

    def send_reply_chunk(self, reply: ReplyStream, chunk: bytes) -> None:
        """Send one chunk of reply audio."""
        raise NotImplementedError

    def send_reply_done(self, reply: ReplyStream) -> None:
        """Messages sent once the last chunk of a reply went out (not after an interruption)."""

    def on_user_speech_start(self) -> None:
        """The user started to speak (speech has lasted ``min_speech_ms``)."""

    def on_utterance(self, utterance: SpeechEnded) -> None:
        """A complete user utterance arrived; by default answer it at once."""
        self.start_reply(utterance)

    def send_interruption(self, reply: ReplyStream) -> None:
        """Tell the client the reply was cut off (if the dialect can)."""

    def send_late_audio(self, reply: ReplyStream) -> None:
        """With ``late_audio_after_interrupt``: :data:`LATE_CHUNKS` more chunks of an
        interrupted reply (what is left of it, then silence), as real servers still send."""
        if self.options.late_audio_after_interrupt:
            late = reply.remaining()[:LATE_CHUNKS]
            late += [bytes(self.chunk_bytes())] * (LATE_CHUNKS - len(late))
            for chunk in late:
                self.send_reply_chunk(reply, chunk)
            self.record("late_audio_sent", event_id=reply.event_id, chunks=len(late))

    def malformed_messages(self) -> list[str | bytes]:
        """The dialect's own malformed messages for :meth:`garbage`."""
        return []

    def close_normally(self, reason: str) -> None:
        """Server-initiated normal end of session (close_after_s / close_after_reply)."""
        self.close(1000, reason)

    # -- helpers for dialects ---------------------------------------------------------
    def send(self, message: str | bytes) -> None:
        self.connection.send(message)

    def send_json(self, message: dict[str, Any]) -> None:
        self.connection.send(dumps(message))

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` and leave the loop."""
        self.closed_by_server = (code, reason)
        self.connection.close(code, reason)
        raise EndSession

    def record(self, kind: str, **data: Any) -> None:
        """Record an event tagged with this session's ``conversation`` id."""
        self.context.record(kind, conversation=self.conversation_id, **data)

    def record_unknown(self, kind: Any) -> None:
        """Record a client message of a type this dialect does not know."""
        self.record("client_unknown", type=kind if isinstance(kind, str) else repr(kind))

    def parse_json(self, text: str) -> dict | None:
        """A client text message as a JSON object, or None (recorded as malformed)."""
        try:
            message = json.loads(text)
        except ValueError:
            self.record("client_malformed", reason="not JSON", size=len(text))
            return None
        if not isinstance(message, dict):
            self.record("client_malformed", reason="JSON is not an object")
            return None
        return message

    def decode_b64_audio(self, b64: Any, missing: str) -> bytes | None:
        """Client audio from a base64 payload, or None (recorded as malformed: ``missing``
        when there is no payload string, else invalid base64)."""
        if not isinstance(b64, str):
            self.record("client_malformed", reason=missing)
            return None
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            self.record("client_malformed", reason="invalid base64 audio")
            return None

    def garbage(self) -> list[str | bytes]:
        """Malformed messages sent when ``options.send_garbage`` is on: not JSON, not an
        object, the dialect's own, then a valid but huge one of ``garbage_big_bytes``."""
        prefix, suffix = '{"type":"garbage_padding","padding":"', '"}'
        fill = max(0, self.options.garbage_big_bytes - len(prefix) - len(suffix))
        return [NOT_JSON, NOT_AN_OBJECT, *self.malformed_messages(), prefix + "x" * fill + suffix]

    def take_user_audio(self, pcm: bytes) -> None:
        """Account for, endpoint and barge-in-check user audio (PCM16 at ``input_rate``)."""
        if len(pcm) % 2:
            self.record("client_malformed", reason="odd-length audio", bytes=len(pcm))
            pcm = pcm[:-1]
        if not pcm:
            return
        if self.audio_bytes == 0:
            self.record("audio_first", bytes=len(pcm))
        self.audio_bytes += len(pcm)
        self.context.add_audio_seconds(len(pcm) / 2 / self.input_rate)
        if self.input_rate != SAMPLE_RATE:
            pcm = self._to_vad_rate(pcm)
        for frame in self.listener.frames(pcm):
            result = self.listener.process(frame)
            now = time.monotonic()
            if isinstance(result, SpeechStarted):
                self.record("user_speech_start", at=result.at)
                self.on_user_speech_start()
            elif isinstance(result, SpeechEnded):
                self.record("user_speech_end", seconds=result.seconds, at=result.at)
                if self.reply is not None and self.reply.playing(now):
                    self.interrupt(now)
                self.on_utterance(result)
            if (
                self.reply is not None
                and self.reply.playing(now)
                and self.listener.voiced_ms >= self.options.barge_in_ms
            ):
                self.interrupt(now)

    def _to_vad_rate(self, pcm: bytes) -> bytes:
        """Stream-resample client audio to 16 kHz (webrtcvad takes 8/16/32/48 kHz only)."""
        if self._resampler is None:
            self._resampler = soxr.ResampleStream(self.input_rate, SAMPLE_RATE, 1, dtype="int16")
        samples = np.frombuffer(pcm, dtype="<i2")
        return self._resampler.resample_chunk(samples).astype("<i2").tobytes()

    @property
    def audio_seconds(self) -> float:
        """User audio received in this session."""
        return self.audio_bytes / 2 / self.input_rate

    # -- replies ---------------------------------------------------------------------
    def reply_audio(self, utterance_pcm: bytes) -> bytes:
        """The utterance resampled to the output rate."""
        if self.output_rate == SAMPLE_RATE:
            return utterance_pcm
        samples = np.frombuffer(utterance_pcm, dtype="<i2")
        return soxr.resample(samples, SAMPLE_RATE, self.output_rate).astype("<i2").tobytes()

    def chunk_bytes(self) -> int:
        """Bytes of reply audio per chunk (``chunk_ms`` at the output rate)."""
        samples = max(1, self.output_rate * self.options.chunk_ms // 1000)
        return samples * 2

    def start_reply(self, utterance: SpeechEnded) -> None:
        """Answer ``utterance`` with its own audio, paced in real time."""
        self.replies += 1
        pcm = self.reply_audio(utterance.pcm)
        reply = ReplyStream(self.replies, pcm, self.output_rate, self.chunk_bytes(),
                            self.options.reply_lead_s)
        self.reply = reply
        self.send_reply_intro(reply, utterance.seconds)
        self.record("reply_start", event_id=reply.event_id, seconds=reply.seconds)
        self.pump_reply(time.monotonic())

    def pump_reply(self, now: float) -> None:
        """Send the reply chunks that are due by ``now``."""
        reply = self.reply
        if reply is None or reply.cancelled:
            return
        for chunk in reply.due(now):
            self.send_reply_chunk(reply, chunk)
        if reply.fully_sent and not reply.end_recorded:
            self.send_reply_done(reply)
            self._record_reply_end(reply, interrupted=False)

    def _record_reply_end(self, reply: ReplyStream, interrupted: bool) -> None:
        """Every reply ends with exactly one ``reply_end``: fully sent, or cut short."""
        if not reply.end_recorded:
            reply.end_recorded = True
            self.record("reply_end", event_id=reply.event_id, seconds=reply.sent_seconds,
                        interrupted=interrupted)

    def interrupt(self, now: float) -> None:
        """The user talked over the reply: stop it and tell the client."""
        reply = self.reply
        if reply is None or reply.cancelled:
            return
        reply.cancel()
        played = now - reply.start if reply.start is not None else 0.0
        self.send_interruption(reply)
        self.record(
            "interrupted",
            event_id=reply.event_id,
            t=now,
            played_s=round(played, 3),
            sent_s=reply.sent_seconds,
        )
        self._record_reply_end(reply, interrupted=True)

    # -- the loop --------------------------------------------------------------------
    def run(self) -> None:
        """Serve the connection until either side closes it or the agent stops."""
        try:
            if not self.authenticate():
                return
            self.on_open()
            if self.options.send_garbage:
                messages = self.garbage()
                for message in messages:
                    self.send(message)
                self.record("garbage_sent", count=len(messages))
            while True:
                self._step()
        except EndSession:
            pass
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("%s %s failed", type(self).__name__, self.conversation_id)
        finally:
            by = "server" if self.closed_by_server else "client"
            code, reason = self.closed_by_server or (self.connection.close_code,
                                                     self.connection.close_reason)
            self.record("ws_closed", by=by, code=code, reason=reason,
                        audio_s=round(self.audio_seconds, 3))

    def _step(self) -> None:
        if self.context.stopping.is_set():
            self.close(1001, "local agent stopping")
        if self.options.stall:
            self._stall()
        now = time.monotonic()
        wake = self._timed_work(now)
        wait = MAX_WAIT_S if wake is None else min(MAX_WAIT_S, max(0.0, wake - time.monotonic()))
        try:
            message = self.connection.recv(timeout=wait)
        except TimeoutError:
            return
        if isinstance(message, bytes):
            self.on_binary(message)
        else:
            self.on_text(message)

    def _stall(self) -> None:
        """Go silent for good: a stalled session never recovers, like a dead link.

        Turning ``options.stall`` off afterwards only spares sessions that have not
        stalled yet (a client's replacement session). The websockets library keeps
        reading into its small receive queue until that fills, then stops reading.
        """
        self.record("stalled")
        while not self.context.stopping.is_set():
            if self.connection.state is State.CLOSED:
                raise EndSession
            self.context.stopping.wait(MAX_WAIT_S)
        self.close(1001, "local agent stopping")

    def _timed_work(self, now: float) -> float | None:
        """Do what is due; return the earliest time something else becomes due."""
        wakes: list[float] = []
        close_after = self.options.close_after_s
        if close_after is not None:
            if now >= self.opened_at + close_after:
                self.close_normally("close_after_s")
            wakes.append(self.opened_at + close_after)
        self.pump_reply(now)
        reply = self.reply
        if reply is not None:
            due = reply.next_due_at()
            if due is not None:
                wakes.append(due)
            if self.options.close_after_reply and reply.fully_sent and not reply.cancelled:
                ends = reply.ends_at
                if ends is not None and now >= ends:
                    self.close_normally("close_after_reply")
                elif ends is not None:
                    wakes.append(ends)
        dialect_wake = self.on_tick(now)
        if dialect_wake is not None:
            wakes.append(dialect_wake)
        return min(wakes) if wakes else None
