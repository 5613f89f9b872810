"""Logging: one handler for the whole daemon, secrets scrubbed, bad input rate-limited."""

from __future__ import annotations

import logging
import sys
import threading
import time

from edgevoice.redact import ScrubbingFormatter

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "info", stream=None) -> None:
    """Send every logger's records to stderr, formatted, with secrets scrubbed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(ScrubbingFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log request URLs at DEBUG stay quiet unless asked for.
    for noisy in ("urllib3", "websocket", "websockets", "edgevoice.localagent.server.wire"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


class RateLimitedLog:
    """Log a recurring problem at most once per ``interval`` seconds per key.

    Used for bad input from servers: the first occurrence is logged at once, repeats within
    the interval are counted and reported with the next line that gets through.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args) -> bool:
        """Log ``msg`` unless ``key`` was logged recently; return whether it was logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            skipped = self._suppressed.pop(key, 0)
            if len(self._last) > 256:  # keys come from server input: keep the table bounded
                self._last = {key: now}
        if skipped:
            msg += " (%d more like this not shown)"
            args = (*args, skipped)
        self._logger.warning(msg, *args)
        return True
