"""Helpers for tests of what a server sends: JSON and base64 builders, one-event checks."""

from __future__ import annotations

import base64
import json
import logging

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def msg(**fields) -> str:
    return json.dumps(fields)


def only(events: list, kind: type, level: int | None = None):
    assert len(events) == 1 and isinstance(events[0], kind), events
    if level is not None:
        assert events[0].level == level, events
    return events[0]
