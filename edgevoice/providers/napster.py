"""Napster Companion API (per-session and Omniagent WebSocket sessions).

Spec: ``shared/seeds/000_…`` (WebSocket), ``001_…`` (Omniagent migration) and
``shared/protocols.md`` §3. Sends the seed's forms (``send_audio`` with ``data.data``,
``Authorization: Bearer authToken``); accepts every documented variant on receive (event
name under ``event`` or ``type``, audio under ``data.data`` or ``data.audio``, message fields
flat or under ``data.message``, token with ``authToken`` or with the token in the URL).
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import logging
import urllib.parse
from typing import Any
from dataclasses import dataclass

from edgevoice import redact
from edgevoice.config.errors import Problem, missing
from edgevoice.config.types import Boolean, Choice, Json, List, Pattern, Secret, Url, key
from edgevoice.providers.base import (brief, loads, ConnectPlan, Dialect, Event, HttpRequest,
                                      HttpResponse,
                                      Interruption, Malformed, Notice, Outcome, Provider, Ready,
                                      ResponseDone, SessionFailed, ToolCall, Transcript, dig, http_failure,
                                      clean_id, parse_arguments, parse_json_object,
                                      pcm_from_base64)

WS_CONNECTIONS_PATH = "/public/ws-connections"
AGENTS_PATH = "/public/agents"
CONCURRENT_LIMIT_RETRY_S = 30.0


# -- request bodies (also used by `edgevoice napster create-agent`) ---------------------------
def session_body(s) -> dict[str, Any]:
    """Body of ``POST /public/ws-connections`` from the ``[napster]`` settings (set fields only)."""
    body: dict[str, Any] = {"companionId": s.companion_id}
    provider_config: dict[str, Any] = {}
    if s.voice_id:
        provider_config["voiceId"] = s.voice_id
    if s.provider_settings:
        provider_config["settings"] = dict(s.provider_settings)
    if provider_config:
        provider_config.setdefault("settings", {})
        body["providerConfig"] = provider_config
    _put(body, "functions", list(s.functions))
    _put(body, "faqCollections", list(s.faq_collections))
    _put(body, "knowledgeBaseId", s.knowledge_base_id)
    _put(body, "language", s.language)
    _put(body, "tags", list(s.tags))
    _put(body, "externalClientId", s.external_client_id)
    _put(body, "externalClientProfile", s.external_client_profile)
    if s.disable_idle_timeout:
        body["disableIdleTimeout"] = True
    return body


def agent_connection_body(s) -> dict[str, Any]:
    """Body of ``POST /public/agents/{id}/connections``: only the per-session fields."""
    body: dict[str, Any] = {"channelType": "websocket"}
    _put(body, "externalClientId", s.external_client_id)
    _put(body, "externalClientProfile", s.external_client_profile)
    _put(body, "tags", list(s.tags))
    return body


def agent_body(s, name: str | None = None) -> dict[str, Any]:
    """An Omniagent's body from the per-session settings, by the seed's field mapping:
    ``providerConfig.voiceId`` → ``voiceId``, ``providerConfig.settings.*`` →
    ``providerSettings.*``; tags and disableIdleTimeout move to the agent; the
    externalClient* fields stay per session."""
    body: dict[str, Any] = {"companionId": s.companion_id}
    _put(body, "name", name or s.agent_name)
    _put(body, "voiceId", s.voice_id)
    _put(body, "language", s.language)
    _put(body, "functions", list(s.functions))
    _put(body, "faqCollections", list(s.faq_collections))
    _put(body, "knowledgeBaseId", s.knowledge_base_id)
    _put(body, "providerSettings", dict(s.provider_settings or {}))
    _put(body, "tags", list(s.tags))
    if s.disable_idle_timeout:
        body["disableIdleTimeout"] = True
    return body


def _put(body: dict, key: str, value: Any) -> None:
    if value not in ("", None, [], {}):
        body[key] = value


def decode_token(token: str) -> dict:
    """The connection token is base64 of a JSON object (standard or URL-safe alphabet,
    padding optional)."""
    padded = token + "=" * (-len(token) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            value = loads(decode(padded))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        if isinstance(value, dict):
            return value
    raise SessionFailed(Outcome("napster connection token is not base64 JSON"))


def ws_url(url: str) -> str:
    """The token's url may be issued as http(s); WebSockets want ws(s)."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://"):]
    if url.startswith("http://"):
        return "ws://" + url[len("http://"):]
    return url


