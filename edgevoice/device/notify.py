"""Telling systemd how the daemon is doing: sd_notify, the watchdog, thread health.

The unit is ``Type=notify`` with ``WatchdogSec=``. Usage, in the order the daemon needs it::

    notifier = SystemdNotifier()             # no-op when $NOTIFY_SOCKET is unset
    ...open the audio devices, check the config...
    notifier.ready("audio open, connecting")  # READY=1: devices open, config valid
    notifier.status("connected to xuna agent, listening")

    health = ThreadHealth(streaming=lambda: session_is_streaming())
    health.watch("capture", lambda: engine.frames_captured, threads=engine_threads)
    health.watch("send", lambda: stats.frames_sent, threads=session_threads,
                 only_while_streaming=True)
    interval = notifier.watchdog_interval()   # from $WATCHDOG_USEC, None when off
    if interval:
        pinger = WatchdogPinger(notifier, health.healthy, interval)
        pinger.start()
    ...
    notifier.reloading(); ...reload...; notifier.ready("reloaded")
    notifier.stopping(); pinger.stop()

Nothing here raises: a notify socket that is gone (systemd restarted, a test that closed its
socket) is logged at debug level and the daemon goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

log = logging.getLogger(__name__)

ThreadsSource = Callable[[], Iterable[threading.Thread]]


class SystemdNotifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
    namespace). Every method is a no-op without the variable, and none ever raises.

    >>> n = SystemdNotifier(environ={})
    >>> n.enabled, n.ready("up")
    (False, False)
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._env = dict(env)
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]   # abstract socket
        self._address = address or None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        """True when there is a socket to send to (running under systemd)."""
        return self._address is not None

    # -- messages -------------------------------------------------------------------------
    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up (or a reload) is complete; with an optional ``STATUS=``."""
        fields = ["READY=1"]
        if status is not None:
            fields.append(self._status_field(status))
        return self.send(*fields)

    def status(self, text: str) -> bool:
        """``STATUS=text``, a line a human reads in ``systemctl status``. Sending the same
        text twice in a row sends it once. Returns whether a message went out."""
        text = _one_line(text)
        with self._lock:
            if text == self._last_status:
                return False
        return self.send(self._status_field(text))

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC=`` (systemd >= 253 wants the timestamp to
        tell this reload from an earlier one); follow with :meth:`ready` when done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = ["RELOADING=1", f"MONOTONIC_USEC={usec}"]
        if status is not None:
            fields.append(self._status_field(status))
        return self.send(*fields)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        fields = ["STOPPING=1"]
        if status is not None:
            fields.append(self._status_field(status))
        return self.send(*fields)

    def extend_timeout(self, seconds: float, status: str | None = None) -> bool:
        """``EXTEND_TIMEOUT_USEC=``: still starting (e.g. waiting for a sound device that is
        not plugged in yet); systemd allows ``seconds`` more before ``TimeoutStartSec=``
        gives up. Send it again before that runs out to keep waiting."""
        fields = [f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}"]
        if status is not None:
            fields.append(self._status_field(status))
        return self.send(*fields)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the daemon is alive (send only when it really is)."""
        return self.send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """``WatchdogSec=`` in seconds, from ``$WATCHDOG_USEC``; None when the watchdog is off
        or meant for another process (``$WATCHDOG_PID``)."""
        raw = self._env.get("WATCHDOG_USEC", "")
        pid = self._env.get("WATCHDOG_PID", "")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(raw)
        except ValueError:
            return None
        return usec / 1e6 if usec > 0 else None

    # -- transport ------------------------------------------------------------------------
    def send(self, *fields: str) -> bool:
        """Send one datagram of ``KEY=value`` lines. Returns True when it was sent."""
        if self._address is None:
            return False
        data = "\n".join(fields).encode("utf-8", "replace")
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX,
                                               socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # MSG_DONTWAIT: a stuck systemd must not stall the thread that reports
                self._sock.sendto(data, socket.MSG_DONTWAIT, self._address)
                for f in fields:
                    if f.startswith("STATUS="):
                        self._last_status = f[len("STATUS="):]
        except OSError as exc:
            # Not worth more than debug: systemd being away is not the daemon's problem.
            log.debug("sd_notify %r to %r failed: %s", fields[0], self._address, exc)
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    @staticmethod
    def _status_field(text: str) -> str:
        return "STATUS=" + _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]


class StatusReporter:
    """A daemon state listener (``listener(state, detail)``) that turns state changes into
    ``STATUS=`` lines for ``systemctl status``::

        daemon.add_listener(StatusReporter(notifier))

    ``connecting`` and ``offline`` show their detail ("connecting to xuna at wss://…",
    "offline, retry in 8 s"); ``listening`` / ``speaking`` / ``follow-up`` show the
    connection's detail with what is happening now ("connected to xuna agent, listening").
    ``annotate`` adds a suffix the daemon chooses (e.g. "muted").
    """

    WORDS = {"listening": "listening", "speaking": "agent speaking", "idle": "idle",
             "follow-up": "follow-up (no wake word needed)",
             "starting": "starting", "stopping": "stopping", "stopped": "stopped"}
    CONNECTED = ("listening", "speaking", "follow-up")  #: states of an open session

    def __init__(self, notifier: SystemdNotifier) -> None:
        self._notifier = notifier
        self._connected = ""
        self._state = "starting"
        self._detail = ""
        self._note = ""
        self._config_note = ""
        self._lock = threading.Lock()

    def __call__(self, state: str, detail: str = "") -> None:
        with self._lock:
            if state in self.CONNECTED:
                if detail:
                    self._connected = detail
            else:
                self._connected = ""
            self._state, self._detail = state, detail
            text = self._text()
        self._notifier.status(text)

    def annotate(self, note: str) -> None:
        """Add ``, note`` to the status line (empty string removes it)."""
        with self._lock:
            self._note = note
            text = self._text()
        self._notifier.status(text)

    def config_note(self, note: str) -> None:
        """A second suffix about the configuration (e.g. a rejected reload), kept until
        replaced; empty string removes it."""
        with self._lock:
            self._config_note = note
            text = self._text()
        self._notifier.status(text)

    def text(self) -> str:
        """The current status line."""
        with self._lock:
            return self._text()

    def _text(self) -> str:
        state = self._state
        if state in self.CONNECTED:
            words = self.WORDS[state]
            text = f"{self._connected}, {words}" if self._connected else words
        else:
            text = self._detail or self.WORDS.get(state, state)
        notes = [n for n in (self._note, self._config_note) if n]
        return ", ".join([text, *notes])


@dataclass
class _Watched:
    name: str
    progress: Callable[[], int] | None
    threads: ThreadsSource | None
    only_while_streaming: bool
    last_value: int | None = None
    checked_last_time: bool = False


class ThreadHealth:
    """Is the daemon really working? Alive threads *and* moving counters.

    Register what to watch with :meth:`watch`; :meth:`healthy` is True only when every
    watched thread is alive and every counter moved since the previous call. Entries marked
    ``only_while_streaming`` are skipped while ``streaming()`` is False (an offline daemon
    has no send/receive threads); the first check after streaming resumes only takes a
    baseline. :attr:`problem` says what was wrong at the last unhealthy check.

    >>> h = ThreadHealth()
    >>> frames = iter(range(100))
    >>> h.watch("capture", lambda: next(frames))
    >>> h.healthy(), h.healthy()
    (True, True)
    """

    def __init__(self, streaming: Callable[[], bool] | None = None) -> None:
        self.streaming = streaming or (lambda: True)
        self.problem = ""
        self._entries: list[_Watched] = []
        self._lock = threading.Lock()

    def watch(self, name: str, progress: Callable[[], int] | None = None, *,
              threads: ThreadsSource | Iterable[threading.Thread] | None = None,
              only_while_streaming: bool = False) -> None:
        """Watch ``name``: ``progress()`` returns a counter that must keep moving (frames
        captured, blocks played, frames sent, messages received); ``threads`` are the threads
        that must be alive (a list, or a callable returning the current ones, for threads
        that are replaced per session). Either may be None."""
        source: ThreadsSource | None
        if threads is None or callable(threads):
            source = threads
        else:
            fixed = list(threads)
            source = lambda: fixed
        with self._lock:
            self._entries = [e for e in self._entries if e.name != name]
            self._entries.append(_Watched(name, progress, source, only_while_streaming))

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e.name != name]

    def healthy(self) -> bool:
        """Check everything once (this also takes the new baseline for the counters)."""
        try:
            streaming = bool(self.streaming())
        except Exception as exc:
            self.problem = f"streaming check failed: {exc}"
            return False
        problems: list[str] = []
        with self._lock:
            for entry in self._entries:
                problem = self._check(entry, streaming)
                if problem:
                    problems.append(problem)
        self.problem = "; ".join(problems)
        return not problems

    @staticmethod
    def _check(e: _Watched, streaming: bool) -> str:
        if e.only_while_streaming and not streaming:
            e.checked_last_time = False
            return ""
        baseline_only = e.last_value is None or (e.only_while_streaming
                                                 and not e.checked_last_time)
        e.checked_last_time = True
        try:
            threads = list(e.threads()) if e.threads is not None else []
            value = e.progress() if e.progress is not None else None
        except Exception as exc:
            return f"{e.name}: check failed ({exc})"
        dead = [t.name for t in threads if not t.is_alive()]
        if e.threads is not None and not threads:
            return f"{e.name}: no thread running"
        if dead:
            return f"{e.name}: thread {', '.join(dead)} died"
        if value is None:
            return ""
        stuck = value == e.last_value and not baseline_only
        e.last_value = value
        return f"{e.name}: stuck at {value} since the last check" if stuck else ""


class WatchdogPinger:
    """Sends ``WATCHDOG=1`` every ``interval / 2`` seconds while ``healthy()`` is True, from
    a daemon thread named ``edgevoice-watchdog``. When ``healthy()`` turns False it logs once
    and stops pinging, so systemd restarts the service after ``WatchdogSec=``; when it turns
    True again pinging resumes (and that is logged too). :meth:`stop` returns at once.
    """

    def __init__(self, notifier: SystemdNotifier, healthy: Callable[[], bool],
                 interval: float, describe: Callable[[], str] | None = None) -> None:
        self.notifier = notifier
        self.healthy = healthy
        self.period = max(0.01, interval / 2.0)
        if describe is None:  # a ThreadHealth (or its bound healthy) says what is wrong
            owner = healthy if hasattr(healthy, "problem") else getattr(healthy, "__self__", None)
            describe = lambda: getattr(owner, "problem", "")
        self.describe = describe
        self.pings = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pinging = True

    def start(self) -> "WatchdogPinger":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgevoice-watchdog",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.period)

    def tick(self) -> bool:
        """One check (the thread calls this every period). Returns whether it pinged."""
        try:
            ok = bool(self.healthy())
        except Exception as exc:
            log.warning("health check failed: %s", exc)
            ok = False
        if ok:
            if not self._pinging:
                log.info("threads healthy again; watchdog pings resume")
                self._pinging = True
            if self.notifier.watchdog():
                self.pings += 1
            return True
        if self._pinging:
            self._pinging = False
            why = ""
            try:
                why = self.describe() or ""
            except Exception:
                pass
            log.error("stopping watchdog pings: %s; systemd restarts the service if this "
                      "lasts %g s", why or "a thread is not healthy", round(self.period * 2, 3))
        return False
