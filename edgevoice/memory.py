"""Process-wide memory behaviour for a daemon that runs for months.

glibc serves allocations of 128 KiB and more with ``mmap``, so freeing one gives its memory
back to the system at once. But after the first such block is freed, glibc raises that
threshold (up to 32 MiB) and serves later large blocks from the heap, which stays at its
high-water mark: every server message of a few MB would leave the resident size a little
higher. :func:`pin_mmap_threshold` fixes the threshold, so large short-lived buffers
(WebSocket messages, bootstrap bodies) always go back. Measured by ``scripts/soak``.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # malloc.h
THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def pin_mmap_threshold(size: int = THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``size``; False where the C library has no
    ``mallopt`` (e.g. musl), which changes nothing else."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = bool(mallopt(M_MMAP_THRESHOLD, size))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; large buffers may stay in the heap")
    return ok