@dataclass(frozen=True)
class NapsterSettings:
    """The [napster] section."""

    api_url: str = key("REST base URL.", "https://companion-api.napster.com",
                       Url("http", "https"))
    api_key: redact.Secret | None = key("API key (X-Api-Key).", None, Secret())
    agent_id: str = key("Omniagent id; when set, sessions open with "
                        "/public/agents/{agent_id}/connections and the per-session settings "
                        "below are not sent.")
    companion_id: str = key("Companion id (per-session connections).")
    voice_id: str = key("Voice id (providerConfig.voiceId).")
    provider_settings: dict = key("JSON object of provider settings, e.g. "
                                  '{"temperature": 0.7}.', None, Json())
    functions: tuple = key("Function ids to attach, comma-separated.", (), List())
    faq_collections: tuple = key("FAQ collection ids, comma-separated.", (), List())
    knowledge_base_id: str = key("Knowledge base id.")
    language: str = key("Conversation language, e.g. English.")
    tags: tuple = key("Tags for the session, comma-separated.", (), List())
    external_client_id: str = key("Your id for this device/user (1-32 of A-Z a-z 0-9 _ -).",
                                  "", Pattern(r"[A-Za-z0-9_-]{1,32}",
                                              "1-32 characters of A-Z a-z 0-9 _ -"))
    external_client_profile: dict = key("JSON object describing the user/device.", None,
                                        Json())
    disable_idle_timeout: bool = key("Ask the server not to end idle sessions.", False,
                                     Boolean())
    send_audio_key: str = key("Key of the audio payload sent: data (documented form) or audio.",
                              "data", Choice("data", "audio"))
    agent_name: str = key("Name given to an Omniagent by `edgevoice napster create-agent`.")

    def check(self) -> list[Problem]:
        return missing("napster", [
            (not self.api_key, "api_key", "set api_key or api_key_file"),
            (not self.agent_id and not self.companion_id, "companion_id",
             "set companion_id (per-session) or agent_id (Omniagent)")])


