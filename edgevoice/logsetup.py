"""Logging: one handler for the whole daemon, secrets scrubbed, bad input rate-limited.

Under systemd (``$JOURNAL_STREAM`` set) records go to journald with structured fields an
operator can filter on: ``journalctl -u edgevoice SESSION_ID=conv_abc``, ``PROVIDER=xuna``,
``EVENT=barge_in``. Otherwise plain text goes to stderr. Either way every message is
scrubbed of secrets, and nothing but the scrubbed message and a fixed set of safe fields
reaches the journal (python-systemd's own handler would also send the unformatted message
arguments).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from edgevoice.redact import ScrubbingFormatter, describe_error

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"

_context: dict[str, str] = {}


def set_context(**fields: str | None) -> None:
    """Journal fields attached to every following record, e.g.
    ``set_context(provider="xuna", session_id="conv_1")``; None removes a field."""
    for key, value in fields.items():
        if value is None:
            _context.pop(key.upper(), None)
        else:
            _context[key.upper()] = str(value)


_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


def report_unlogged(record: logging.LogRecord, exc: BaseException | None = None,
                    stream=None) -> None:
    """What a handler does with a record it could not format or send: one line on stderr
    naming where the record came from and why it failed, never the message or its
    arguments (they may hold a secret; logging's own ``handleError`` prints both raw)."""
    if exc is None:
        exc = sys.exc_info()[1]
    why = describe_error(exc) if exc is not None else "unknown error"
    stream = stream or sys.stderr
    try:
        stream.write(f"edgevoice: a log record from {record.name} "
                     f"({os.path.basename(str(record.pathname))}:{record.lineno}) could not "
                     f"be logged: {why}\n")
        stream.flush()
    except Exception:  # stderr itself is gone: nothing left to tell
        pass


class ScrubbedStreamHandler(logging.StreamHandler):
    """stderr, with a failed record reported without its raw arguments."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        report_unlogged(record, stream=self.stream)


class JournalHandler(logging.Handler):
    """journald, with only the scrubbed message and safe fields.

    ``send`` is python-systemd's ``journal.send`` (tests give a fake only to the C-level
    ``sendv`` beneath it). A record the journal refuses is written, still scrubbed, to
    stderr (which systemd also puts in the journal), so nothing is lost and nothing raw
    leaks.
    """

    def __init__(self, send=None) -> None:
        super().__init__()
        if send is None:
            from systemd import journal
            send = journal.send
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        try:
            fields = {"PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
                      "SYSLOG_IDENTIFIER": "edgevoice", "LOGGER": record.name,
                      "THREAD_NAME": str(record.threadName), "CODE_FILE": str(record.pathname),
                      # python-systemd formats CODE_LINE with {:d}: it must be an int
                      "CODE_LINE": int(record.lineno), "CODE_FUNC": str(record.funcName)}
            fields.update(_context)
            event = getattr(record, "event", None)
            if event:
                fields["EVENT"] = str(event)
            self._send(message, **fields)
        except Exception as exc:
            report_unlogged(record, exc)
            try:
                sys.stderr.write(message + "\n")
            except Exception:
                pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        report_unlogged(record)


def under_journald() -> bool:
    """True when stderr is connected to the journal (systemd sets $JOURNAL_STREAM)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(level: str = "info", stream=None, journal: bool | None = None) -> None:
    """Send every logger's records to journald (under systemd) or stderr, secrets scrubbed."""
    handler: logging.Handler | None = None
    if journal is None:
        journal = stream is None and under_journald()
    if journal:
        try:
            handler = JournalHandler()
            handler.setFormatter(ScrubbingFormatter(JOURNAL_FORMAT))
        except ImportError:
            handler = None
    if handler is None:
        handler = ScrubbedStreamHandler(stream or sys.stderr)
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
