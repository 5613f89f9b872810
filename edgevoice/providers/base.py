"""The provider interface: every agent dialect is a pure translator.

A provider turns config into *how to open a session* (an optional REST bootstrap request,
then a URL, headers and first messages), mic frames into wire messages, and wire messages
into a small set of typed events. It owns no thread, socket or audio device, so each one
is tested from recorded messages alone. The session (``edgevoice.session``) does the I/O.

Lifecycle of one session::

    req = provider.bootstrap_request()            # None: no REST step
    plan = provider.connect_plan(response)        # response of req, or None
    ... connect to plan.url with plan.headers, send plan.first_messages ...
    for message in websocket: events = provider.decode(message)
    wire = provider.encode_audio(frame)           # once streaming
    outcome = provider.close_outcome(code, reason)  # when the socket closes
"""

from __future__ import annotations

import binascii
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Sequence, Union

from edgevoice import redact

log = logging.getLogger(__name__)

Wire = Union[str, bytes]  # str: a text frame, bytes: a binary frame


# -- bootstrap ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    what: str = "bootstrap"  # for log lines: "signed URL", "session token", ...

    def __repr__(self) -> str:
        return (f"HttpRequest({self.method} {redact.redact_url(self.url)}, "
                f"headers={_masked(self.headers)}, {self.what})")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any  # parsed JSON, or None when the body was not JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectPlan:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    first_messages: tuple[Wire, ...] = ()
    stream_on_open: bool = False  # True: send mic audio right away; else wait for Ready
    secrets: tuple[str, ...] = ()  # run-time tokens to scrub from logs
    note: str = ""  # logged at INFO when the session opens (e.g. the server's connection id)
    session_id: str | None = None  # the server's id for this session, when known up front

    def __repr__(self) -> str:  # headers carry keys and the URL may be signed: never shown
        return (f"ConnectPlan({redact.redact_url(self.url)}, headers={_masked(self.headers)}, "
                f"{len(self.first_messages)} first message(s), {len(self.secrets)} secret(s))")


def _masked(headers: dict[str, str]) -> dict[str, str]:
    return {name: redact.MASK for name in headers}


# -- how a session ended, and what to do next -------------------------------------------------
class Retry(StrEnum):
    """What to do after a session ended (``Outcome.retry``)."""

    SOON = "soon"        #: normal backoff
    AUTH = "auth"        #: the key is wrong or the device is disabled: wait long
    LONG = "long"        #: another lasting problem (e.g. an empty account): wait long
    LATER = "later"      #: ``retry_after`` seconds (the server said so)
    NOW = "now"          #: a deliberate restart: reconnect at once
    IDLE = "idle"        #: the user ended the session: wait for the button
    STOPPED = "stopped"  #: the daemon is stopping


@dataclass(frozen=True)
class Outcome:
    """Why a session ended, and what to do next (:class:`Retry`; a plain string such as
    ``"auth"`` is taken too, and a misspelt one is an error here, not a silent "soon")."""

    reason: str
    retry: Retry = Retry.SOON
    retry_after: float | None = None
    #: which step failed, one of :data:`CAUSES` ("": not said; the session and the daemon
    #: fill it in where they know, see :meth:`caused`); the metrics' ``reason`` label
    cause: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.retry, Retry):
            object.__setattr__(self, "retry", Retry(self.retry))

    def caused(self, cause: str) -> Outcome:
        """This outcome with ``cause``, unless it already names one."""
        return self if self.cause else dataclasses.replace(self, cause=cause)


#: what may end a session badly (docs/metrics.md, ``edgevoice_sessions_failed_total``)
CAUSES = ("connect", "timeout", "auth", "rate_limited", "bootstrap", "dead_link", "closed",
          "too_big", "sound_device", "internal")


class SessionFailed(Exception):
    """Opening a session failed; carries the :class:`Outcome`."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def http_failure(resp: HttpResponse, what: str, auth_hint: str) -> SessionFailed:
    """Map a failed REST bootstrap answer to an outcome (401/403 → auth, 429 → later)."""
    if resp.status in (401, 403):
        return SessionFailed(Outcome(f"{what} rejected with HTTP {resp.status}: {auth_hint}",
                                     Retry.AUTH))
    if resp.status == 429:
        after = _retry_after(resp.headers)
        return SessionFailed(Outcome(f"{what}: rate limited (HTTP 429)", Retry.LATER, after))
    return SessionFailed(Outcome(f"{what} failed with HTTP {resp.status}"))


def _retry_after(headers: dict[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


# -- events ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ready:
    """The server is ready for mic audio."""
    session_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The agent's audio will come at ``rate`` Hz."""
    rate: int


