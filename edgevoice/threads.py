"""Starting the daemon's threads with names the operating system sees too.

``top -H -p $(pidof -s python3)`` and ``/proc/PID/task/*/comm`` then show
``ev-capture``, ``ev-player``, ``ev-send``, ``ev-recv`` instead of a row of ``python3``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Callable

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
