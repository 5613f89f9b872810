"""The Prometheus exporter (``[metrics]``): what docs/metrics.md promises, nothing more.

Two parts:

- :class:`DaemonCounters` follows the daemon through its lifecycle interfaces (a state
  listener and a :class:`~edgevoice.lifecycle.DaemonObserver`, both on the session thread)
  for what only the session thread knows (why a session failed, the backoff, reconnects),
  and is a custom collector: at scrape time it reads the plain counters the daemon's
  threads keep (:class:`~edgevoice.flow.Stats`, the engine's underruns, the tools' tally).
  Nothing on the 20 ms audio path touches a ``prometheus_client`` object.
- :class:`MetricsExporter` serves them from its own ``CollectorRegistry`` (never the
  global one): an HTTP endpoint on ``[metrics] listen`` (thread ``edgevoice-metrics``)
  and/or node_exporter's textfile at ``[metrics] textfile``, rewritten atomically from
  the session thread's tick every :data:`TEXTFILE_INTERVAL_S`.

Label values come only from fixed sets (the states, :data:`~edgevoice.providers.base.CAUSES`,
the barge-in kinds, :data:`~edgevoice.tools.RESULTS`) or from the operator's config
(``[tools]`` names, the provider and mode): no secret and no server text ever reaches one.
"""

from __future__ import annotations

import logging
import socket
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Info, make_wsgi_app, write_to_textfile
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.exposition import ThreadingWSGIServer

from edgevoice import __version__
from edgevoice.config.errors import Problem
from edgevoice.config.sections import MetricsSettings
from edgevoice.config.types import Invalid, split_host_port
from edgevoice.flow import Buckets
from edgevoice.lifecycle import DaemonObserver, DaemonState
from edgevoice.providers.base import CAUSES, Outcome, Retry
from edgevoice.threads import join_threads, start_thread
from edgevoice.tools import RESULTS, UNKNOWN_TOOL

log = logging.getLogger(__name__)

TEXTFILE_INTERVAL_S = 15.0

#: the daemon's states as the contract names them (a missing sound device is offline)
STATE_LABELS = {
    DaemonState.STARTING: "starting",
    DaemonState.WAITING_FOR_DEVICE: "offline",
    DaemonState.IDLE: "idle",
    DaemonState.WAITING_FOR_WAKE: "idle",    # no session until the wake word
    DaemonState.CONNECTING: "connecting",
    DaemonState.LISTENING: "listening",
    DaemonState.FOLLOW_UP: "listening",      # the session listens without the wake word
    DaemonState.SPEAKING: "speaking",
    DaemonState.OFFLINE: "offline",
    DaemonState.MUTED: "muted",
    DaemonState.STOPPING: "stopped",
    DaemonState.STOPPED: "stopped",
}
STATES = tuple(dict.fromkeys(STATE_LABELS.values()))
BARGE_IN_KINDS = ("local", "server", "false", "resumed")
RELOAD_RESULTS = ("ok", "rejected")


