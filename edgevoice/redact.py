"""Keeping secrets out of logs, exception messages and printed config.

Every secret the daemon holds (API keys from the config, tokens and signed URLs fetched at
run time) is registered here; :class:`ScrubbingFormatter` replaces any registered secret in
a formatted log line (traceback included) with ``***``. URLs are also shown with every
query value masked except a few harmless keys, because signed URLs and NavTalk-style
``?license=`` URLs carry credentials in the query string.
"""

from __future__ import annotations

import collections
import logging
import threading
import urllib.parse

MASK = "***"
_SAFE_QUERY_KEYS = frozenset({"agent_id", "name", "avatarId", "avatar_id"})
_MIN_SECRET_LEN = 4  # shorter strings would scrub ordinary words

_lock = threading.Lock()
_permanent: set[str] = set()
_recent: collections.deque[str] = collections.deque(maxlen=64)  # run-time tokens, bounded


class Secret:
    """A string that never shows itself by accident: ``str()`` and ``repr()`` are masked.

    Use :meth:`reveal` at the single place the value must go on the wire.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "config") -> None:
        self._value = value
        self.source = source
        register(value, permanent=True)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK}, source={self.source!r})"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def register(value: str | None, permanent: bool = False) -> None:
    """Remember ``value`` as secret so that it is scrubbed from every log line."""
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _lock:
        if permanent:
            _permanent.add(value)
        elif value not in _recent:
            _recent.append(value)


def scrub(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    with _lock:
        secrets = list(_permanent) + list(_recent)
    for value in sorted(secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_url(url: str) -> str:
    """Show a URL with credentials removed: query values (but harmless ids) and userinfo."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    shown = "&".join(
        f"{key}={value if key in _SAFE_QUERY_KEYS else MASK}" for key, value in query
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, shown, ""))


def describe_error(exc: BaseException) -> str:
    """A one-line description of an exception, safe to log."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return scrub(" ".join(text.split()))[:500]


class ScrubbingFormatter(logging.Formatter):
    """A log formatter whose output never contains a registered secret."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
