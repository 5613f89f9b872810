"""One conversation with the agent: bootstrap, WebSocket, the send and receive threads.

Threads of a session (the audio engine's capture and player threads outlive it):

- ``edgevoice-send``: takes mic frames from the bounded :class:`MicQueue`, encodes them
  with the provider and sends them. Frames are only queued while the server is ready.
- ``edgevoice-recv``: reads WebSocket messages, decodes them with the provider, puts agent
  audio straight into the playback buffer (resampled to the speaker), handles interruptions
  and replies (pong) at once, and passes everything else to the session thread.
- ``edgevoice-session`` (the daemon's own thread, :meth:`edgevoice.daemon.Daemon.converse`):
  opens the session (:meth:`Session.open`), hands it each event from the inbox
  (:meth:`Session.handle`), asks it now and then whether the link is alive
  (:meth:`Session.check`: liveness, pings, listening/speaking) and closes it
  (:meth:`Session.close`). The session owns no loop of its own on that thread.

The session reaches the daemon only through :class:`~edgevoice.lifecycle.SessionHost`.
"""

from __future__ import annotations

import logging
import threading
import time

import websocket

from edgevoice import redact
from edgevoice.audio.bargein import BargeInDetector, Decision
from edgevoice.flow import (BargeInDone, Closed, LateAudioFilter, MicQueue, ToolReply,
                            close_details, stop_playback)
from edgevoice.lifecycle import DaemonState, SessionHost, SessionOptions
from edgevoice.logsetup import RateLimitedLog, set_context
from edgevoice.threads import join_threads, start_thread
from edgevoice.transport import (MessageTooBig, call_with_deadline, close_websocket, fetch,
                                 open_websocket, refuse_too_big, wake_websocket)
from edgevoice.providers.base import (AgentAudio, Ended, Interruption, Malformed,
                                      Notice, Outcome, OutputFormat, Provider, Ready, Reply,
                                      ResponseDone, SessionFailed, ToolCall, Transcript)

log = logging.getLogger(__name__)

SPEAKING_HOLD_S = 0.3  # the agent counts as speaking until this long after the buffer empties
SOCKET_TIMEOUT_S = 5.0  # a send stuck this long means the link is dead (half-open TCP)


