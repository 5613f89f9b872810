"""One conversation with the agent: bootstrap, WebSocket, the send and receive threads.

Threads of a session (the audio engine's capture and player threads outlive it):

- ``edgevoice-send``: takes mic frames from the bounded :class:`MicQueue`, encodes them
  with the provider and sends them. Frames are only queued while the server is ready.
- ``edgevoice-recv``: reads WebSocket messages, decodes them with the provider, puts agent
  audio straight into the playback buffer (resampled to the speaker), handles interruptions
  and replies (pong) at once, and passes everything else to the session thread.
- the caller's thread (:meth:`Session.run`): the state machine; logs transcripts, watches
  liveness, sends WebSocket pings, decides when the session is over.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import websocket

from edgevoice import redact
from edgevoice.audio.bargein import BargeInDetector, BargeInSettings
from edgevoice.history import History
from edgevoice.logsetup import RateLimitedLog, set_context
from edgevoice.threads import start_thread
from edgevoice.tools import ToolRunner
from edgevoice.transport import (STATUS_MESSAGE_TOO_BIG, MessageTooBig, call_with_deadline,
                                 close_websocket, fetch, open_websocket, wake_websocket)
from edgevoice.providers.base import (AgentAudio, Ended, Interruption, Malformed,
                                      Notice, Outcome, OutputFormat, Provider, Ready, Reply,
                                      ResponseDone, SessionFailed, ToolCall, Transcript)

log = logging.getLogger(__name__)

SPEAKING_HOLD_S = 0.3  # the agent counts as speaking until this long after the buffer empties
SOCKET_TIMEOUT_S = 5.0  # a send stuck this long means the link is dead (half-open TCP)


@dataclass
class Stats:
    """Counters kept across sessions (the demo and the bench print them)."""

    sessions_started: int = 0
    sessions_streaming: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0          # oldest mic frames dropped because the network stalled
    agent_audio_bytes: int = 0       # at the agent's own rate
    agent_audio_seconds: float = 0.0
    late_chunks_dropped: int = 0     # agent audio of an interrupted response
    interruptions: int = 0           # by the server
    local_pauses: int = 0            # the device heard the user over the agent
    local_flushes: int = 0           # … and stopped the response itself (voiceapi)
    false_barge_ins: int = 0         # paused, nothing confirmed, resumed
    pongs_sent: int = 0
    malformed: int = 0
    # the last 2 minutes of frames: capture-to-wire latency and send instants
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6000))
    send_times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6000))

    def latency_percentiles(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {"p50_ms": float("nan"), "p99_ms": float("nan")}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000.0
        return {"p50_ms": round(pick(0.50), 3), "p99_ms": round(pick(0.99), 3)}


class MicQueue:
    """Bounded queue of (frame, t_captured). ``put`` never blocks: when full the oldest
    frame is dropped and counted. Built on the C-implemented ``queue.SimpleQueue`` so the
    20 ms path takes no Python-level locks."""

    def __init__(self, max_frames: int) -> None:
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._max = max_frames
        self.dropped = 0

    def put(self, frame: bytes, t: float) -> None:
        q = self._q
        q.put((frame, t))
        if q.qsize() > self._max:
            try:
                q.get_nowait()
                self.dropped += 1
            except queue.Empty:  # the send thread took it meanwhile
                pass

    def get(self, timeout: float) -> tuple[bytes, float] | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def clear(self) -> None:
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass


class LateAudioFilter:
    """Drops agent audio that belongs to an interrupted response.

    xuna tags audio with an increasing ``event_id``; after an interruption every chunk whose
    id is at or below the interrupted one is late (ids compare as numbers, other ids by
    equality). Dialects without ids: after an interruption, audio is dropped until the
    provider says the response is done, or until the audio pauses for ``gap_s`` (the
    cancelled stream has ended and the next response starts).
    """

    def __init__(self, gap_s: float = 0.5) -> None:
        self.cutoff: Any = None
        self.last_id: Any = None
        self.gap_s = gap_s
        self.dropping = False
        self._last_arrival = 0.0

    def interrupt(self, response_id: Any) -> None:
        self.cutoff = response_id if response_id is not None else self.last_id
        if self.last_id is None:  # this dialect's audio carries no ids (napster, navtalk, …)
            self.dropping = True

    def response_done(self) -> None:
        self.dropping = False

    def admit(self, response_id: Any, now: float = 0.0) -> bool:
        if response_id is None:
            if self.dropping:
                if now - self._last_arrival < self.gap_s:
                    self._last_arrival = now
                    return False
                self.dropping = False
            self._last_arrival = now
            return True
        cutoff = self.cutoff
        if cutoff is not None:
            if isinstance(response_id, int) and isinstance(cutoff, int):
                if response_id <= cutoff:
                    return False
            elif response_id == cutoff:
                return False
        self.last_id = response_id
        return True


@dataclass(frozen=True, slots=True)
class _UserActivity:
    pass


@dataclass(frozen=True, slots=True)
class _BargeIn:
    decision: str   # pause | resume | flush
    played_s: float
    dropped_s: float


@dataclass(frozen=True, slots=True)
class _Closed:
    code: int | None
    reason: str


StateCallback = Callable[[str, str], None]


class Session:
    """Runs one session to its end; :meth:`run` returns the :class:`Outcome`."""

    def __init__(self, provider: Provider, engine, settings, stats: Stats,
                 stop: threading.Event, on_state: StateCallback,
                 mic_frames: int = 50,
                 tools: ToolRunner | None = None, history: History | None = None,
                 barge_in: BargeInSettings | None = None,
                 tick: Callable[[], Outcome | None] | None = None,
                 on_activity: Callable[[], None] | None = None,
                 beat: Callable[[], None] | None = None) -> None:
        self.provider = provider
        self.engine = engine
        self.settings = settings
        self.stats = stats
        self.stop = stop
        self.on_state = on_state
        self.tools = tools
        self.history = history
        self.session_id: str | None = None
        self.mic = MicQueue(max(5, mic_frames))
        self._ws: websocket.WebSocket | None = None
        self._events: queue.Queue = queue.Queue(maxsize=2000)
        self._streaming = threading.Event()
        self._closed = threading.Event()
        self._late = LateAudioFilter()
        self._detector = (BargeInDetector(barge_in, provider.mic_rate, engine.speaker,
                                          confirm_locally=not provider.interrupts)
                          if barge_in is not None else None)
        self._bad = RateLimitedLog(log, 10.0)
        self._last_rx = time.monotonic()
        self._threads: list[threading.Thread] = []
        self.streamed_since: float | None = None
        self._tick = tick or (lambda: None)
        self._beat = beat or (lambda: None)  # "still alive" while blocked in a connect
        self._ping_due = False
        self._on_activity = on_activity or (lambda: None)
        self.mic_open = True  # False (muted, push-to-talk released): silence is sent instead
        self._silence = bytes(provider.mic_rate // 50 * 2)

    # -- public ---------------------------------------------------------------------------
    def run(self) -> Outcome:
        self.stats.sessions_started += 1
        try:
            self._open()
        except SessionFailed as exc:
            self._teardown(graceful=False)
            return exc.outcome
        outcome = Outcome("stopped", "stopped")
        try:
            outcome = self._loop()
            return outcome
        finally:
            self._teardown(graceful=outcome.retry in ("now", "idle"))

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    # -- opening --------------------------------------------------------------------------
    def _open(self) -> None:
        s = self.settings
        provider = self.provider
        request = provider.bootstrap_request()
        response = None
        if request is not None:
            self.on_state("connecting", f"requesting {request.what}")
            response = call_with_deadline(lambda deadline: fetch(request, deadline), self.stop,
                                          s.connect_timeout, request.what, beat=self._beat)
        plan = provider.connect_plan(response)
        for secret in plan.secrets:
            redact.register(secret)
        self.session_id = plan.session_id
        set_context(provider=provider.name, session_id=plan.session_id)
        shown = redact.redact_url(plan.url)
        if plan.note:
            log.info("%s", plan.note, extra={"event": "session_opening"})
        self.on_state("connecting", f"connecting to {provider.name} at {shown}")
        log.info("connecting to %s agent at %s", provider.name, shown)
        self._ws = call_with_deadline(lambda deadline: self._connect(plan, deadline), self.stop,
                                      s.connect_timeout, "connect", discard=close_websocket,
                                      beat=self._beat)
        self._last_rx = time.monotonic()
        try:
            for message in plan.first_messages:
                self._send(message)
        except (websocket.WebSocketException, OSError) as exc:
            raise SessionFailed(Outcome("could not send the first messages: "
                                        + redact.describe_error(exc))) from None
        self._start_thread("recv", self._receive_loop)
        self._start_thread("send", self._send_loop)
        if plan.stream_on_open:
            self._begin_streaming(Ready(None, "connected"))

    def _connect(self, plan, deadline: float) -> websocket.WebSocket:
        try:
            ws = open_websocket(plan.url, plan.headers, max(0.1, deadline - time.monotonic()),
                                self.settings.max_message_bytes)
        except websocket.WebSocketBadStatusException as exc:
            raise SessionFailed(self.provider.auth_outcome(exc.status_code)) from None
        except (websocket.WebSocketException, OSError) as exc:
            raise SessionFailed(Outcome("cannot connect: " + redact.describe_error(exc))) from None
        # Finite: a send into a half-open connection fails after this instead of holding the
        # socket's send lock for ever; a receive timeout just means "nothing yet".
        ws.settimeout(SOCKET_TIMEOUT_S)
        return ws

    def _start_thread(self, name: str, target) -> None:
        self._threads.append(start_thread(name, target))

    # -- the session thread -----------------------------------------------------------------
    def _loop(self) -> Outcome:
        s = self.settings
        ping_at: float | None = None  # when the unanswered ping was asked for
        speaking = False
        buffer = self.engine.buffer
        last_audio = 0.0
        while True:
            if self.stop.is_set():
                return Outcome("stopped", "stopped")
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                event = None
            if event is not None:
                outcome = self._handle(event)
                if outcome is not None:
                    return outcome
            outcome = self._tick()
            if outcome is not None:
                return outcome
            now = time.monotonic()
            last_rx = self._last_rx
            if now - last_rx > s.idle_timeout:
                return Outcome(f"nothing received for {s.idle_timeout:g} s; connection presumed "
                               "dead")
            # A quiet link gets a ping; nothing at all back within pong_timeout: it is dead.
            if ping_at is not None and last_rx >= ping_at:
                ping_at = None  # answered (or something else arrived)
            if ping_at is not None and now - ping_at > s.pong_timeout:
                return Outcome(f"no answer to a ping within {s.pong_timeout:g} s; connection "
                               "presumed dead")
            if ping_at is None and s.ping_interval and now - last_rx >= s.ping_interval:
                ping_at = now
                self._ping_due = True  # sent by the send thread: this thread never blocks on I/O
            if self._streaming.is_set():
                if buffer.buffered_bytes and not buffer.paused:
                    last_audio = now
                now_speaking = now - last_audio < SPEAKING_HOLD_S
                if now_speaking != speaking:
                    speaking = now_speaking
                    if speaking:
                        self._on_activity()
                    self.on_state("speaking" if speaking else "listening", "")

    def _handle(self, event) -> Outcome | None:
        if isinstance(event, Transcript):
            log.info("%s: %s", "user" if event.role == "user" else "agent", event.text,
                     extra={"event": f"transcript_{event.role}"})
            if self.history is not None:
                self.history.append(event.role, event.text, self.session_id)
            self._on_activity()
        elif isinstance(event, ToolCall):
            self._call_tool(event)
        elif isinstance(event, Ready):
            self._begin_streaming(event)
        elif isinstance(event, Interruption):
            log.info("agent interrupted by the server (response %s)", event.response_id,
                     extra={"event": "interruption"})
        elif isinstance(event, _BargeIn):
            self._log_barge_in(event)
        elif isinstance(event, _UserActivity):
            message = self.provider.user_activity()
            if message is not None:
                try:
                    self._send(message)
                except (websocket.WebSocketException, OSError):
                    pass  # the receive thread reports a broken connection
        elif isinstance(event, OutputFormat):
            log.info("agent audio arrives at %d Hz", event.rate)
        elif isinstance(event, Notice):
            log.log(event.level, "%s", event.text)
        elif isinstance(event, Malformed):
            self.stats.malformed += 1
            self._bad.warning(event.reason[:24], "skipped a bad message from the server: %s",
                              event.reason)
        elif isinstance(event, Ended):
            return event.outcome
        elif isinstance(event, _Closed):
            return self.provider.close_outcome(event.code, event.reason)
        return None

    def _log_barge_in(self, event: _BargeIn) -> None:
        stats = self.stats
        if event.decision == "pause":
            stats.local_pauses += 1
            log.info("user talks over the agent: paused after %.2f s of its answer",
                     event.played_s, extra={"event": "barge_in"})
            self.on_state("listening", "")
        elif event.decision == "resume":
            stats.false_barge_ins += 1
            log.info("no interruption followed: the agent resumes (%d false barge-in(s) so "
                     "far)", stats.false_barge_ins, extra={"event": "barge_in_resumed"})
        else:
            stats.local_flushes += 1
            log.info("barge-in confirmed on the device: %.2f s of the answer reached the "
                     "speaker, %.2f s dropped", event.played_s, event.dropped_s,
                     extra={"event": "barge_in_confirmed"})

    def _call_tool(self, call: ToolCall) -> None:
        log.info("agent calls %s (call %s)", call.name, call.call_id,
                 extra={"event": "tool_call"})

        def reply(output: str, is_error: bool) -> None:
            if self._closed.is_set():
                log.info("session ended before %s answered; result dropped", call.name)
                return
            try:
                for message in self.provider.tool_result(call, output, is_error):
                    self._send(message)
            except (websocket.WebSocketException, OSError) as exc:
                log.warning("could not send the result of %s: %s", call.name,
                            redact.describe_error(exc))

        if self.tools is None:
            reply(f"this device has no tool named {call.name}", True)
        else:
            self.tools.submit(call.name, call.arguments, reply)

    def _begin_streaming(self, event: Ready) -> None:
        if event.session_id:
            self.session_id = event.session_id
            set_context(session_id=event.session_id)
            log.info("conversation %s started", event.session_id,
                     extra={"event": "session_started"})
        if self._streaming.is_set():
            return
        self.mic.clear()
        self._streaming.set()
        self.streamed_since = time.monotonic()
        self.stats.sessions_streaming += 1
        self.on_state("listening", f"connected to {self.provider.name} agent")

    def offer_frame(self, frame: bytes, t: float) -> None:
        """The capture thread's sink: judge the frame for barge-in, and queue it if the
        server wants audio (it always does while streaming: its own VAD needs the user's
        voice during barge-in too)."""
        if not self.mic_open:
            frame = self._silence  # muted: the session stays alive, the server hears nothing
        detector = self._detector
        if detector is not None:
            decision = detector.process(frame, t)
            if decision is not None:
                self._barge_in(decision)
        if self._streaming.is_set():
            self.mic.put(frame, t)

    @property
    def streaming(self) -> bool:
        """The server takes mic audio now (for health checks)."""
        return self._streaming.is_set() and not self._closed.is_set()

    def interrupt_now(self) -> None:
        """Stop the agent's voice at once (the button in push-to-talk): flush playback and
        drop the rest of the response; callable from any thread."""
        self._barge_in("flush")
        if self._detector is not None:
            self._detector.confirmed()

    def send_user_activity(self) -> None:
        """Tell the server the user is present, where the dialect can (any thread)."""
        self._put(_UserActivity())

    def _barge_in(self, decision: str) -> None:
        """Carry out a barge-in decision at once (capture thread); log it later."""
        buffer = self.engine.buffer
        per_s = 2.0 * self.engine.playback.rate
        played = buffer.played_of(buffer.current_response) / per_s
        dropped = 0.0
        if decision == "pause":
            buffer.pause()
        elif decision == "resume":
            buffer.resume()
        elif decision == "flush":
            dropped = self.engine.flush_playback() / per_s
            self._late.interrupt(None)
        self._put(_BargeIn(decision, played, dropped))

    # -- send thread --------------------------------------------------------------------------
    def _send(self, message) -> None:
        ws = self._ws
        if isinstance(message, (bytes, bytearray)):
            ws.send_binary(message)
        else:
            ws.send(message)

    def _send_loop(self) -> None:
        encode = self.provider.encode_audio
        get = self.mic.get
        stats = self.stats
        latencies = stats.latencies
        send_times = stats.send_times
        send = self._send
        streaming = self._streaming
        closed = self._closed
        while not closed.is_set():
            if self._ping_due:
                self._ping_due = False
                try:
                    self._ws.ping()
                except (websocket.WebSocketException, OSError) as exc:
                    if not closed.is_set():
                        self._put(_Closed(None, "ping failed: " + redact.describe_error(exc)))
                    return
            if not streaming.is_set():
                streaming.wait(0.2)
                continue
            item = get(0.2)
            if item is None:
                continue
            frame, captured = item
            try:
                for message in encode(frame):
                    send(message)
            except (websocket.WebSocketException, OSError) as exc:
                if not self._closed.is_set():
                    self._put(_Closed(None, "send failed: " + redact.describe_error(exc)))
                return
            stats.frames_sent += 1
            now = time.monotonic()
            latencies.append(now - captured)
            send_times.append(now)

    # -- receive thread -------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        ws = self._ws
        while not self._closed.is_set():
            try:
                opcode, frame = ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                continue  # nothing arrived for a while: the session thread judges liveness
            except MessageTooBig as exc:
                self._refuse(exc)
                return
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                if not self._closed.is_set():
                    self._put(_Closed(None, "connection lost: " + redact.describe_error(exc)))
                return
            self._last_rx = time.monotonic()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code, reason = _close_details(frame.data)
                self._put(_Closed(code, reason))
                return
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                continue
            data = frame.data
            frame = None  # the raw payload is freed as soon as it is decoded
            if opcode == websocket.ABNF.OPCODE_TEXT:
                try:
                    data = data.decode("utf-8")
                except UnicodeDecodeError:
                    self._put(Malformed("text message that is not UTF-8"))
                    continue
            handed = [data]  # handed over, not kept here: see Provider.decode
            data = None
            try:
                events = self.provider.decode(handed.pop())
            except Exception as exc:  # a decoder bug must not end the session
                log.debug("decoder failed", exc_info=True)
                events = [Malformed(f"could not decode message ({type(exc).__name__})")]
            for event in events:
                try:
                    self._dispatch(event)
                except Exception as exc:  # nothing a server sends may kill this thread
                    log.debug("handling %s failed", type(event).__name__, exc_info=True)
                    self._put(Malformed(f"could not handle {type(event).__name__} "
                                        f"({type(exc).__name__})"))

    def _refuse(self, exc: MessageTooBig) -> None:
        """The server started a message over the limit: its payload is never read; the
        connection is closed with 1009 (message too big) and the session ends."""
        try:
            self._ws.send_close(STATUS_MESSAGE_TOO_BIG, "message too big")
        except (websocket.WebSocketException, OSError):
            pass
        self._put(Ended(Outcome(f"the server sent a message of {exc.size} bytes or more, over "
                                f"[session] max_message_bytes = {exc.limit}; closed with "
                                f"{STATUS_MESSAGE_TOO_BIG}")))

    def _dispatch(self, event) -> None:
        """Handle an event on the receive thread: audio and interruptions must not wait."""
        if isinstance(event, AgentAudio):
            if not self._late.admit(event.response_id, time.monotonic()):
                self.stats.late_chunks_dropped += 1
                return
            rate = self.provider.output_rate
            self.stats.agent_audio_bytes += len(event.pcm)
            self.stats.agent_audio_seconds += len(event.pcm) / 2 / rate
            self.engine.play(event.pcm, rate, event.response_id)
        elif isinstance(event, Interruption):
            response = self._late.last_id if event.response_id is None else event.response_id
            played = self.engine.buffer.played_of(response) / 2 / self.engine.playback.rate
            dropped = self.engine.flush_playback() / 2 / self.engine.playback.rate
            self._late.interrupt(event.response_id)
            if self._detector is not None:
                self._detector.confirmed()
            self.stats.interruptions += 1
            log.info("interruption: %.2f s of response %s reached the speaker, %.2f s dropped",
                     played, response, dropped)
            self._put(event)
        elif isinstance(event, ResponseDone):
            self._late.response_done()
        elif isinstance(event, Reply):
            try:
                self._send(event.message)
                self.stats.pongs_sent += 1
            except (websocket.WebSocketException, OSError):
                pass  # the broken connection is reported by recv
        else:
            self._put(event)

    def _put(self, event) -> None:
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.stats.malformed += 1  # a flood of events; the session thread is behind

    # -- teardown ----------------------------------------------------------------------------
    def _teardown(self, graceful: bool) -> None:
        """Close the connection and join the threads. Only a deliberate end (a restart, the
        button) says goodbye with a close frame, and only briefly: a dead link must not make
        this wait."""
        self._closed.set()
        self._streaming.clear()
        ws = self._ws
        if ws is not None:
            if graceful and not self.stop.is_set() and ws.connected:
                try:
                    ws.sock.settimeout(0.5)
                    ws.send_close()
                except (websocket.WebSocketException, OSError, AttributeError):
                    pass
            wake_websocket(ws)  # the receive and send threads return at once
        for thread in self._threads:
            thread.join(1.0)
        if ws is not None:
            close_websocket(ws)  # also after the server's close frame was answered


def _close_details(data: bytes) -> tuple[int | None, str]:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        return code, data[2:].decode("utf-8", "replace")[:120]
    return None, ""

