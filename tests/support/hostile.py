"""Running real sessions against the hostile server (``edgevoice.localagent.hostile``) and
watching this process's threads, file descriptors and memory (shared by the robustness
tests and ``scripts/soak``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import types
from contextlib import contextmanager
from typing import Iterator

from edgevoice.audio.engine import AudioEngine
from edgevoice.config import ini_text, parse
from edgevoice.memory import pin_mmap_threshold
from edgevoice.providers import make_provider
from edgevoice.daemon import Daemon
from edgevoice.providers.base import Outcome
from edgevoice.session import Session


@contextmanager
def hostile_server() -> Iterator[int]:
    """The hostile server in its own process (its threads, sockets and buffers do not count
    against ours); yields its port."""
    proc = subprocess.Popen([sys.executable, "-m", "edgevoice.localagent.hostile"],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def rss() -> int:
    return _status("VmRSS")


def reset_peak_rss() -> None:
    """Start VmHWM (peak RSS) again from the current RSS (Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    return _status("VmHWM")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def counts() -> tuple[int, int]:
    return threading.active_count(), fds()


def settle(baseline: tuple[int, int], timeout: float = 3.0) -> tuple[int, int]:
    """Thread and fd counts, once they are back to ``baseline`` (or after ``timeout``)."""
    end = time.monotonic() + timeout
    now = counts()
    while now != baseline and time.monotonic() < end:
        time.sleep(0.02)
        now = counts()
    return now


def snapshot() -> tuple[set[threading.Thread], set[str]]:
    """The threads alive and the fd numbers open now."""
    return set(threading.enumerate()), set(os.listdir("/proc/self/fd"))


def leftovers(before: tuple[set[threading.Thread], set[str]],
              timeout: float = 3.0) -> tuple[list[str], list[str]]:
    """Threads and fds that did not exist at ``before`` and are still there (after waiting
    up to ``timeout`` for them to go). Threads of other tests that end meanwhile do not
    count, so the answer does not depend on the order the tests run in."""
    end = time.monotonic() + timeout
    while True:
        threads, fds_now = snapshot()
        new_threads = sorted(t.name for t in threads - before[0])
        new_fds = []
        for fd in sorted(fds_now - before[1]):
            try:
                new_fds.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
            except OSError:  # closed meanwhile (or the listing's own fd)
                pass
        if (not new_threads and not new_fds) or time.monotonic() >= end:
            return new_threads, new_fds
        time.sleep(0.02)


def config(port: int, mode: str, http_mode: str | None = None, **session: str):
    xuna = {"agent_id": mode, "url": f"ws://127.0.0.1:{port}/ws/{mode}"}
    if http_mode is not None:
        xuna.update(api_key="hostile-key", api_url=f"http://127.0.0.1:{port}/http/{http_mode}")
    sections = {"xuna": xuna, "agent": {"history": "no"}}
    if session:
        sections["session"] = session
    return parse(ini_text(sections))


class Rig:
    """One audio engine (devices never started) for many sessions, as in the daemon."""

    def __init__(self) -> None:
        pin_mmap_threshold()  # as the daemon does
        device = types.SimpleNamespace(rate=16000, close=lambda: None)
        self.engine = AudioEngine(device, device, 16000, buffer_seconds=5)
        self.daemon: Daemon | None = None
        self.stats = None

    def session(self, cfg, seconds: float | None = None) -> tuple[Outcome, float]:
        """Run one session to its end (or for ``seconds``); (outcome, duration)."""
        if self.daemon is None:  # one daemon (the session's host) for every session
            self.daemon = Daemon(cfg)
            self.daemon.engine = self.engine
            self.stats = self.daemon.stats
        daemon = self.daemon
        session = Session(make_provider(cfg), self.engine, cfg.session, daemon)
        timer = threading.Timer(seconds, daemon.restart_session) if seconds else None
        started = time.monotonic()
        if timer is not None:
            timer.start()  # "enough": a restart command from another thread ends it
        try:
            outcome = daemon.converse(session)
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
            daemon.inbox.drain()  # nothing of this session outlives it
            self.engine.buffer.flush()
        return outcome, time.monotonic() - started