class NapsterProvider(Provider):
    name = "napster"
    mic_rate = 16000
    output_rate = 16000

    def __init__(self, settings) -> None:
        self.settings = settings
        self._audio_prefix = '{"type":"send_audio","data":{"' + settings.send_audio_key + '":"'
        self._calls_seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.connection_id: str | None = None

    # -- opening ----------------------------------------------------------------------------
    def bootstrap_request(self) -> HttpRequest:
        s = self.settings
        headers = {"X-Api-Key": s.api_key.reveal() if s.api_key else "",
                   "Content-Type": "application/json"}
        base = s.api_url.rstrip("/")
        if s.agent_id:
            url = f"{base}{AGENTS_PATH}/{urllib.parse.quote(s.agent_id, safe='')}/connections"
            return HttpRequest("POST", url, headers, agent_connection_body(s),
                               what="Omniagent connection request")
        return HttpRequest("POST", base + WS_CONNECTIONS_PATH, headers, session_body(s),
                           what="session connection request")

    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        what = "Omniagent connection request" if self.settings.agent_id else \
            "session connection request"
        if response is None or response.status not in (200, 201):
            if response is not None and response.status == 409:
                raise SessionFailed(Outcome(
                    f"{what}: too many concurrent sessions for this key (HTTP 409); another "
                    "device or a stale session holds them", "later", CONCURRENT_LIMIT_RETRY_S))
            if response is not None and response.status == 404 and self.settings.agent_id:
                raise SessionFailed(Outcome(f"{what}: no agent {self.settings.agent_id!r} "
                                            "(HTTP 404); check [napster] agent_id"))
            raise http_failure(response or HttpResponse(0, None), what,
                               "the [napster] api_key is wrong")
        token = dig(response.body, "token")
        if not isinstance(token, str) or not token:
            raise SessionFailed(Outcome(f"{what}: response has no token"))
        decoded = decode_token(token)
        url = decoded.get("url")
        if not isinstance(url, str) or not url.startswith(("ws", "http")):
            raise SessionFailed(Outcome(f"{what}: token has no usable url"))
        url = ws_url(url)
        headers: dict[str, str] = {}
        secrets = [token]
        auth_token = decoded.get("authToken")
        url_token = decoded.get("token")
        if isinstance(auth_token, str) and auth_token:
            headers["Authorization"] = f"Bearer {auth_token}"
            secrets.append(auth_token)
        elif isinstance(url_token, str) and url_token:
            secrets.append(url_token)
            if "token=" not in urllib.parse.urlsplit(url).query:
                sep = "&" if urllib.parse.urlsplit(url).query else "?"
                url = f"{url}{sep}token={urllib.parse.quote(url_token, safe='')}"
        else:
            raise SessionFailed(Outcome(f"{what}: token has neither authToken nor token"))
        conn_id = dig(response.body, "connection", "id")
        self.connection_id = brief(conn_id, 128) if conn_id is not None else None
        note = f"napster connection {self.connection_id or '(no id)'}"
        if self.settings.agent_id:
            note += f" to Omniagent {self.settings.agent_id}"
        return ConnectPlan(url, headers, (), stream_on_open=True, secrets=tuple(secrets),
                           note=note, session_id=self.connection_id)

    # -- sending ----------------------------------------------------------------------------
    def encode_audio(self, frame: bytes) -> tuple[str]:
        return (self._audio_prefix + base64.b64encode(frame).decode("ascii") + '"}}',)

    def tool_result(self, call: ToolCall, output: str, is_error: bool) -> tuple[str]:
        return (json.dumps({"type": "send_function_output",
                            "data": {"call_id": call.call_id, "output": output}}),)

    # -- receiving --------------------------------------------------------------------------
    def decode(self, message) -> list[Event]:
        msg = parse_json_object(message)
        del message  # a large text is freed before its payload is decoded (see Provider.decode)
        if isinstance(msg, Malformed):
            return [msg]
        name = msg.get("event") or msg.get("type")
        data = msg.get("data")
        if name == "audio_received":
            return self._audio(data)
        if name == "message_received":
            return self._message(data)
        if name == "speech_started":
            return [Interruption(None)]
        if name == "function_implicitly_called":
            return self._function_call(data if isinstance(data, dict) else msg)
        if name == "talk_state_changed":
            if dig(data, "state") == "ended":
                return [ResponseDone()]
            return [Notice(f"agent talk state {brief(dig(data, 'state'), 20)}", logging.DEBUG)]
        if name == "avatar_state_changed":
            if dig(data, "state") == "ready":
                return [Ready(self.connection_id, "agent ready")]
            return [Notice(f"agent state {brief(dig(data, 'state'), 20)}", logging.DEBUG)]
        if name == "function_call_timeout":
            call = dig(data, "call_id") or dig(data, "name")
            return [Notice(f"the agent stopped waiting for function call {brief(call, 64)} "
                           "(napster allows 10 s)", logging.WARNING)]
        if name == "error":
            text = dig(data, "message") or msg.get("message") or data
            return [Notice(f"server error: {brief(text, 200)}", logging.WARNING)]
        return [Notice(f"ignoring event {brief(name, 40)!r}", logging.DEBUG)]

    def _audio(self, data: Any) -> list[Event]:
        b64 = dig(data, "data")
        if not isinstance(b64, str):
            b64 = dig(data, "audio")
        return pcm_from_base64(b64, "audio_received")

    def _message(self, data: Any) -> list[Event]:
        m = data.get("message") if isinstance(data, dict) and isinstance(
            data.get("message"), dict) else data
        if not isinstance(m, dict):
            return [Malformed("message_received without data")]
        if m.get("type") == "session":
            return []  # the session marker that opens every conversation
        role, action = m.get("role"), m.get("action")
        content = m.get("content")
        if action == "cancelled" or m.get("reason") == "turn_detected":
            return [Interruption(clean_id(m.get("response_id")))]
        if action == "completed" and isinstance(content, str):
            return [Transcript("user" if role == "user" else "agent", content)]
        if action == "failed":
            return [Notice(f"agent response failed: {brief(m.get('reason'), 120)}",
                           logging.WARNING)]
        return []  # deltas and created items: the completed message carries the text

    def _function_call(self, data: dict) -> list[Event]:
        call_id, name = data.get("call_id"), data.get("name")
        if call_id is None or not isinstance(name, str):
            return [Malformed("function_implicitly_called without call_id or name")]
        call_id = brief(call_id, 128)
        if call_id in self._calls_seen:
            return []  # the server repeats calls; answer each once
        self._calls_seen[call_id] = None
        while len(self._calls_seen) > 64:
            self._calls_seen.popitem(last=False)
        return [ToolCall(call_id, name, parse_arguments(data.get("arguments")))]


DIALECT = Dialect("napster", NapsterSettings, NapsterProvider)