@dataclass(frozen=True, slots=True)
class AgentAudio:
    pcm: bytes
    response_id: Any = None  # xuna: the audio event_id (int) of the response


@dataclass(frozen=True, slots=True)
class Interruption:
    """The server says the user talked over the agent: stop playback now."""
    response_id: Any = None


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """The agent's current response has ended (its audio after this belongs to the next)."""


@dataclass(frozen=True, slots=True)
class Transcript:
    role: str  # "user" | "agent"
    text: str
    final: bool = True


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The agent asks the device to run a function; answer with ``Provider.tool_result``."""
    call_id: str
    name: str
    arguments: Any  # dict, or the raw string when it was not a JSON object


@dataclass(frozen=True, slots=True)
class Reply:
    """Send this message back at once (a pong, a tool result)."""
    message: Wire


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a log line at ``level``."""
    text: str
    level: int = logging.INFO


@dataclass(frozen=True, slots=True)
class Ended:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message that could not be understood; logged (rate-limited) and skipped."""
    reason: str


Event = Union[Ready, OutputFormat, AgentAudio, Interruption, ResponseDone, Transcript, ToolCall,
              Reply, Notice, Ended, Malformed]


class Provider:
    """Base class; see the module docstring for the lifecycle."""

    name = "base"
    interrupts = True     # the server sends an interruption event when the user talks over
    mic_rate = 16000      # Hz of the PCM the provider sends
    output_rate = 16000   # Hz of the agent audio it receives (may change by OutputFormat)

    def bootstrap_request(self) -> HttpRequest | None:
        return None

    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        raise NotImplementedError

    def encode_audio(self, frame: bytes) -> Sequence[Wire]:
        raise NotImplementedError

    def decode(self, message: Wire) -> list[Event]:
        """The events in one server message; never raises (anything not understood is a
        :class:`Malformed` event). The session hands the message over without keeping it:
        ``del message`` once it is parsed keeps a large message's peak memory down."""
        raise NotImplementedError

    def user_activity(self) -> Wire | None:
        """A message saying the user is present (button press), if the dialect has one."""
        return None

    def tool_result(self, call: ToolCall, output: str, is_error: bool) -> Sequence[Wire]:
        """The messages that answer ``call`` (empty when the dialect has no function calls)."""
        return ()

    def interrupt_messages(self, response_id: Any, played_ms: float) -> Sequence[Wire]:
        """What to tell the server when playback of ``response_id`` was stopped (a barge-in
        or the server's interruption) after ``played_ms`` milliseconds of it reached the
        speaker; empty for dialects whose server needs no word (openai: cancel + truncate)."""
        return ()

    def close_outcome(self, code: int | None, reason: str) -> Outcome:
        return Outcome(f"server closed the connection (code {code}{', ' + reason if reason else ''})")

    auth_hint = "check the agent id and API key"  # what a refused handshake asks the user

    def auth_outcome(self, status: int) -> Outcome:
        """The WebSocket handshake was refused with HTTP ``status``."""
        if status in (401, 403):
            return Outcome(f"WebSocket handshake refused (HTTP {status}): {self.auth_hint}",
                           Retry.AUTH)
        return Outcome(f"WebSocket handshake refused (HTTP {status})")


class TypedJsonProvider(Provider):
    """A dialect whose server sends JSON objects with a string ``type``: :meth:`decode`
    parses each and hands it to :meth:`decode_typed`."""

    def decode(self, message: Wire) -> list[Event]:
        msg = typed_message(message)
        del message  # a large text is freed before its payload is decoded (see Provider.decode)
        if isinstance(msg, list):
            return msg
        return self.decode_typed(msg["type"], msg)

    def decode_typed(self, kind: str, msg: dict) -> list[Event]:
        raise NotImplementedError