class MetricsError(Exception):
    """``[metrics]`` cannot be served (the port is taken, the address is not here);
    ``problem`` names the key and the fix."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def failure_reason(outcome: Outcome) -> str | None:
    """The ``reason`` label of a session that ended badly; None for a deliberate end (the
    button, an idle timeout, a reload, the daemon stopping)."""
    if outcome.cause == "sound_device":
        return "sound_device"
    if outcome.retry in (Retry.NOW, Retry.IDLE, Retry.STOPPED):
        return None
    if outcome.retry is Retry.AUTH:
        return "auth"
    if outcome.retry is Retry.LATER:
        return "rate_limited"
    return outcome.cause if outcome.cause in CAUSES else "closed"


class DaemonCounters(DaemonObserver):
    """The daemon's numbers as metric families. Register it in a registry; add it to the
    daemon as a listener (``daemon.add_listener(counters.state_changed)``) and an
    observer."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        # written on the session thread only
        self.failed = dict.fromkeys(CAUSES, 0)
        self.auth_failures = 0
        self.reconnects = 0
        self.backoff_s = 0.0
        self.reloads = dict.fromkeys(RELOAD_RESULTS, 0)
        self._retrying = False
        self._underruns_before = 0  # of the engines closed since the start
        self._engine = None
        self._floor: dict[str, float] = {}  # sums of parts never go backwards

    # -- the session thread ----------------------------------------------------------------
    def state_changed(self, state: DaemonState, detail: str) -> None:
        if state is not DaemonState.OFFLINE:
            self.backoff_s = 0.0
        if state is DaemonState.CONNECTING and self._retrying:
            self.reconnects += 1
            self._retrying = False
        elif state is DaemonState.IDLE or state is DaemonState.WAITING_FOR_WAKE:
            self._retrying = False  # no retry: the next attempt is the user's

    def session_ended(self, outcome: Outcome, delay: float | None) -> None:
        reason = failure_reason(outcome)
        if reason is None:
            return
        self.failed[reason] += 1
        if reason == "auth":
            self.auth_failures += 1
        self._retrying = True
        if delay is not None:
            self.backoff_s = delay

    def audio_opened(self, engine) -> None:
        if self._engine is not None and self._engine is not engine:
            self._underruns_before += _underruns(self._engine)
        self._engine = engine

    def reloaded(self, result: str) -> None:
        self.reloads[result] += 1

    # -- any thread (a scrape) ----------------------------------------------------------------
    def _rising(self, name: str, value: float) -> float:
        """A counter summed from parts that move between threads (a session's mic queue
        folded into the totals as it ends) is read without a lock: never report less
        than before, which Prometheus would take for a restart."""
        value = max(value, self._floor.get(name, 0))
        self._floor[name] = value
        return value

    def collect(self):
        d = self.daemon
        stats = d.stats
        current = STATE_LABELS.get(d.state, "starting")
        state = GaugeMetricFamily("edgevoice_state", "1 for the state the daemon is in now, "
                                  "0 for the others.", labels=["state"])
        for name in STATES:
            state.add_metric([name], 1.0 if name == current else 0.0)
        yield state

        yield _counter("edgevoice_sessions_started", "Sessions that reached the agent.",
                       stats.sessions_connected)
        failed = CounterMetricFamily("edgevoice_sessions_failed", "Sessions that could not "
                                     "start, or ended by an error.", labels=["reason"])
        for reason, count in self.failed.items():
            failed.add_metric([reason], count)
        yield failed
        yield _counter("edgevoice_reconnects", "Connection attempts made after a failure.",
                       self.reconnects)
        yield GaugeMetricFamily("edgevoice_reconnect_backoff_seconds", "The delay before the "
                                "next attempt while offline; 0 while connected.",
                                value=self.backoff_s)
        yield _counter("edgevoice_auth_failures", "Times the server rejected the key.",
                       self.auth_failures)

        barge = CounterMetricFamily("edgevoice_barge_ins", "Interruptions of the agent's "
                                    "voice.", labels=["kind"])
        for kind, count in zip(BARGE_IN_KINDS, (stats.local_pauses, stats.interruptions,
                                                stats.echo_barge_ins,
                                                stats.false_barge_ins - stats.echo_barge_ins)):
            barge.add_metric([kind], self._rising(f"barge_{kind}", count))
        yield barge
        yield _histogram("edgevoice_bargein_onset_to_pause_seconds", "From the first mic "
                         "frame of the speech to playback paused.", stats.onset_to_pause)
        yield _histogram("edgevoice_capture_to_wire_seconds", "From a mic frame's capture to "
                         "its message handed to the WebSocket.", stats.capture_to_wire)

        engine = d.engine or self._engine
        underruns = self._underruns_before + (_underruns(engine) if engine is not None else 0)
        yield _counter("edgevoice_playback_underruns", "Times the sound card ran out of agent "
                       "audio in the middle of an answer.", self._rising("underruns", underruns))
        session = d.session
        dropped = stats.frames_dropped + (session.mic.dropped if session is not None else 0)
        yield _counter("edgevoice_mic_frames_dropped", "20 ms mic frames dropped because the "
                       "mic queue was full.", self._rising("dropped", dropped))

        calls = CounterMetricFamily("edgevoice_tool_calls", "Function calls the agent made.",
                                    labels=["tool", "result"])
        counts = {(name, result): 0 for name, _ in d.config.tools for result in RESULTS
                  if result != "unknown"}
        counts[(UNKNOWN_TOOL, "unknown")] = 0
        counts.update(stats.tool_calls.snapshot())
        for labels, count in sorted(counts.items()):
            calls.add_metric(list(labels), count)
        yield calls
        reloads = CounterMetricFamily("edgevoice_config_reloads", "systemctl reload "
                                      "answers.", labels=["result"])
        for result, count in self.reloads.items():
            reloads.add_metric([result], count)
        yield reloads


def _port_of(listen: str) -> int | None:
    try:
        return split_host_port(listen)[1]
    except Invalid:
        return None


def _underruns(engine) -> int:
    return engine.buffer.underruns + getattr(engine.playback, "xruns", 0)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, buckets: Buckets) -> HistogramMetricFamily:
    counts = list(buckets.counts)  # one copy: the cumulative counts agree with each other
    cumulative, running = [], 0
    for bound, count in zip((*map(repr, buckets.bounds), "+Inf"), counts):
        running += count
        cumulative.append((bound, running))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=buckets.total)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # one stderr line per scrape: no
        pass


