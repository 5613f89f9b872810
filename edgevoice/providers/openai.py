"""OpenAI Realtime API over WebSocket (also Azure OpenAI's realtime endpoint).

Facts and sources: ``docs/protocols/openai-realtime.md``. Sends the GA protocol (the beta
shape and header behind ``beta = yes``) and decodes both event namings
(``response.output_audio.delta`` and ``response.audio.delta``, transcripts likewise).
Audio is PCM16 at 24 kHz both ways. Turns are found by the server's VAD
(``server_vad`` or ``semantic_vad``). On a barge-in the session tells
:meth:`OpenAIProvider.interrupt_messages` how much of the agent's item reached the speaker;
it answers ``response.cancel`` (while a response is active) and
``conversation.item.truncate`` with that many milliseconds, so the model knows what the
user heard. Keys: an API key (``Authorization: Bearer`` or Azure's ``api-key`` header), or a
``token_url`` on the user's own server that answers with a short-lived client secret.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any, Sequence

from edgevoice import redact
from edgevoice.config.errors import Problem
from edgevoice.config.types import Boolean, Choice, Float, Integer, Secret, Url, key
from edgevoice.providers import token_server, tool_schemas
from edgevoice.providers.base import (AgentAudio, ConnectPlan, Dialect, Ended, Event,
                                      HttpRequest, HttpResponse, Interruption, Malformed,
                                      Notice, Outcome, Ready, ResponseDone, ToolCall,
                                      Transcript, brief, dig, parse_arguments, pcm_from_base64,
                                      TypedJsonProvider)
from edgevoice.providers.tool_schemas import ToolSchemas

RATE = 24000  # "Only a 24kHz sample rate is supported"
_BYTES_PER_MS = RATE * 2 // 1000
_MAX_TRACKED = 32  # items whose received audio is remembered (truncate needs the newest)
_AUDIO_DELTA = frozenset({"response.output_audio.delta", "response.audio.delta"})
_TRANSCRIPT_DONE = frozenset({"response.output_audio_transcript.done",
                              "response.audio_transcript.done"})
_QUIET = frozenset({  # known and not needed: skipped without a log line
    "response.output_audio_transcript.delta", "response.audio_transcript.delta",
    "response.output_text.delta", "response.text.delta", "response.output_text.done",
    "response.text.done", "response.output_audio.done", "response.audio.done",
    "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
    "conversation.item.added", "conversation.item.done", "conversation.item.created",
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.content_part.done", "response.function_call_arguments.delta",
    "conversation.item.input_audio_transcription.delta", "rate_limits.updated",
    "session.created", "conversation.item.truncated", "input_audio_buffer.cleared",
    "output_audio_buffer.started", "output_audio_buffer.stopped",
    "output_audio_buffer.cleared"})


@dataclass(frozen=True)
class OpenAISettings:
    """The [openai] section."""

    model: str = key("Realtime model (Azure: the deployment name).", "gpt-realtime")
    api_key: redact.Secret | None = key("API key (or set token_url).", None, Secret())
    token_url: str = key("Your own server's URL that answers a POST with a short-lived client "
                         "secret ({\"value\": \"ek_...\"} or {\"client_secret\": {\"value\": "
                         "...}}); used instead of api_key, fetched for every session.", "",
                         Url("http", "https"))
    token_key: redact.Secret | None = key("Bearer key this device shows token_url (empty: "
                                          "none).", None, Secret())
    url: str = key("WebSocket endpoint; ?model= is added unless the URL names a model or "
                   "deployment (Azure: wss://RESOURCE.openai.azure.com/openai/v1/realtime).",
                   "wss://api.openai.com/v1/realtime", Url("ws", "wss"))
    auth_header: str = key("How the key is sent: authorization (Bearer, OpenAI and Azure Entra "
                           "tokens) or api-key (Azure keys).", "authorization",
                           Choice("authorization", "api-key"))
    voice: str = key("Voice, e.g. marin, cedar, alloy (empty: the model's default).")
    instructions: str = key("System instructions for the model (empty: its default).")
    turn_detection: str = key("How the server finds the end of the user's turn.",
                              "server_vad", Choice("server_vad", "semantic_vad"))
    vad_threshold: float = key("server_vad: speech threshold 0 to 1 (empty: 0.5).",
                                      None, Float(0.0, 1.0))
    prefix_padding_ms: int = key("server_vad: audio kept before speech (empty: 300).",
                                        None, Integer(0, 5000))
    silence_duration_ms: int = key("server_vad: silence that ends a turn (empty: 500).",
                                          None, Integer(0, 10000))
    idle_timeout_ms: int = key("server_vad: ask for a response after this much "
                                      "silence (empty: never).", None, Integer(5000, 30000))
    eagerness: str = key("semantic_vad: how soon the model answers.", "auto",
                         Choice("auto", "low", "medium", "high"))
    interrupt_response: bool = key("The server stops its answer when the user starts "
                                   "talking.", True, Boolean())
    transcription_model: str = key("Model transcribing the user's audio for the history "
                                   "(Azure: a deployment; empty: off).",
                                   "gpt-4o-mini-transcribe")
    transcription_language: str = key("Language of the user's speech, e.g. en (empty: "
                                      "detected).")
    tool_schemas: tool_schemas.Declarations = key(
        "Absolute path of a JSON file declaring the [tools] functions to the model (see "
        "\"Function calls\").", tool_schemas.NONE, ToolSchemas())
    beta: bool = key("Speak the older beta protocol (OpenAI-Beta: realtime=v1) for old "
                     "deployments.", False, Boolean())

    def check(self) -> list[Problem]:
        return token_server.check("openai", self, "short-lived client secrets")


class OpenAIProvider(TypedJsonProvider):
    name = "openai"
    auth_hint = "check [openai] api_key (or the token server), model and url"
    mic_rate = RATE
    output_rate = RATE

    def __init__(self, settings, history: Sequence[str] = ()) -> None:
        self.settings = settings
        self.history = tuple(history)
        self._active = False  # a response is being generated
        self._ready = False   # session.updated came: our settings were taken
        self._received: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._calls_seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    # -- opening ----------------------------------------------------------------------------
    def bootstrap_request(self) -> HttpRequest | None:
        return token_server.request(self.settings, "client secret request")

    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        s = self.settings
        secret = token_server.credential(s, response, "openai", "client secret request",
                                         ("value",), ("client_secret", "value"))
        if s.auth_header == "api-key":
            headers = {"api-key": secret}
        else:
            headers = {"Authorization": f"Bearer {secret}"}
        if s.beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        messages = [json.dumps({"type": "session.update", "session": self.session_config()})]
        messages += self.history_messages()
        return ConnectPlan(self.ws_url(), headers, tuple(messages), stream_on_open=False,
                           secrets=(secret,))

    def ws_url(self) -> str:
        url = self.settings.url
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        if "model" in query or "deployment" in query:
            return url
        sep = "&" if urllib.parse.urlsplit(url).query else "?"
        return f"{url}{sep}model={urllib.parse.quote(self.settings.model, safe='')}"

    def session_config(self) -> dict[str, Any]:
        """The ``session`` of ``session.update``: GA shape, or the flat beta one."""
        s = self.settings
        turn: dict[str, Any] = {"type": s.turn_detection,
                                "interrupt_response": s.interrupt_response,
                                "create_response": True}
        if s.turn_detection == "semantic_vad":
            turn["eagerness"] = s.eagerness
        else:
            for name in ("threshold", "prefix_padding_ms", "silence_duration_ms",
                         "idle_timeout_ms"):
                value = getattr(s, "vad_" + name if name == "threshold" else name)
                if value is not None:
                    turn[name] = value
        transcription: dict[str, Any] | None = None
        if s.transcription_model:
            transcription = {"model": s.transcription_model}
            if s.transcription_language:
                transcription["language"] = s.transcription_language
        tools = [{"type": "function", "name": f.name, "description": f.description,
                  "parameters": f.parameters} for f in s.tool_schemas]
        if s.beta:
            session: dict[str, Any] = {"modalities": ["audio", "text"],
                                       "input_audio_format": "pcm16",
                                       "output_audio_format": "pcm16", "turn_detection": turn}
            if transcription:
                session["input_audio_transcription"] = transcription
            if s.voice:
                session["voice"] = s.voice
        else:
            audio_in: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": RATE},
                                        "turn_detection": turn}
            if transcription:
                audio_in["transcription"] = transcription
            audio_out: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": RATE}}
            if s.voice:
                audio_out["voice"] = s.voice
            session = {"type": "realtime", "model": s.model, "output_modalities": ["audio"],
                       "audio": {"input": audio_in, "output": audio_out}}
        if s.instructions:
            session["instructions"] = s.instructions
        if tools:
            session["tools"] = tools
            session["tool_choice"] = "auto"
        return session

    def history_messages(self) -> list[str]:
        """The recent user turns as user text items: a new session has lost the context."""
        return [json.dumps({"type": "conversation.item.create",
                            "item": {"type": "message", "role": "user",
                                     "content": [{"type": "input_text", "text": text}]}})
                for text in self.history]

    # -- sending ----------------------------------------------------------------------------
    def encode_audio(self, frame: bytes) -> tuple[str]:
        return ('{"type":"input_audio_buffer.append","audio":"'
                + base64.b64encode(frame).decode("ascii") + '"}',)

    def tool_result(self, call: ToolCall, output: str, is_error: bool) -> tuple[str, str]:
        if is_error:
            output = json.dumps({"error": output})
        return (json.dumps({"type": "conversation.item.create",
                            "item": {"type": "function_call_output", "call_id": call.call_id,
                                     "output": output}}),
                '{"type":"response.create"}')

    def interrupt_messages(self, response_id: Any, played_ms: float) -> list[str]:
        """``response.cancel`` while a response is active, and ``conversation.item.truncate``
        of the item ``response_id`` at ``played_ms`` when less than all of its audio was
        heard (never more than was received: the server refuses that)."""
        messages = []
        if self._active:
            self._active = False
            messages.append('{"type":"response.cancel"}')
        received = self._received.get(response_id) if isinstance(response_id, str) else None
        if received is not None:
            end_ms = max(0, min(int(played_ms), received // _BYTES_PER_MS))
            if end_ms < received // _BYTES_PER_MS:
                messages.append(json.dumps({"type": "conversation.item.truncate",
                                            "item_id": response_id, "content_index": 0,
                                            "audio_end_ms": end_ms}))
                self._received[response_id] = end_ms * _BYTES_PER_MS  # truncated once
        return messages

    # -- receiving --------------------------------------------------------------------------
    def decode_typed(self, kind: str, msg: dict) -> list[Event]:
        if kind in _AUDIO_DELTA:
            return self._audio(msg)
        if kind in _TRANSCRIPT_DONE:
            text = msg.get("transcript")
            return [Transcript("agent", text)] if isinstance(text, str) else [
                Malformed(f"{kind} without transcript")]
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return getattr(self, handler)(msg)
        if kind in _QUIET:
            return []
        return [Notice(f"ignoring event {kind[:60]!r}", logging.DEBUG)]

    def _audio(self, msg: dict) -> list[Event]:
        item = msg.get("item_id")
        item_id = item[:128] if isinstance(item, str) and item else None
        events = pcm_from_base64(msg.get("delta"), "audio delta", item_id)
        audio = events[-1]
        if item_id is not None and isinstance(audio, AgentAudio):
            self._active = True
            received = self._received
            received[item_id] = received.get(item_id, 0) + len(audio.pcm)
            if len(received) > _MAX_TRACKED:
                received.popitem(last=False)
        return events

    def _session_updated(self, msg: dict) -> list[Event]:
        fmt = dig(msg, "session", "audio", "output", "format")
        rate = dig(fmt, "rate")
        events: list[Event] = []
        if isinstance(fmt, dict) and (fmt.get("type") not in (None, "audio/pcm")
                                      or rate not in (None, RATE)):
            events.append(Notice(f"the server chose output format {brief(fmt, 80)}; this "
                                 "device plays 24 kHz PCM", logging.ERROR))
        session_id = dig(msg, "session", "id")
        self._ready = True
        events.append(Ready(brief(session_id, 128) if isinstance(session_id, str) else None,
                            "session updated"))
        return events

    def _response_created(self, msg: dict) -> list[Event]:
        self._active = True
        return []

    def _response_done(self, msg: dict) -> list[Event]:
        self._active = False
        status = dig(msg, "response", "status")
        events: list[Event] = [ResponseDone()]
        if status == "failed":
            error = dig(msg, "response", "status_details", "error")
            events.append(Notice(f"the agent's response failed: {brief(error, 200)}",
                                 logging.WARNING))
        elif status == "cancelled":
            reason = dig(msg, "response", "status_details", "reason")
            events.append(Notice(f"response cancelled ({brief(reason, 40)})", logging.DEBUG))
        return events

    def _speech_started(self, msg: dict) -> list[Event]:
        return [Interruption(None)]  # the agent item playing now: the session knows it

    def _user_transcript(self, msg: dict) -> list[Event]:
        text = msg.get("transcript")
        if not isinstance(text, str):
            return [Malformed("input audio transcription without transcript")]
        return [Transcript("user", text)] if text.strip() else []

    def _transcription_failed(self, msg: dict) -> list[Event]:
        return [Notice(f"transcribing the user failed: {brief(dig(msg, 'error', 'message'), 120)}",
                       logging.DEBUG)]

    def _function_call(self, msg: dict) -> list[Event]:
        call_id, name = msg.get("call_id"), msg.get("name")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str):
            return [Malformed("function call without call_id or name")]
        call_id = call_id[:128]
        if call_id in self._calls_seen:
            return []
        self._calls_seen[call_id] = None
        while len(self._calls_seen) > 64:
            self._calls_seen.popitem(last=False)
        return [ToolCall(call_id, name, parse_arguments(msg.get("arguments")))]

    def _error(self, msg: dict) -> list[Event]:
        error = msg.get("error")
        code, text = dig(error, "code"), dig(error, "message")
        line = f"server error {brief(code, 60)}: {brief(text, 200)}"
        if code == "response_cancel_not_active":
            return [Notice(line, logging.DEBUG)]  # the server had cancelled by itself
        if code == "session_expired":
            return [Ended(Outcome("the session reached its maximum duration; a new one "
                                  "starts", "now"))]
        if code == "invalid_api_key":
            return [Ended(Outcome("the server rejected the key (invalid_api_key): check "
                                  "[openai] api_key", "auth"))]
        if not self._ready:  # session.update refused: the settings are wrong, not the link
            return [Ended(Outcome(f"the server refused this device's [openai] settings: "
                                  f"{brief(text, 200)} ({brief(dig(error, 'param'), 60)})",
                                  "long"))]
        return [Notice(line, logging.WARNING)]

    def close_outcome(self, code: int | None, reason: str) -> Outcome:
        if "invalid_api_key" in reason or (code == 3000 and "auth" in reason.lower()):
            return Outcome(f"the server rejected the key ({code} {reason}): check [openai] "
                           "api_key or the token server", "auth")
        if code == 1001 and "maximum duration" in reason:
            return Outcome(f"the session reached its maximum duration ({reason}); a new one "
                           "starts", "now")
        return super().close_outcome(code, reason)



_HANDLERS = {
    "session.updated": "_session_updated",
    "response.created": "_response_created",
    "response.done": "_response_done",
    "input_audio_buffer.speech_started": "_speech_started",
    "conversation.item.input_audio_transcription.completed": "_user_transcript",
    "conversation.item.input_audio_transcription.failed": "_transcription_failed",
    "response.function_call_arguments.done": "_function_call",
    "error": "_error",
}


DIALECT = Dialect("openai", OpenAISettings, OpenAIProvider, takes_history=True)
