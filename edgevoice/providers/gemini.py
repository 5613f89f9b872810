"""Gemini Live API over WebSocket (Gemini Developer API).

Facts and sources: ``docs/protocols/gemini-live.md``. The first message is ``setup``
(model, system instruction, voice, tools, transcription, the server VAD's settings,
session resumption and context compression); ``setupComplete`` opens the mic. Mic audio
goes as ``realtimeInput.audio`` at 16 kHz; the model's audio comes in ``serverContent``
at the rate its ``mimeType`` names (24 kHz). Gemini audio has no ids, so this provider
numbers the model's turns: an ``interrupted`` turn's late audio is dropped by that number.
``toolCall`` is answered with ``toolResponse``. The newest resumption handle is kept in the
daemon's ``carry`` dict, so the next session (after ``goAway``, a dropped connection or a
restart) resumes the same conversation; a refused handle (close 1007) is forgotten.
Keys are read in camelCase and snake_case; frames may be text or binary JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from edgevoice import redact
from edgevoice.config.errors import Problem
from edgevoice.config.types import Boolean, Choice, Integer, Secret, Url, key
from edgevoice.providers import token_server, tool_schemas
from edgevoice.providers.base import (ConnectPlan, Dialect, Ended, Event, HttpRequest,
                                      HttpResponse, Interruption, Malformed, Notice, Outcome,
                                      OutputFormat, Provider, Ready, ResponseDone, ToolCall,
                                      Transcript, brief, dig, loads, parse_arguments,
                                      pcm_from_base64)
from edgevoice.providers.tool_schemas import ToolSchemas

MIC_RATE = 16000
HANDLE_KEY = "gemini_resumption_handle"  # in the daemon's carry dict
BUSY_RETRY_S = 30.0
_RATE = re.compile(r"rate=(\d{4,6})")
_AUDIO_PREFIX = '{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"'
_SENSITIVITY = {"high": "HIGH", "low": "LOW"}


@dataclass(frozen=True)
class GeminiSettings:
    """The [gemini] section."""

    model: str = key("Live model.", "models/gemini-2.5-flash-native-audio-preview-12-2025")
    api_key: redact.Secret | None = key("API key (x-goog-api-key), or set token_url.", None,
                                        Secret())
    token_url: str = key("Your own server's URL that answers a POST with an ephemeral token "
                         "({\"name\": \"auth_tokens/...\"}); used instead of api_key, fetched "
                         "for every session.", "", Url("http", "https"))
    token_key: redact.Secret | None = key("Bearer key this device shows token_url (empty: "
                                          "none).", None, Secret())
    url: str = key("WebSocket endpoint used with api_key.",
                   "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage."
                   "v1beta.GenerativeService.BidiGenerateContent", Url("ws", "wss"))
    token_ws_url: str = key("WebSocket endpoint used with ephemeral tokens.",
                            "wss://generativelanguage.googleapis.com/ws/google.ai."
                            "generativelanguage.v1alpha.GenerativeService."
                            "BidiGenerateContentConstrained", Url("ws", "wss"))
    voice: str = key("Voice, e.g. Kore, Puck, Aoede (empty: the model's default).")
    system_instruction: str = key("System instruction for the model (empty: none).")
    transcription: bool = key("Ask for transcripts of both sides (for the history).", True,
                              Boolean())
    start_sensitivity: str = key("Server VAD: how readily speech is detected.", "default",
                                 Choice("default", "high", "low"))
    end_sensitivity: str = key("Server VAD: how readily the end of speech is detected.",
                               "default", Choice("default", "high", "low"))
    prefix_padding_ms: int = key("Server VAD: speech needed before a turn starts "
                                        "(empty: the default).", None, Integer(0, 5000))
    silence_duration_ms: int = key("Server VAD: silence that ends a turn (empty: the "
                                          "default).", None, Integer(0, 10000))
    resume: bool = key("Resume the conversation after a reconnect (session resumption "
                       "handles).", True, Boolean())
    compression: bool = key("Sliding-window context compression, so a conversation may "
                            "outlast 15 minutes.", True, Boolean())
    tool_schemas: tool_schemas.Declarations = key(
        "Absolute path of a JSON file declaring the [tools] functions to the model (see "
        "\"Function calls\").", tool_schemas.NONE, ToolSchemas())

    def check(self) -> list[Problem]:
        return token_server.check("gemini", self, "ephemeral tokens")


def field(obj: Any, camel: str) -> Any:
    """``obj[camel]``, or its snake_case spelling (both are proto JSON)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    if value is None:
        value = obj.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))
    return value


