"""Helpers for tests of what a server sends: JSON and base64 builders, one-event checks."""

from __future__ import annotations

import base64
import json
import logging

from edgevoice.config import parse
from edgevoice.providers import make_provider

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


# -- each dialect's provider with a minimal section, for recorded-message tests ----------
def xuna(extra: str = ""):
    return make_provider(parse(f"[xuna]\nagent_id = ag 42\n{extra}"))


def voiceapi(key: str = "api_key = vk-secret-1\n"):
    return make_provider(parse("[agent]\nprovider = voiceapi\n[voiceapi]\n"
                               f"api_url = https://v.example/root/\n{key}"))


NAVTALK = "[agent]\nprovider = navtalk\n[navtalk]\nlicense = nt lic/1\nname = navtalk.Leo\n"


def navtalk(extra: str = "", history=()):
    return make_provider(parse(NAVTALK + extra), history)


def call_event(call_id, name="lights", key="function_name", arguments='{"on": true}'):
    data = {"call_id": call_id, key: name, "arguments": arguments}
    return msg(type="realtime.response.function_call_arguments.done", data=data)


NAPSTER = "[agent]\nprovider = napster\n[napster]\napi_key = nk-secret-1\n"


def napster(extra: str = "companion_id = comp1\n"):
    return make_provider(parse(NAPSTER + extra))


def napster_settings(extra: str):
    return parse(NAPSTER + extra).napster


def token(payload, alphabet=base64.b64encode) -> str:
    return alphabet(json.dumps(payload).encode()).decode()
