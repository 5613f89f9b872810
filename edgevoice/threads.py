"""Starting the daemon's threads with names the operating system sees too, and making
sure they end.

``top -H -p $(pidof -s python3)`` and ``/proc/PID/task/*/comm`` then show
``ev-session``, ``ev-capture``, ``ev-player``, ``ev-send``, ``ev-recv`` instead of a row
of ``python3``. :func:`join_threads` is gpiozero's ``ZombieThread`` idea for a daemon: a
thread that does not end in time is named in the log (``event=thread_stuck``) rather
than raised about, so the shutdown goes on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from typing import Callable, Iterable

log = logging.getLogger(__name__)

_PR_SET_NAME = 15
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # not Linux: Python names only
    _libc = None


def _set_native_name(name: str) -> None:
    if _libc is not None:
        _libc.prctl(_PR_SET_NAME, name.replace("edgevoice-", "ev-")[:15].encode(), 0, 0, 0)


def start_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """Start a daemon thread called ``edgevoice-<name>`` running ``target``."""

    def run() -> None:
        _set_native_name(f"edgevoice-{name}")
        target()

    thread = threading.Thread(target=run, name=f"edgevoice-{name}", daemon=True)
    thread.start()
    return thread


def join_threads(threads: Iterable[threading.Thread], timeout: float) -> list[str]:
    """Join ``threads`` within ``timeout`` seconds in all; log each one still running,
    by name, and return their names (empty: all ended)."""
    deadline = time.monotonic() + timeout
    stuck = []
    for thread in threads:
        if thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            stuck.append(thread.name)
            log.warning("thread %s did not end within %g s; going on without it", thread.name,
                        timeout, extra={"event": "thread_stuck"})
    return stuck
