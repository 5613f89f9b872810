"""The ElevenLabs Agents WebSocket protocol, shared by ``elevenlabs`` and ``xuna`` (which
mirrors it).

Protocol facts: ``docs/protocols/elevenlabs.md``. A public agent opens with its
``agent_id`` in the URL; a private one with a signed URL fetched with the ``xi-api-key``
header (a fresh one for every session). The first message is
``conversation_initiation_client_data`` (overrides the user configured); the server
announces its audio formats in ``conversation_initiation_metadata``; every ``ping`` is
answered with a ``pong``; audio carries a sequential ``event_id`` so that audio of an
interrupted response is dropped by id; ``client_tool_call`` is answered with
``client_tool_result``. The dialect modules add their section and what differs.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from typing import Any

from edgevoice.providers.base import (brief, ConnectPlan, Event, HttpRequest, HttpResponse,
                                      Interruption, Malformed, Notice, Outcome, OutputFormat,
                                      Ready, Reply, SessionFailed, ToolCall,
                                      Transcript, clean_id, dig, http_failure, parse_arguments,
                                      pcm_from_base64, TypedJsonProvider)

SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
_IGNORED = frozenset({"vad_score", "internal_tentative_agent_response", "agent_chat_response_part",
                      "internal_turn_probability", "mcp_connection_status", "agent_tool_response",
                      "tentative_user_transcript", "agent_tool_request", "context_usage",
                      "asr_initiation_metadata", "agent_typing"})


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query."""
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


class ConvAiProvider(TypedJsonProvider):
    """The shared protocol. ``settings`` has at least ``agent_id``, ``api_key``, ``url``,
    ``api_url``, ``prompt``, ``first_message``, ``language`` and ``voice_id``."""

    name = "convai"
    chunk_form = "user_audio_chunk"  # or "audio_event" (the XUNA seed's mic message)

    def __init__(self, settings) -> None:
        self.settings = settings
        self.mic_rate = 16000
        self.output_rate = 16000

    # -- opening ----------------------------------------------------------------------------
    def bootstrap_request(self) -> HttpRequest | None:
        if not self.settings.api_key:
            return None
        url = with_query(self.settings.api_url.rstrip("/") + SIGNED_URL_PATH,
                         agent_id=self.settings.agent_id)
        return HttpRequest("GET", url, {"xi-api-key": self.settings.api_key.reveal()},
                           what="signed URL request")

    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        if response is None:
            url = with_query(self.settings.url, agent_id=self.settings.agent_id)
            secrets: tuple[str, ...] = ()
        else:
            if response.status != 200:
                raise http_failure(response, "signed URL request",
                                   f"the [{self.name}] api_key is wrong or has no access to "
                                   "this agent")
            url = dig(response.body, "signed_url")
            if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
                raise SessionFailed(Outcome("signed URL response has no usable signed_url"))
            secrets = (url,) + tuple(v for _, v in urllib.parse.parse_qsl(
                urllib.parse.urlsplit(url).query))
        return ConnectPlan(url, {}, self.first_messages(), stream_on_open=True,
                           secrets=secrets)

    def first_messages(self) -> tuple[str, ...]:
        return (json.dumps(self.initiation()),)

    def initiation(self) -> dict[str, Any]:
        """``conversation_initiation_client_data`` with the overrides that are set (only
        those: the agent refuses overrides its security settings do not allow)."""
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
        return msg

    # -- sending ----------------------------------------------------------------------------
    def encode_audio(self, frame: bytes) -> tuple[str]:
        b64 = base64.b64encode(frame).decode("ascii")
        if self.chunk_form == "user_audio_chunk":
            return ('{"user_audio_chunk":"' + b64 + '"}',)
        return ('{"type":"audio","audio_event":{"audio_base_64":"' + b64 + '"}}',)

    def user_activity(self) -> str:
        return '{"type":"user_activity"}'

    def tool_result(self, call: ToolCall, output: str, is_error: bool) -> tuple[str]:
        return (json.dumps({"type": "client_tool_result", "tool_call_id": call.call_id,
                            "result": output, "is_error": is_error}),)

    # -- receiving --------------------------------------------------------------------------
    def decode_typed(self, kind: str, msg: dict) -> list[Event]:
        handler = _HANDLERS.get(kind)
        if handler is None:
            if kind in _IGNORED:
                return []
            return [Notice(f"ignoring message type {kind[:40]!r}", logging.DEBUG)]
        return getattr(self, handler)(msg)

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
        events += self._input_format(dig(meta, "user_input_audio_format"))
        events.append(Ready(brief(conv_id, 128) if conv_id is not None else None,
                            f"output {self.output_rate} Hz"))
        return events

    def _input_format(self, fmt: Any) -> list[Event]:
        """The mic is sent at 16 kHz; another announced input format is a misconfigured
        agent (said once, loudly)."""
        if fmt is None or parse_audio_format(fmt) == self.mic_rate:
            return []
        return [Notice(f"the agent expects user audio as {brief(fmt, 30)!r}, but this device "
                       f"sends pcm_{self.mic_rate}: set the agent's user input audio format to "
                       f"pcm_{self.mic_rate}", logging.ERROR)]

    def _audio(self, msg: dict) -> list[Event]:
        event = msg.get("audio_event")
        return pcm_from_base64(dig(event, "audio_base_64"), "audio message",
                               clean_id(dig(event, "event_id")))

    def _ping(self, msg: dict) -> list[Event]:
        event_id = dig(msg, "ping_event", "event_id")
        if event_id is None:
            event_id = msg.get("event_id")
        if event_id is None:
            return [Malformed("ping without event_id")]
        return [Reply(json.dumps({"type": "pong", "event_id": event_id}))]

    def _interruption(self, msg: dict) -> list[Event]:
        return [Interruption(clean_id(dig(msg, "interruption_event", "event_id")))]

    def _agent_response(self, msg: dict) -> list[Event]:
        text = dig(msg, "agent_response_event", "agent_response")
        return [Transcript("agent", text)] if isinstance(text, str) else [
            Malformed("agent_response without agent_response_event.agent_response")]

    def _correction(self, msg: dict) -> list[Event]:
        text = dig(msg, "agent_response_correction_event", "corrected_agent_response")
        if not isinstance(text, str):  # the older public spec's naming
            text = dig(msg, "correction_event", "corrected_response")
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

    def _client_error(self, msg: dict) -> list[Event]:
        return [Notice(f"server reported an error: {brief(msg, 200)}", logging.WARNING)]


_HANDLERS = {
    "conversation_initiation_metadata": "_metadata",
    "audio": "_audio",
    "ping": "_ping",
    "interruption": "_interruption",
    "agent_response": "_agent_response",
    "agent_response_correction": "_correction",
    "user_transcript": "_user_transcript",
    "client_tool_call": "_tool_call",
    "client_error": "_client_error",
    "error": "_client_error",
}