def pcm_from_base64(b64: Any, what: str, response_id: Any = None) -> list:
    """Agent audio from a base64 payload: AgentAudio, or Malformed for a missing or
    invalid payload; an odd-length chunk loses its last byte (and says so)."""
    if not isinstance(b64, str):
        return [Malformed(f"{what} without an audio payload")]
    try:  # from the str itself: b64decode would first copy it to bytes
        pcm = binascii.a2b_base64(b64, strict_mode=True)
    except (binascii.Error, ValueError):
        return [Malformed(f"{what} with invalid base64")]
    if len(pcm) % 2:
        return [Malformed(f"audio chunk of odd length {len(pcm)}; last byte dropped"),
                AgentAudio(pcm[:-1], response_id)]
    return [AgentAudio(pcm, response_id)]


def clean_id(value: Any) -> int | str | None:
    """A response/event id from a server, usable as a key: ints stay ints (also "7" → 7;
    only ASCII digits count: ``"²".isdigit()`` is true but ``int("²")`` fails), strings stay
    strings, anything else (lists, objects, floats, bools) is no id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) < 19:
            return int(value)
        return value[:128]
    return None


def loads(text: str | bytes) -> Any:
    """``json.loads`` that fails only with ValueError: nesting too deep for the parser
    (a RecursionError) is just another malformed document."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def brief(value: Any, limit: int) -> str:
    """At most ``limit`` characters showing a server-sent value in a log line; never raises
    (a deeply nested value cannot be printed in full)."""
    if isinstance(value, str):
        return value[:limit]
    try:
        return str(value)[:limit]
    except (RecursionError, ValueError):  # ValueError: an int too long to print
        return f"<{type(value).__name__}>"


def parse_arguments(raw: Any) -> Any:
    """Function-call arguments arrive as an object or as a JSON string of one."""
    if isinstance(raw, str):
        try:
            value = loads(raw)
        except ValueError:
            return raw
        return value if isinstance(value, dict) else raw
    return raw if raw is not None else {}


def parse_json_object(message: Wire) -> dict | Malformed:
    """Parse a text frame that must be a JSON object; Malformed otherwise."""
    if isinstance(message, (bytes, bytearray)):
        return Malformed(f"unexpected binary message of {len(message)} bytes")
    try:
        obj = loads(message)
    except ValueError as exc:
        return Malformed(f"not JSON ({brief(str(exc), 40)}): {message[:60]!r}")
    if not isinstance(obj, dict):
        return Malformed(f"JSON but not an object: {type(obj).__name__}")
    return obj


def typed_message(message: Wire) -> dict | list:
    """Parse a text frame that must be a JSON object with a string ``type``: the object, or
    the events saying why it is not one (a list: Malformed, or a debug Notice)."""
    msg = parse_json_object(message)
    if isinstance(msg, Malformed):
        return [msg]
    if not isinstance(msg.get("type"), str):
        return [Notice("ignoring a message without a type", logging.DEBUG)]
    return msg


def dig(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]...`` or None when any step is missing or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


@dataclass(frozen=True)
class Dialect:
    """One agent dialect, as its module (``edgevoice/providers/<name>.py``) declares it in
    ``DIALECT``; the registry (``edgevoice.providers.DIALECTS``) lists them.

    - ``settings``: its config section ``[<name>]``, a frozen dataclass of keys
      (``edgevoice.config.types.key``) with ``check() -> list[Problem]`` for the rules that
      apply when it is the dialect in use (what must be set).
    - ``provider``: the :class:`Provider` class, built with the section's settings, one per
      session.
    - ``takes_history``: the provider is also given the recent user turns
      (``[agent] history_replay_turns``) at session start.
    - ``keeps_state``: the provider is also given ``carry``, a dict the daemon keeps across
      the sessions of one configuration (gemini: the newest session resumption handle).
    """

    name: str
    settings: type
    provider: type[Provider]
    takes_history: bool = False
    keeps_state: bool = False

    def make_provider(self, settings: Any, history: Sequence[str] = (),
                      carry: dict | None = None) -> Provider:
        args: list[Any] = [settings]
        if self.takes_history:
            args.append(history)
        if self.keeps_state:
            args.append({} if carry is None else carry)
        return self.provider(*args)  # type: ignore[call-arg]
