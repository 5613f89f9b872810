"""Value types: each parses one key's text, checks it, and renders a value back as text.

A section is a frozen dataclass whose keys are declared with :func:`key`: the one-line
documentation, the default and the value type (``key("Log level.", "info",
Choice("debug", "info", "warning", "error"))``). :meth:`ValueType.parse` gets the text
with surrounding blanks removed (NUL characters and over-long values are refused before it
is called) and returns the value, or raises :class:`Invalid` with a message that says what
is wrong and what is expected; the loader adds the section and the key.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import json
import math
import os
import re
import urllib.parse
from typing import Any

from edgevoice import redact
from edgevoice.config.errors import did_you_mean

MAX_SECRET_BYTES = 64 * 1024  # an inline secret, an api_key_file or a credential


class Invalid(ValueError):
    """The text is not a value of this type; the message says why and what is expected."""


class ValueType:
    """Plain text: any value is accepted as written."""

    choices: tuple[str, ...] = ()  # documented as "One of: ..."
    secret = False  # may also come from KEY_file or a systemd credential

    def parse(self, raw: str) -> Any:
        return raw

    def render(self, value: Any) -> str:
        return "" if value is None else str(value)


class Text(ValueType):
    pass


class Number(ValueType):
    """A number between ``minimum`` and ``maximum`` (both included)."""

    what = "a number"

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def cast(self, raw: str) -> float:
        return float(raw)

    def parse(self, raw: str) -> Any:
        try:
            number = self.cast(raw)
        except ValueError:
            raise Invalid(f"'{raw[:40]}' is not {self.what}") from None
        low, high = self.minimum, self.maximum
        if not math.isfinite(number):
            raise Invalid(f"'{raw}' is not a finite number; expected {low:g} to {high:g}")
        if number < low or number > high:
            raise Invalid(f"{raw} is out of range; expected {low:g} to {high:g}")
        return number


class Integer(Number):
    what = "a whole number"

    def cast(self, raw: str) -> float:
        return int(raw)


class Float(Number):
    pass


_TRUE = frozenset({"yes", "on", "true", "1"})
_FALSE = frozenset({"no", "off", "false", "0"})


class Boolean(ValueType):
    def parse(self, raw: str) -> bool:
        value = raw.lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise Invalid(f"'{raw}' is not yes/no (also on/off, true/false, 1/0)")

    def render(self, value: Any) -> str:
        return "yes" if value else "no"


class Choice(ValueType):
    """One of a few words (compared in lower case)."""

    def __init__(self, *choices: str) -> None:
        self._choices = choices

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return self._choices

    def parse(self, raw: str) -> str:
        value = raw.lower()
        if value not in self.choices:
            raise Invalid(f"'{raw}' is not one of: {', '.join(self.choices)}"
                          + did_you_mean(value, list(self.choices)))
        return value


class Path(ValueType):
    """A file or folder path. It need not exist yet (sections check what must), but a path
    the system cannot even look at (a name too long, a loop of links) is refused."""

    def parse(self, raw: str) -> str:
        if raw:
            try:
                os.stat(raw)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    raise Invalid(f"unusable path: {exc.strerror}") from None
        return raw


class Url(ValueType):
    """A URL with one of ``schemes`` and a host."""

    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes

    def parse(self, raw: str) -> str:
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in self.schemes or not parts.netloc:
            raise Invalid(f"'{raw}' is not a {'/'.join(self.schemes)} URL; expected e.g. "
                          f"{self.schemes[-1]}://host/path")
        return raw


class Pattern(ValueType):
    """Text matching ``regex`` whole, or empty; ``expected`` completes "'x' must be ..."."""

    def __init__(self, regex: str, expected: str) -> None:
        self.regex = re.compile(regex)
        self.expected = expected

    def parse(self, raw: str) -> str:
        if raw and not self.regex.fullmatch(raw):
            raise Invalid(f"'{raw}' must be {self.expected}")
        return raw


class HostPort(ValueType):
    """``HOST:PORT`` to listen on (empty: off). HOST is an IP address (``[::1]`` for IPv6)
    or a host name; PORT 1 to 65535, or 0 for any free one (tests). Returned as written."""

    _NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")

    def parse(self, raw: str) -> str:
        if raw:
            split_host_port(raw)
        return raw


def split_host_port(raw: str) -> tuple[str, int]:
    """``("127.0.0.1", 9464)`` from ``127.0.0.1:9464`` (``[::1]:9464``: ``"::1"``); raises
    :class:`Invalid` saying what a good value looks like."""
    expected = "expected HOST:PORT, e.g. 127.0.0.1:9464 (or 0.0.0.0:9464, [::1]:9464)"
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise Invalid(f"'{raw[:60]}' has no port; {expected}")
    if not port.isdigit() or int(port) > 65535:
        raise Invalid(f"'{port[:20]}' is not a port (0 to 65535); {expected}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise Invalid(f"'{host[:60]}' is not an IPv6 address; {expected}") from None
    elif ":" in host:
        raise Invalid(f"'{raw[:60]}': write an IPv6 address in brackets; {expected}")
    elif not HostPort._NAME.fullmatch(host) or len(host) > 253:
        raise Invalid(f"'{host[:60]}' is not an IP address or host name; {expected}")
    return host, int(port)


class List(ValueType):
    """Comma-separated words; empty items are dropped."""

    def parse(self, raw: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in raw.split(",") if item.strip())

    def render(self, value: Any) -> str:
        return ", ".join(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class Json(ValueType):
    """A JSON object (empty: unset). NaN/Infinity and deep nesting are refused."""

    def parse(self, raw: str) -> dict | None:
        if not raw:
            return None
        expected = 'expected an object like {"key": "value"}'
        try:
            value = json.loads(raw, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise Invalid(f"not valid JSON ({exc.msg} at column {exc.colno}); "
                          f"{expected}") from None
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise Invalid(f"not usable JSON ({reason}); {expected}") from None
        if not isinstance(value, dict):
            raise Invalid('expected a JSON object like {"key": "value"}')
        return value

    def render(self, value: Any) -> str:
        return "" if value is None else json.dumps(value)


class Secret(ValueType):
    """A secret, held as :class:`edgevoice.redact.Secret` and rendered masked. Written
    inline it is parsed here; ``KEY_file`` and systemd credentials are read by the loader."""

    secret = True

    def parse(self, raw: str) -> redact.Secret:
        if "\x00" in raw or len(raw) > MAX_SECRET_BYTES:
            raise Invalid("contains a NUL character or is too long")
        return redact.Secret(raw, "config")

    def render(self, value: Any) -> str:
        return "" if value is None else f"{redact.MASK}    # from {value.source}"


TEXT = Text()


def key(doc: str, default: Any = "", value: ValueType = TEXT) -> Any:
    """Declare a section's key: its documentation, default and value type."""
    return dataclasses.field(default=default, metadata={"doc": doc, "type": value})


def keys(section: type) -> list[dataclasses.Field]:
    """The fields of a section class that are config keys (declared with :func:`key`); other
    fields are tunables the code sets but the file does not."""
    return [f for f in dataclasses.fields(section) if "type" in f.metadata]


def value_type(fld: dataclasses.Field) -> ValueType:
    """The value type a key was declared with."""
    return fld.metadata["type"]
