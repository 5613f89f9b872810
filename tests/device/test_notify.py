"""sd_notify through a real bound AF_UNIX datagram socket; the watchdog pinger and thread
health with real threads."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid

import pytest

from edgevoice.device import StatusReporter, SystemdNotifier, ThreadHealth, WatchdogPinger

WAIT = 5.0


class NotifySocket:
    """What systemd does: a bound datagram socket whose path goes in $NOTIFY_SOCKET."""

    def __init__(self, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"edgevoice-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self._dir = tempfile.mkdtemp(prefix="ev-notify-")   # short: sun_path is 108 bytes
            self.address = os.path.join(self._dir, "notify")
            self.sock.bind(self.address)

    def recv(self, timeout: float = WAIT) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Every message already queued, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return out

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            os.unlink(self.address)
            os.rmdir(self._dir)


@pytest.fixture
def notify_socket():
    s = NotifySocket()
    yield s
    s.close()


def test_messages_reach_the_socket(notify_socket):
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address})
    assert n.enabled
    assert n.ready("audio open, connecting")
    assert notify_socket.recv() == "READY=1\nSTATUS=audio open, connecting"
    n.status("connected to xuna agent, listening")
    assert notify_socket.recv() == "STATUS=connected to xuna agent, listening"
    n.watchdog()
    assert notify_socket.recv() == "WATCHDOG=1"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    lines = notify_socket.recv().split("\n")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after
    n.ready("reloaded")
    assert notify_socket.recv() == "READY=1\nSTATUS=reloaded"
    n.extend_timeout(20, "waiting for sound device 'USB'")
    assert notify_socket.recv() == ("EXTEND_TIMEOUT_USEC=20000000\n"
                                    "STATUS=waiting for sound device 'USB'")
    n.stopping()
    assert notify_socket.recv() == "STOPPING=1"
    n.close()


def test_identical_statuses_in_a_row_are_sent_once(notify_socket):
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address})
    assert n.status("offline, retry in 8 s")
    assert not n.status("offline, retry in 8 s")
    assert n.status("offline, retry in 4 s")
    assert n.status("offline, retry in 8 s")
    n.status("multi\nline   status")                 # one line for systemctl status
    assert notify_socket.pending() == ["STATUS=offline, retry in 8 s",
                                       "STATUS=offline, retry in 4 s",
                                       "STATUS=offline, retry in 8 s",
                                       "STATUS=multi line status"]


def test_abstract_socket():
    s = NotifySocket(abstract=True)
    try:
        n = SystemdNotifier(environ={"NOTIFY_SOCKET": s.address})
        n.ready()
        assert s.recv() == "READY=1"
    finally:
        s.close()


def test_reads_the_real_environment(notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    SystemdNotifier().stopping("stopping")
    assert notify_socket.recv() == "STOPPING=1\nSTATUS=stopping"


def test_without_systemd_everything_is_a_quiet_no_op(tmp_path):
    n = SystemdNotifier(environ={})
    assert not n.enabled
    assert not any([n.ready("x"), n.status("x"), n.reloading(), n.stopping(), n.watchdog()])
    assert n.watchdog_interval() is None
    gone = SystemdNotifier(environ={"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    assert gone.enabled and not gone.ready() and not gone.watchdog()   # never raises


def test_watchdog_interval():
    pid = str(os.getpid())
    interval = lambda env: SystemdNotifier(environ=env).watchdog_interval()
    assert interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 30.0
    assert interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # not ours
    assert interval({"WATCHDOG_USEC": "0"}) is None
    assert interval({"WATCHDOG_USEC": "soon"}) is None
    assert interval({}) is None


def test_status_reporter_lines(notify_socket):
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address})
    report = StatusReporter(n)
    report("connecting", "connecting to xuna at wss://api.xuna.ai/v1/convai/conversation")
    report("listening", "connected to xuna agent")
    report("speaking", "")
    report("listening", "")
    report.annotate("muted")
    report.annotate("")
    report("offline", "offline, retry in 8 s")
    report("offline", "offline, retry in 8 s")     # repeated: sent once
    assert notify_socket.pending() == [
        "STATUS=connecting to xuna at wss://api.xuna.ai/v1/convai/conversation",
        "STATUS=connected to xuna agent, listening",
        "STATUS=connected to xuna agent, agent speaking",
        "STATUS=connected to xuna agent, listening",
        "STATUS=connected to xuna agent, listening, muted",
        "STATUS=connected to xuna agent, listening",
        "STATUS=offline, retry in 8 s",
    ]


# --- thread health and the watchdog ------------------------------------------------------------
class Worker:
    """A thread that counts while it runs (like the capture or player thread); it can be
    paused (alive but stuck) and stopped (dead)."""

    def __init__(self, name: str) -> None:
        self.count = 0
        self.running = threading.Event()
        self.running.set()
        self.quit = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.quit.is_set():
            if self.running.is_set():
                self.count += 1
            self.quit.wait(0.002)   # the pace of a busy thread, not synchronisation

    def stop(self) -> None:
        self.quit.set()
        self.thread.join(WAIT)


class CountingHealth:
    """Wraps a health check so a test can wait for the n-th check and its answer."""

    def __init__(self, check) -> None:
        self.check = check
        self.results: list[bool] = []
        self.cond = threading.Condition()

    def __call__(self) -> bool:
        ok = self.check()
        with self.cond:
            self.results.append(ok)
            self.cond.notify_all()
        return ok

    def wait_for(self, predicate) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.results), WAIT), self.results


def test_thread_health_needs_alive_threads_and_moving_counters():
    capture = Worker("ev-capture")
    try:
        health = ThreadHealth()
        counter = iter(range(1000))
        health.watch("player", lambda: next(counter))            # moves on every check
        health.watch("capture", lambda: capture.count, threads=[capture.thread])
        assert health.healthy()                                   # baseline
        capture.running.clear()
        frozen = capture.count
        health.watch("capture", lambda: frozen, threads=[capture.thread])
        assert health.healthy()                                   # new baseline
        assert not health.healthy()
        assert "capture: stuck" in health.problem
    finally:
        capture.stop()
    health = ThreadHealth()
    health.watch("capture", threads=[capture.thread])
    assert not health.healthy()
    assert "died" in health.problem


def test_only_while_streaming_entries_are_skipped_offline():
    streaming = [False]
    sent = [0]
    dead = threading.Thread(target=lambda: None)
    dead.start(); dead.join()
    session_threads: list[threading.Thread] = [dead]
    health = ThreadHealth(streaming=lambda: streaming[0])
    health.watch("send", lambda: sent[0], threads=lambda: session_threads,
                 only_while_streaming=True)
    assert health.healthy() and health.healthy()          # offline: send is not watched
    send = Worker("ev-send")
    try:
        session_threads[:] = [send.thread]
        streaming[0] = True
        assert health.healthy()                           # first check: baseline only
        assert not health.healthy()                       # sent[0] did not move
        sent[0] += 5
        assert health.healthy()
        streaming[0] = False
        assert health.healthy()
        streaming[0] = True
        assert health.healthy()                           # baseline again after a pause
    finally:
        send.stop()
    sent[0] += 1
    assert not health.healthy() and "died" in health.problem


def test_watchdog_pings_while_healthy_and_stops_when_a_thread_dies(notify_socket, caplog):
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address,
                                 "WATCHDOG_USEC": "200000"})
    capture, player = Worker("ev-capture"), Worker("ev-player")
    health = ThreadHealth()
    health.watch("capture", lambda: capture.count, threads=[capture.thread])
    health.watch("player", lambda: player.count, threads=[player.thread])
    checks = CountingHealth(health.healthy)
    pinger = WatchdogPinger(n, checks, n.watchdog_interval(),
                            describe=lambda: health.problem).start()
    try:
        assert pinger.period == pytest.approx(0.1)
        for _ in range(3):
            assert notify_socket.recv() == "WATCHDOG=1"

        player.stop()                                     # a thread dies
        checks.wait_for(lambda r: r and r[-1] is False)
        notify_socket.pending()                           # pings sent before it noticed
        seen = len(checks.results)
        checks.wait_for(lambda r: len(r) >= seen + 3)     # three more checks ...
        assert notify_socket.pending() == []              # ... and not one ping
        stops = [r for r in caplog.records if "stopping watchdog pings" in r.getMessage()]
        assert len(stops) == 1                            # said once, not every period
        assert "ev-player died" in stops[0].getMessage()
    finally:
        pinger.stop()
        capture.stop()
    assert not pinger.alive


def test_watchdog_stops_when_a_counter_stops_moving_and_resumes(notify_socket, caplog):
    caplog.set_level(logging.INFO)
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address})
    capture = Worker("ev-capture")
    health = ThreadHealth()
    health.watch("capture", lambda: capture.count, threads=[capture.thread])
    checks = CountingHealth(health.healthy)
    pinger = WatchdogPinger(n, checks, 0.1, describe=lambda: health.problem).start()
    try:
        assert notify_socket.recv() == "WATCHDOG=1"
        capture.running.clear()                            # alive, but stuck
        checks.wait_for(lambda r: r and r[-1] is False)
        notify_socket.pending()
        seen = len(checks.results)
        checks.wait_for(lambda r: len(r) >= seen + 2)
        assert notify_socket.pending() == []
        assert "capture: stuck" in caplog.text
        capture.running.set()                              # moving again
        assert notify_socket.recv() == "WATCHDOG=1"
        assert "watchdog pings resume" in caplog.text
    finally:
        pinger.stop()
        capture.stop()


def test_pinger_stop_is_prompt_and_a_broken_check_is_unhealthy(notify_socket, caplog):
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address})
    started = threading.Event()

    def check():
        started.set()
        return True

    pinger = WatchdogPinger(n, check, 600.0).start()       # next check in 300 s
    assert started.wait(WAIT)
    assert pinger.alive
    pinger.stop(timeout=WAIT)
    assert not pinger.alive                                # did not wait 300 s

    def broken():
        raise RuntimeError("no engine")

    assert not WatchdogPinger(n, broken, 1.0).tick()
    assert "health check failed: no engine" in caplog.text


def test_pinger_names_the_problem_of_a_thread_health_by_itself(notify_socket, caplog):
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address})
    dead = threading.Thread(target=lambda: None, name="ev-recv")
    dead.start(); dead.join()
    health = ThreadHealth()
    health.watch("recv", threads=[dead])
    pinger = WatchdogPinger(n, health.healthy, 30.0)   # no describe=: found through the method
    assert not pinger.tick() and not pinger.tick()
    assert caplog.text.count("stopping watchdog pings: recv: thread ev-recv died") == 1
    assert notify_socket.pending() == []


def test_status_keeps_the_connection_through_the_follow_up_window(notify_socket):
    """Wake-word mode: after an answer the daemon shows "follow-up" (still connected),
    then "listening" again when the user asks more; the connection stays in the line."""
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.address})
    report = StatusReporter(n)
    report("listening", "connected to xuna agent")
    report("speaking", "")
    report("follow-up", "")
    report("listening", "")
    assert notify_socket.pending() == [
        "STATUS=connected to xuna agent, listening",
        "STATUS=connected to xuna agent, agent speaking",
        "STATUS=connected to xuna agent, follow-up (no wake word needed)",
        "STATUS=connected to xuna agent, listening",
    ]