class MetricsServer:
    """The HTTP endpoint: GET /metrics on ``listen``, served by ``edgevoice-metrics``."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        self.listen = listen
        try:
            host, port = split_host_port(listen)
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        except (Invalid, OSError) as exc:
            raise MetricsError(Problem("metrics", "listen", f"{listen} is not an address of "
                                       f"this device ({exc}); use e.g. 127.0.0.1:9464")
                               ) from None

        class Server(ThreadingWSGIServer):
            address_family = family

        try:
            self.httpd = make_server(host, port, make_wsgi_app(registry), Server,
                                     handler_class=_QuietHandler)
        except OSError as exc:
            raise MetricsError(Problem("metrics", "listen", f"cannot listen on {listen} "
                                       f"({exc.strerror or exc}); pick a free port or an "
                                       "address of this device")) from None
        self.port = self.httpd.server_port
        self.thread = start_thread("metrics", self.httpd.serve_forever)
        log.info("metrics served on http://%s/metrics", listen if port else
                 f"{host}:{self.port}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        join_threads([self.thread], 1.0)


class MetricsExporter(DaemonObserver):
    """The registry, the counters, and wherever ``[metrics]`` says to put them. Made with
    the daemon (the counters then see everything from the start, and a reload that turns
    metrics on later keeps them); :meth:`apply` starts, changes or stops serving."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.registry = CollectorRegistry()
        self.counters = DaemonCounters(daemon)
        self.registry.register(self.counters)
        self.build = Info("edgevoice_build", "What runs here.", registry=self.registry)
        self.settings = MetricsSettings()
        self.server: MetricsServer | None = None
        self._next_write = 0.0
        self._write_failed = False
        self.describe(daemon.config, daemon.config.agent.mode)
        daemon.add_listener(self.counters.state_changed)
        daemon.add_observer(self.counters)
        daemon.add_observer(self)

    def describe(self, config, mode: str) -> None:
        """``edgevoice_build_info``: the version, ``config``'s provider, the mode in effect
        (a changed mode takes effect after a restart)."""
        self.build.info({"version": __version__, "provider": config.agent.provider,
                         "mode": mode})

    @property
    def port(self) -> int | None:
        """The HTTP endpoint's port (``listen = 127.0.0.1:0`` picks a free one)."""
        return self.server.port if self.server is not None else None

    def apply(self, settings: MetricsSettings) -> None:
        """Serve per ``settings``. Raises :class:`MetricsError` when the endpoint cannot
        listen; the endpoint served before then is served again (a rejected reload)."""
        if settings.listen != self.settings.listen:
            self.server = self._move(self.server, settings.listen)
        self.settings = settings
        self._next_write = 0.0
        if settings.textfile:
            self.write_textfile()

    def _move(self, old: MetricsServer | None, listen: str) -> MetricsServer | None:
        """Serve on ``listen`` (empty: nowhere) instead of ``old``. The new endpoint
        listens before the old one closes, unless it takes the old one's port (another
        host on the same port): then the old one closes first, and is opened again if the
        new one fails."""
        try:
            new = MetricsServer(listen, self.registry) if listen else None
        except MetricsError:
            if old is None or old.port != _port_of(listen):
                raise
            old.close()
            try:
                return MetricsServer(listen, self.registry)
            except MetricsError:
                try:
                    self.server = MetricsServer(old.listen, self.registry)
                except MetricsError as exc:
                    self.server = None
                    log.error("%s", exc)
                raise
        if old is not None:
            old.close()
        return new

    def tick(self, now: float) -> None:
        if self.settings.textfile and now >= self._next_write:
            self._next_write = now + TEXTFILE_INTERVAL_S
            self.write_textfile()

    def write_textfile(self) -> None:
        """Write the textfile now (a temporary file beside it, renamed over it). A failure
        is logged once until a write succeeds again; the daemon goes on."""
        path = self.settings.textfile
        try:
            write_to_textfile(path, self.registry)
        except OSError as exc:
            if not self._write_failed:
                log.error("cannot write the metrics textfile %s: %s (the unit needs "
                          "ReadWritePaths= for its folder)", path, exc.strerror or exc)
            self._write_failed = True
            return
        if self._write_failed:
            log.info("metrics textfile %s written again", path)
        self._write_failed = False

    def close(self) -> None:
        """Stop serving; the textfile is written a last time (state ``stopped``)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.settings.textfile:
            self.write_textfile()