class GeminiProvider(Provider):
    name = "gemini"
    auth_hint = "check [gemini] api_key (or the token server)"
    mic_rate = MIC_RATE

    def __init__(self, settings, carry: dict | None = None) -> None:
        self.settings = settings
        self.carry = {} if carry is None else carry
        self.output_rate = 24000
        self.turn = 0            # number of the model's current turn (ids its audio)
        self._in_turn = False    # the model is generating or its turn is not complete
        self._going_away = False
        self._resuming = False   # this session was opened with a handle
        self._user_text: list[str] = []
        self._agent_text: list[str] = []

    # -- opening ----------------------------------------------------------------------------
    def bootstrap_request(self) -> HttpRequest | None:
        return token_server.request(self.settings, "ephemeral token request")

    def connect_plan(self, response: HttpResponse | None) -> ConnectPlan:
        s = self.settings
        secret = token_server.credential(s, response, "gemini", "ephemeral token request",
                                         ("name",), ("token",))
        if response is None:
            url, headers = s.url, {"x-goog-api-key": secret}
        else:
            url, headers = s.token_ws_url, {"Authorization": f"Token {secret}"}
        handle = self.carry.get(HANDLE_KEY) if s.resume else None
        self._resuming = bool(handle)
        secrets = (secret,) + ((handle,) if handle else ())
        note = "resuming the previous conversation" if handle else ""
        return ConnectPlan(url, headers, (json.dumps({"setup": self.setup(handle)}),),
                           stream_on_open=False, secrets=secrets, note=note)

    def setup(self, handle: str | None = None) -> dict[str, Any]:
        s = self.settings
        model = s.model if s.model.startswith(("models/", "tunedModels/")) else \
            f"models/{s.model}"
        generation: dict[str, Any] = {"responseModalities": ["AUDIO"]}
        if s.voice:
            generation["speechConfig"] = {
                "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": s.voice}}}
        setup: dict[str, Any] = {"model": model, "generationConfig": generation}
        if s.system_instruction:
            setup["systemInstruction"] = {"parts": [{"text": s.system_instruction}]}
        if s.tool_schemas:
            setup["tools"] = [{"functionDeclarations": [
                {"name": f.name, "description": f.description,
                 "parametersJsonSchema": f.parameters} for f in s.tool_schemas]}]
        if s.transcription:
            setup["inputAudioTranscription"] = {}
            setup["outputAudioTranscription"] = {}
        vad: dict[str, Any] = {}
        for name, value in (("start", s.start_sensitivity), ("end", s.end_sensitivity)):
            if value in _SENSITIVITY:
                vad[f"{name}OfSpeechSensitivity"] = \
                    f"{name.upper()}_SENSITIVITY_{_SENSITIVITY[value]}"
        if s.prefix_padding_ms is not None:
            vad["prefixPaddingMs"] = s.prefix_padding_ms
        if s.silence_duration_ms is not None:
            vad["silenceDurationMs"] = s.silence_duration_ms
        if vad:
            setup["realtimeInputConfig"] = {"automaticActivityDetection": vad}
        if s.resume:
            setup["sessionResumption"] = {"handle": handle} if handle else {}
        if s.compression:
            setup["contextWindowCompression"] = {"slidingWindow": {}}
        return setup

    # -- sending ----------------------------------------------------------------------------
    def encode_audio(self, frame: bytes) -> tuple[str]:
        return (_AUDIO_PREFIX + base64.b64encode(frame).decode("ascii") + '"}}}',)

    def tool_result(self, call: ToolCall, output: str, is_error: bool) -> tuple[str]:
        return (json.dumps({"toolResponse": {"functionResponses": [
            {"id": call.call_id, "name": call.name,
             "response": {"error" if is_error else "result": output}}]}}),)

    # -- receiving --------------------------------------------------------------------------
    def decode(self, message) -> list[Event]:
        if isinstance(message, (bytes, bytearray)):  # the server's JSON may come binary
            try:
                message = bytes(message).decode("utf-8")
            except UnicodeDecodeError:
                return [Malformed("binary message that is not UTF-8 JSON")]
        try:
            msg = loads(message)
        except ValueError as exc:
            return [Malformed(f"not JSON ({brief(str(exc), 40)}): {message[:60]!r}")]
        del message
        if not isinstance(msg, dict):
            return [Malformed(f"JSON but not an object: {type(msg).__name__}")]
        events: list[Event] = []
        known = False
        for name, handler in _PARTS:
            part = field(msg, name)
            if part is not None:
                known = True
                events += getattr(self, handler)(part)
        if not known:
            keys = ", ".join(brief(k, 30) for k in list(msg)[:3])
            events.append(Notice(f"ignoring message with {keys or 'no fields'}", logging.DEBUG))
        return events

    def _setup_complete(self, part: Any) -> list[Event]:
        return [Ready(None, "resumed" if self._resuming else "setup complete")]

    def _server_content(self, content: Any) -> list[Event]:
        if not isinstance(content, dict):
            return [Malformed("serverContent is not an object")]
        events: list[Event] = []
        text = dig(field(content, "inputTranscription"), "text")
        if isinstance(text, str):
            self._user_text.append(text)
        text = dig(field(content, "outputTranscription"), "text")
        if isinstance(text, str):
            self._agent_text.append(text)
        parts = dig(field(content, "modelTurn"), "parts")
        if parts is not None:
            if not isinstance(parts, list):
                return [Malformed("modelTurn.parts is not a list")]
            if not self._in_turn:
                self._in_turn = True
                events += self._flush_text("user", self._user_text)
            for part in parts:
                events += self._part(part)
        if field(content, "interrupted"):
            events.append(Interruption(self.turn))
        if field(content, "turnComplete"):
            events += self._turn_complete()
        return events

    def _part(self, part: Any) -> list[Event]:
        inline = field(part, "inlineData")
        if inline is None:
            return []  # text or thought parts: the audio carries the answer
        mime = field(inline, "mimeType")
        if not isinstance(mime, str) or not mime.startswith("audio/pcm"):
            return [Malformed(f"model audio of type {brief(mime, 40)!r}")]
        events: list[Event] = []
        match = _RATE.search(mime)
        rate = int(match.group(1)) if match else 24000
        if rate != self.output_rate and 8000 <= rate <= 96000:
            self.output_rate = rate
            events.append(OutputFormat(rate))
        return events + pcm_from_base64(field(inline, "data"), "model audio", self.turn)

    def _turn_complete(self) -> list[Event]:
        events: list[Event] = self._flush_text("user", self._user_text)
        events += self._flush_text("agent", self._agent_text)
        events.append(ResponseDone())
        self.turn += 1
        self._in_turn = False
        if self._going_away:
            events.append(self._go())
        return events

    @staticmethod
    def _flush_text(role: str, pieces: list[str]) -> list[Event]:
        text = "".join(pieces).strip()
        pieces.clear()
        return [Transcript(role, text)] if text else []

    def _tool_call(self, part: Any) -> list[Event]:
        calls = field(part, "functionCalls")
        if not isinstance(calls, list):
            return [Malformed("toolCall without functionCalls")]
        events: list[Event] = []
        for call in calls:
            call_id, name = field(call, "id"), field(call, "name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str):
                events.append(Malformed("function call without id or name"))
                continue
            events.append(ToolCall(call_id[:128], name, parse_arguments(field(call, "args"))))
        return events

    def _tool_cancellation(self, part: Any) -> list[Event]:
        ids = field(part, "ids")
        return [Notice(f"the model cancelled function call(s) {brief(ids, 120)}; their "
                       "results will be ignored", logging.INFO)]

    def _go_away(self, part: Any) -> list[Event]:
        self._going_away = True
        left = brief(field(part, "timeLeft"), 20)
        events: list[Event] = [Notice(f"the server will close this connection in {left}; "
                                      "reconnecting when the agent's turn ends")]
        if not self._in_turn:
            events.append(self._go())
        return events

    def _go(self) -> Ended:
        how = "resuming the conversation" if self.carry.get(HANDLE_KEY) else "a new session"
        return Ended(Outcome(f"the server is closing this connection (goAway); {how}", "now"))

    def _resumption(self, part: Any) -> list[Event]:
        handle = field(part, "newHandle")
        if field(part, "resumable") is not False and isinstance(handle, str) and handle:
            redact.register(handle)
            self.carry[HANDLE_KEY] = handle
        return []

    def _usage(self, part: Any) -> list[Event]:
        return [Notice(f"tokens used: {brief(field(part, 'totalTokenCount'), 20)}",
                       logging.DEBUG)]

    def close_outcome(self, code: int | None, reason: str) -> Outcome:
        shown = f"{code}{', ' + reason if reason else ''}"
        if code == 1007 and self._resuming:
            self.carry.pop(HANDLE_KEY, None)
            return Outcome(f"the server refused to resume the conversation ({shown}); a new "
                           "one starts", "now")
        if "api key" in reason.lower() or "permission" in reason.lower():
            return Outcome(f"the server refused the key ({shown}): check [gemini] api_key or "
                           "the token server", "auth")
        if code == 1011 and "RESOURCE_EXHAUSTED" in reason:
            return Outcome(f"Gemini quota or session limit reached ({shown})", "later",
                           BUSY_RETRY_S)
        if code in (1007, 1008):
            return Outcome(f"the server refused the setup ({shown}): check [gemini] model and "
                           "the settings it allows", "long")
        if self._going_away:
            return Outcome(f"the server closed this connection after goAway ({shown})", "now")
        return super().close_outcome(code, reason)



_PARTS = (("setupComplete", "_setup_complete"), ("serverContent", "_server_content"),
          ("toolCall", "_tool_call"), ("toolCallCancellation", "_tool_cancellation"),
          ("goAway", "_go_away"), ("sessionResumptionUpdate", "_resumption"),
          ("usageMetadata", "_usage"))


DIALECT = Dialect("gemini", GeminiSettings, GeminiProvider, keeps_state=True)