class Session:
    """One session: :meth:`open`, then :meth:`handle` and :meth:`check` on the session
    thread until one returns an :class:`Outcome`, then :meth:`close`."""

    def __init__(self, provider: Provider, engine, settings, host: SessionHost,
                 options: SessionOptions = SessionOptions()) -> None:
        self.provider = provider
        self.engine = engine
        self.settings = settings
        self.host = host
        self.stats = host.stats
        self.tools = options.tools
        self.history = options.history
        self.session_id: str | None = None
        self.mic = MicQueue(max(5, options.mic_frames))
        self._ws: websocket.WebSocket | None = None
        self._streaming = threading.Event()
        self._closed = threading.Event()
        self._late = LateAudioFilter()
        self._detector = (BargeInDetector(options.barge_in, provider.mic_rate, engine.speaker,
                                          confirm_locally=not provider.interrupts)
                          if options.barge_in is not None else None)
        self._bad = RateLimitedLog(log, 10.0)
        self._last_rx = time.monotonic()
        self._threads: list[threading.Thread] = []
        self.streamed_since: float | None = None
        self._ping_due = False
        self._ping_at: float | None = None  # when the unanswered ping was asked for
        self._speaking = False
        self._last_audio = 0.0
        self.mic_open = True  # False (push-to-talk released): silence is sent instead
        self._silence = bytes(provider.mic_rate // 50 * 2)

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    # -- opening --------------------------------------------------------------------------
    def open(self) -> None:
        """Bootstrap, connect, send the first messages, start the send and receive
        threads. Raises :class:`SessionFailed`; :meth:`close` it either way."""
        self.stats.sessions_started += 1
        s = self.settings
        provider = self.provider
        request = provider.bootstrap_request()
        response = None
        if request is not None:
            self.host.state_changed(DaemonState.CONNECTING, f"requesting {request.what}")
            try:
                response = call_with_deadline(lambda deadline: fetch(request, deadline),
                                              self.host.halt, s.connect_timeout, request.what,
                                              beat=self.host.beat)
                plan = provider.connect_plan(response)
            except SessionFailed as exc:
                raise SessionFailed(exc.outcome.caused("bootstrap")) from None
        else:
            plan = provider.connect_plan(response)
        for secret in plan.secrets:
            redact.register(secret)
        self.session_id = plan.session_id
        set_context(provider=provider.name, session_id=plan.session_id)
        shown = redact.redact_url(plan.url)
        if plan.note:
            log.info("%s", plan.note, extra={"event": "session_opening"})
        self.host.state_changed(DaemonState.CONNECTING,
                                f"connecting to {provider.name} at {shown}")
        log.info("connecting to %s agent at %s", provider.name, shown)
        self._ws = call_with_deadline(lambda deadline: self._connect(plan, deadline),
                                      self.host.halt, s.connect_timeout, "connect",
                                      discard=close_websocket, beat=self.host.beat)
        self._last_rx = time.monotonic()
        try:
            for message in plan.first_messages:
                self._send(message)
        except (websocket.WebSocketException, OSError) as exc:
            raise SessionFailed(Outcome("could not send the first messages: "
                                        + redact.describe_error(exc), cause="connect")) from None
        self.stats.sessions_connected += 1
        self._threads += [start_thread("recv", self._receive_loop),
                          start_thread("send", self._send_loop)]
        if plan.stream_on_open:
            self._begin_streaming(Ready(None, "connected"))

    def _connect(self, plan, deadline: float) -> websocket.WebSocket:
        try:
            ws = open_websocket(plan.url, plan.headers, max(0.1, deadline - time.monotonic()),
                                self.settings.max_message_bytes)
        except websocket.WebSocketBadStatusException as exc:
            raise SessionFailed(self.provider.auth_outcome(exc.status_code).caused("connect")
                                ) from None
        except (websocket.WebSocketException, OSError) as exc:
            raise SessionFailed(Outcome("cannot connect: " + redact.describe_error(exc),
                                        cause="connect")) from None
        # Finite: a send into a half-open connection fails after this instead of holding the
        # socket's send lock for ever; a receive timeout just means "nothing yet".
        ws.settimeout(SOCKET_TIMEOUT_S)
        return ws

    # -- the session thread -----------------------------------------------------------------
    def check(self, now: float) -> Outcome | None:
        """Is the link alive (a quiet one gets a ping), and is the agent speaking? Call it
        at least every 100 ms from the session thread."""
        s = self.settings
        last_rx = self._last_rx
        if now - last_rx > s.idle_timeout:
            return Outcome(f"nothing received for {s.idle_timeout:g} s; connection presumed "
                           "dead", cause="dead_link")
        # A quiet link gets a ping; nothing at all back within pong_timeout: it is dead.
        ping_at = self._ping_at
        if ping_at is not None and last_rx >= ping_at:
            ping_at = self._ping_at = None  # answered (or something else arrived)
        if ping_at is not None and now - ping_at > s.pong_timeout:
            return Outcome(f"no answer to a ping within {s.pong_timeout:g} s; connection "
                           "presumed dead", cause="dead_link")
        if ping_at is None and s.ping_interval and now - last_rx >= s.ping_interval:
            self._ping_at = now
            self._ping_due = True  # sent by the send thread: this thread never blocks on I/O
        if self._streaming.is_set():
            buffer = self.engine.buffer
            if buffer.buffered_bytes and not buffer.paused:
                self._last_audio = now
            speaking = now - self._last_audio < SPEAKING_HOLD_S
            if speaking != self._speaking:
                self._speaking = speaking
                if speaking:
                    self.host.activity()
                self.host.state_changed(DaemonState.SPEAKING if speaking
                                        else DaemonState.LISTENING, "")
        return None

    def handle(self, event) -> Outcome | None:
        """One event from the session's threads, on the session thread."""
        if isinstance(event, Transcript):
            log.info("%s: %s", "user" if event.role == "user" else "agent", event.text,
                     extra={"event": f"transcript_{event.role}"})
            if self.history is not None:
                self.history.append(event.role, event.text, self.session_id)
            self.host.activity()
        elif isinstance(event, ToolCall):
            self._call_tool(event)
        elif isinstance(event, Ready):
            self._begin_streaming(event)
        elif isinstance(event, Interruption):
            log.info("agent interrupted by the server (response %s)", event.response_id,
                     extra={"event": "interruption"})
        elif isinstance(event, BargeInDone):
            if event.record(self.stats, getattr(self.engine, "echo", None)):
                self.host.state_changed(DaemonState.LISTENING, "")
        elif isinstance(event, Reply):  # what to tell the server after a barge-in (openai)
            self._tell_server((event.message,))
        elif isinstance(event, OutputFormat):
            log.info("agent audio arrives at %d Hz", event.rate)
        elif isinstance(event, Notice):
            log.log(event.level, "%s", event.text)
        elif isinstance(event, Malformed):
            self.stats.malformed += 1
            self._bad.warning(event.reason[:24], "skipped a bad message from the server: %s",
                              event.reason)
        elif isinstance(event, Ended):
            return event.outcome.caused("closed")
        elif isinstance(event, Closed):
            return self.provider.close_outcome(event.code, event.reason).caused("closed")
        return None

    def _call_tool(self, call: ToolCall) -> None:
        log.info("agent calls %s (call %s)", call.name, call.call_id,
                 extra={"event": "tool_call"})

        reply = ToolReply(call, self.provider, self._send, self._closed)
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
        self.host.state_changed(DaemonState.LISTENING, f"connected to {self.provider.name} agent")

    def offer_frame(self, frame: bytes, t: float) -> None:
        """The capture thread's sink: judge the frame for barge-in, and queue it if the
        server wants audio (it always does while streaming: its own VAD needs the user's
        voice during barge-in too)."""
        echo = getattr(self.engine, "echo", None)  # the canceller's output for detection
        heard = echo.linear if echo is not None and echo.linear else frame
        reduction = echo.reduction_db if echo is not None else None
        if not self.mic_open:
            frame = heard = self._silence  # push-to-talk released: the server hears nothing
        detector = self._detector
        if detector is not None:
            decision = detector.process(heard, t, reduction)
            if decision is not None:
                self._barge_in(decision, detector.resumed_on_echo)
                if decision is Decision.PAUSE:  # from the capture of the speech's first frame
                    self.stats.onset_to_pause.observe(
                        time.monotonic() - t + detector.onset_frames_ago * detector.FRAME_S)
        if self._streaming.is_set():
            self.mic.put(frame, t)

    @property
    def streaming(self) -> bool:
        """The server takes mic audio now (for health checks)."""
        return self._streaming.is_set() and not self._closed.is_set()

    def interrupt_now(self) -> None:
        """Stop the agent's voice at once (the button in push-to-talk): flush playback and
        drop the rest of the response."""
        self._barge_in(Decision.FLUSH)
        if self._detector is not None:
            self._detector.confirmed()

    def user_activity(self) -> None:
        """Tell the server the user is present, where the dialect can (session thread)."""
        message = self.provider.user_activity()
        if message is not None:
            self._tell_server((message,))

    def _barge_in(self, decision: Decision, echo: bool = False) -> None:
        """Carry out a barge-in decision at once (capture thread); log it later."""
        buffer = self.engine.buffer
        per_s = 2.0 * self.engine.playback.rate
        played = buffer.played_of(buffer.current_response) / per_s
        dropped = 0.0
        if decision is Decision.PAUSE:
            buffer.pause()
        elif decision is Decision.RESUME:
            buffer.resume()
        elif decision is Decision.FLUSH:
            played, dropped, _ = stop_playback(self.engine, buffer.current_response)
            self._late.interrupt(None)
            for message in self.provider.interrupt_messages(buffer.current_response,
                                                            played * 1000.0):
                self._put(Reply(message))  # sent by the session thread, not this one
        self._put(BargeInDone(decision, played, dropped,
                              echo and decision is Decision.RESUME))

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
        wire = stats.capture_to_wire
        send_times = stats.send_times
        send = self._send
        closed = self._closed
        while not closed.is_set():
            if self._ping_due:
                self._ping_due = False
                try:
                    self._ws.ping()
                except (websocket.WebSocketException, OSError) as exc:
                    if not closed.is_set():
                        self._put(Closed(None, "ping failed: " + redact.describe_error(exc)))
                    return
            item = get(0.2)  # frames are queued only while streaming
            if item is None:
                continue  # nothing yet, or woken to end
            frame, captured = item
            try:
                for message in encode(frame):
                    send(message)
            except (websocket.WebSocketException, OSError) as exc:
                if not self._closed.is_set():
                    self._put(Closed(None, "send failed: " + redact.describe_error(exc)))
                return
            stats.frames_sent += 1
            now = time.monotonic()
            latencies.append(now - captured)
            wire.observe(now - captured)
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
                self._put(Ended(refuse_too_big(self._ws, exc)))
                return
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                if not self._closed.is_set():
                    self._put(Closed(None, "connection lost: " + redact.describe_error(exc)))
                return
            self._last_rx = time.monotonic()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code, reason = close_details(frame.data)
                self._put(Closed(code, reason))
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
            played, dropped, audible = stop_playback(self.engine, response)
            self._late.interrupt(event.response_id)
            self._tell_server(self.provider.interrupt_messages(response, played * 1000.0))
            if self._detector is not None:
                self._detector.confirmed()
            if audible:  # not the user's turn starting while the agent was silent
                self.stats.interruptions += 1
                log.info("interrupted: %.2fs of %s heard, %.2fs dropped", played, response, dropped)
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

    def _tell_server(self, messages) -> None:
        """Send ``messages`` now; a broken connection is reported by the receive thread."""
        try:
            for message in messages:
                self._send(message)
        except (websocket.WebSocketException, OSError):
            pass

    def _put(self, event) -> None:
        if not self.host.deliver(self, event):
            self.stats.malformed += 1  # a flood of events; the session thread is behind

    # -- teardown ----------------------------------------------------------------------------
    def close(self, graceful: bool) -> None:
        """Close the connection and join the threads (one that does not end is named in the
        log). Only a deliberate end (a restart, the button) says goodbye with a close
        frame, and only briefly: a dead link must not make this wait."""
        self._closed.set()
        self._streaming.clear()
        self.mic.wake()  # the send thread returns at once
        ws = self._ws
        if ws is not None:
            if graceful and not self.host.halt.is_set() and ws.connected:
                try:
                    ws.sock.settimeout(0.5)
                    ws.send_close()
                except (websocket.WebSocketException, OSError, AttributeError):
                    pass
            wake_websocket(ws)  # the receive and send threads return at once
        join_threads(self._threads, 1.0)
        if ws is not None:
            close_websocket(ws)  # also after the server's close frame was answered
