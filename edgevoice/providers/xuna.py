"""XUNA AI Conversational AI (mirrors ElevenLabs Conversational AI).

Spec: ``shared/seeds/003_…`` and ``shared/protocols.md`` §1. Sends the seed's forms; accepts
the ElevenLabs variants on receive (ping event id at top level, string event ids).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from dataclasses import dataclass

from edgevoice import redact
from edgevoice.config.errors import Problem, missing
from edgevoice.config.types import Choice, Secret, Url, key
from edgevoice.providers.base import (Dialect, brief, ConnectPlan, Event, HttpRequest,
                                      HttpResponse, Interruption, Malformed, Notice, Outcome,
                                      OutputFormat, Provider, Ready, Reply, SessionFailed,
                                      ToolCall, Transcript, clean_id, dig, http_failure,
                                      parse_arguments, parse_json_object, pcm_from_base64)

SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
_IGNORED = frozenset({"vad_score", "internal_tentative_agent_response", "agent_chat_response_part",
                      "internal_turn_probability", "mcp_connection_status", "agent_tool_response"})


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def parse_audio_format(fmt: object) -> int | None:
    """``pcm_16000`` → 16000; None for anything that is not PCM."""
    if isinstance(fmt, str) and fmt.startswith("pcm_"):
        try:
            rate = int(fmt[4:])
        except ValueError:
            return None
        return rate if 8000 <= rate <= 96000 else None
    return None


@dataclass(frozen=True)
class XunaSettings:
    """The [xuna] section."""

    agent_id: str = key("The agent's id (XUNA dashboard).")
    api_key: redact.Secret | None = key(
        "API key; when set, a signed URL is fetched for every session (private agents).",
        None, Secret())
    url: str = key("WebSocket endpoint.", "wss://api.xuna.ai/v1/convai/conversation",
                   Url("ws", "wss"))
    api_url: str = key("REST base URL (signed URLs).", "https://api.xuna.ai",
                       Url("http", "https"))
    audio_form: str = key(
        "How mic audio is sent: audio_event (XUNA) or user_audio_chunk (ElevenLabs form).",
        "audio_event", Choice("audio_event", "user_audio_chunk"))
    prompt: str = key("Override the agent's prompt for this device (empty: agent default).")
    first_message: str = key("Override the agent's first message (empty: agent default).")
    language: str = key("Override the conversation language, e.g. en (empty: agent default).")
    voice_id: str = key("Override the TTS voice id (empty: agent default).")

    def check(self) -> list[Problem]:
        return missing("xuna", [(not self.agent_id, "agent_id",
                                 "the xuna provider needs the agent's id (agent_id = ...)")])


class XunaProvider(Provider):
    name = "xuna"

    def __init__(self, settings) -> None:
        self.settings = settings
        self.mic_rate = 16000
        self.output_rate = 16000
        self._chunk_key = settings.audio_form

    # -- opening ----------------------------------------------------------------------------
    def bootstrap_request(self) -> HttpRequest | None:
        if not self.settings.api_key:
            return None
        url = _with_query(self.settings.api_url.rstrip("/") + SIGNED_URL_PATH,
                          agent_id=self.settings.agent_id)
        return HttpRequest("GET", url, {"xi-api-key": self.settings.api_key.reveal()},
                           what="signed URL request")

    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        if response is None:
            url = _with_query(self.settings.url, agent_id=self.settings.agent_id)
            secrets: tuple[str, ...] = ()
        else:
            if response.status != 200:
                raise http_failure(response, "signed URL request",
                                   "the [xuna] api_key is wrong or has no access to this agent")
            url = dig(response.body, "signed_url")
            if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
                raise SessionFailed(Outcome("signed URL response has no usable signed_url"))
            secrets = (url,) + tuple(v for _, v in urllib.parse.parse_qsl(
                urllib.parse.urlsplit(url).query))
        return ConnectPlan(url, {}, (self._initiation(),), stream_on_open=True, secrets=secrets)

    def _initiation(self) -> str:
        s = self.settings
        agent: dict = {}
        if s.prompt:
            agent["prompt"] = {"prompt": s.prompt}
        if s.first_message:
            agent["first_message"] = s.first_message
        if s.language:
            agent["language"] = s.language
        msg: dict = {"type": "conversation_initiation_client_data"}
        override: dict = {}
        if agent:
            override["agent"] = agent
        if s.voice_id:
            override["tts"] = {"voice_id": s.voice_id}
        if override:
            msg["conversation_config_override"] = override
        return json.dumps(msg)

    # -- sending ----------------------------------------------------------------------------
    def encode_audio(self, frame: bytes) -> tuple[str]:
        b64 = base64.b64encode(frame).decode("ascii")
        if self._chunk_key == "user_audio_chunk":
            return ('{"user_audio_chunk":"' + b64 + '"}',)
        return ('{"type":"audio","audio_event":{"audio_base_64":"' + b64 + '"}}',)

    def user_activity(self) -> str:
        return '{"type":"user_activity"}'

    # -- receiving --------------------------------------------------------------------------
    def decode(self, message) -> list[Event]:
        msg = parse_json_object(message)
        del message  # a large text is freed before its payload is decoded (see Provider.decode)
        if isinstance(msg, Malformed):
            return [msg]
        kind = msg.get("type")
        if not isinstance(kind, str):
            return [Notice("ignoring a message without a type", logging.DEBUG)]
        handler = _HANDLERS.get(kind)
        if handler is None:
            if kind in _IGNORED:
                return []
            return [Notice(f"ignoring message type {kind[:40]!r}", logging.DEBUG)]
        return handler(self, msg)

    def _metadata(self, msg: dict) -> list[Event]:
        meta = msg.get("conversation_initiation_metadata_event") or {}
        conv_id = dig(meta, "conversation_id")
        events: list[Event] = []
        fmt = dig(meta, "agent_output_audio_format")
        if fmt is not None:
            rate = parse_audio_format(fmt)
            if rate is None:
                events.append(Notice(f"agent output format {brief(fmt, 30)!r} is not PCM; set the "
                                     "agent's output format to pcm_16000 (assuming 16000 Hz PCM)",
                                     logging.ERROR))
            elif rate != self.output_rate:
                self.output_rate = rate
                events.append(OutputFormat(rate))
        events.append(Ready(brief(conv_id, 128) if conv_id is not None else None,
                            f"output {self.output_rate} Hz"))
        return events

    def _audio(self, msg: dict) -> list[Event]:
        event = msg.get("audio_event")
        return pcm_from_base64(dig(event, "audio_base_64"), "audio message",
                               _event_id(dig(event, "event_id")))

    def _ping(self, msg: dict) -> list[Event]:
        event_id = dig(msg, "ping_event", "event_id")
        if event_id is None:
            event_id = msg.get("event_id")
        if event_id is None:
            return [Malformed("ping without event_id")]
        return [Reply(json.dumps({"type": "pong", "event_id": event_id}))]

    def _interruption(self, msg: dict) -> list[Event]:
        return [Interruption(_event_id(dig(msg, "interruption_event", "event_id")))]

    def _agent_response(self, msg: dict) -> list[Event]:
        text = dig(msg, "agent_response_event", "agent_response")
        return [Transcript("agent", text)] if isinstance(text, str) else [
            Malformed("agent_response without agent_response_event.agent_response")]

    def _correction(self, msg: dict) -> list[Event]:
        text = dig(msg, "agent_response_correction_event", "corrected_agent_response")
        return [Transcript("agent", f"(corrected) {text}")] if isinstance(text, str) else []

    def _user_transcript(self, msg: dict) -> list[Event]:
        text = dig(msg, "user_transcription_event", "user_transcript")
        return [Transcript("user", text)] if isinstance(text, str) else [
            Malformed("user_transcript without user_transcription_event.user_transcript")]

    def _tool_call(self, msg: dict) -> list[Event]:
        call = msg.get("client_tool_call")
        call_id = dig(call, "tool_call_id")
        name = dig(call, "tool_name")
        if call_id is None or not isinstance(name, str):
            return [Malformed("client_tool_call without tool_call_id or tool_name")]
        return [ToolCall(brief(call_id, 128), name, parse_arguments(dig(call, "parameters")))]

    def tool_result(self, call: ToolCall, output: str, is_error: bool) -> tuple[str]:
        return (json.dumps({"type": "client_tool_result", "tool_call_id": call.call_id,
                            "result": output, "is_error": is_error}),)

    def _client_error(self, msg: dict) -> list[Event]:
        return [Notice(f"server reported an error: {brief(msg, 200)}", logging.WARNING)]


def _event_id(value: object) -> object:
    """Event ids compare as ints when they look like ints (servers send 7 or "7")."""
    return clean_id(value)


_HANDLERS = {
    "conversation_initiation_metadata": XunaProvider._metadata,
    "audio": XunaProvider._audio,
    "ping": XunaProvider._ping,
    "interruption": XunaProvider._interruption,
    "agent_response": XunaProvider._agent_response,
    "agent_response_correction": XunaProvider._correction,
    "user_transcript": XunaProvider._user_transcript,
    "client_tool_call": XunaProvider._tool_call,
    "client_error": XunaProvider._client_error,
    "error": XunaProvider._client_error,
}


DIALECT = Dialect("xuna", XunaSettings, XunaProvider)
