"""ElevenLabs Agents (Conversational AI) over WebSocket.

Facts and sources: ``docs/protocols/elevenlabs.md``. The protocol is shared with ``xuna``
(``edgevoice.providers.convai``); this module adds what ElevenLabs documents beyond the
XUNA seed: ``user_audio_chunk`` mic messages, dynamic variables, a user id and more
overrides in the initiation message, a ``contextual_update`` with the device's context at
session start, the nested ``error_event`` and the close codes that say what to do next.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from edgevoice import redact
from edgevoice.config.errors import Problem, missing
from edgevoice.config.types import Float, Json, Secret, Url, key
from edgevoice.providers.base import (Dialect, Event, Notice, Outcome, brief, dig)
from edgevoice.providers.convai import ConvAiProvider

LONG_WAIT_TYPES = frozenset({"override_error", "missing_dynamic_variable"})


@dataclass(frozen=True)
class ElevenLabsSettings:
    """The [elevenlabs] section."""

    agent_id: str = key("The agent's id (ElevenLabs dashboard, Agents).")
    api_key: redact.Secret | None = key(
        "API key (xi-api-key); when set, a signed URL is fetched for every session (private "
        "agents). Public agents need none.", None, Secret())
    url: str = key("WebSocket endpoint (public agents).",
                   "wss://api.elevenlabs.io/v1/convai/conversation", Url("ws", "wss"))
    api_url: str = key("REST base URL (signed URLs), e.g. https://api.eu.residency."
                       "elevenlabs.io for EU residency.", "https://api.elevenlabs.io",
                       Url("http", "https"))
    prompt: str = key("Override the agent's prompt (empty: agent default; the override must "
                      "be allowed in the agent's security settings, as every override).")
    first_message: str = key("Override the agent's first message (empty: agent default).")
    language: str = key("Override the conversation language, e.g. en (empty: agent default).")
    llm: str = key("Override the agent's LLM, e.g. gpt-4o-mini (empty: agent default).")
    voice_id: str = key("Override the TTS voice id (empty: agent default).")
    tts_stability: float = key("Override the voice's stability, 0 to 1 (empty: "
                                      "agent default).", None, Float(0.0, 1.0))
    tts_speed: float = key("Override the speaking speed, 0.7 to 1.2 (empty: agent "
                                  "default).", None, Float(0.7, 1.2))
    tts_similarity_boost: float = key("Override the voice's similarity boost, 0 to 1 "
                                             "(empty: agent default).", None, Float(0.0, 1.0))
    dynamic_variables: dict | None = key(
        'JSON object of the agent\'s dynamic variables, e.g. {"user_name": "Ada"}.', None,
        Json())
    user_id: str = key("Your id for this device or user (shown with the conversation).")
    context: str = key("Sent to the agent as a contextual update when a session starts, e.g. "
                       "'The device is in the kitchen.' (empty: none).")

    def check(self) -> list[Problem]:
        problems = missing("elevenlabs", [
            (not self.agent_id, "agent_id",
             "the elevenlabs provider needs the agent's id (agent_id = ...)")])
        for name, value in (self.dynamic_variables or {}).items():
            if isinstance(value, (dict, list)) or value is None:
                problems.append(Problem("elevenlabs", "dynamic_variables",
                                        f"{name!r} must be text, a number or true/false"))
        return problems


class ElevenLabsProvider(ConvAiProvider):
    name = "elevenlabs"
    chunk_form = "user_audio_chunk"

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self._error_type: str | None = None  # the last error_event.error_type
        self._error_text = ""  # … and its message, for the close that follows

    def initiation(self) -> dict[str, Any]:
        s = self.settings
        msg = super().initiation()
        override = msg.get("conversation_config_override", {})
        if s.llm:
            override.setdefault("agent", {}).setdefault("prompt", {})["llm"] = s.llm
        tts = {name: value for name, value in (("stability", s.tts_stability),
                                               ("speed", s.tts_speed),
                                               ("similarity_boost", s.tts_similarity_boost))
               if value is not None}
        if tts:
            override.setdefault("tts", {}).update(tts)
        if override:
            msg["conversation_config_override"] = override
        if s.dynamic_variables:
            msg["dynamic_variables"] = dict(s.dynamic_variables)
        if s.user_id:
            msg["user_id"] = s.user_id
        return msg

    def first_messages(self) -> tuple[str, ...]:
        messages = super().first_messages()
        if self.settings.context:
            messages += (json.dumps({"type": "contextual_update",
                                     "text": self.settings.context}),)
        return messages

    def _client_error(self, msg: dict) -> list[Event]:
        event = msg.get("error_event")
        kind = dig(event, "error_type")
        self._error_type = kind if isinstance(kind, str) else None
        text = dig(event, "message") or dig(event, "reason") or msg.get("message")
        self._error_text = brief(text, 200) if text is not None else ""
        if text is None:
            return super()._client_error(msg)
        code = dig(event, "code")
        label = " ".join(brief(v, 40) for v in (kind, code) if v is not None)
        return [Notice(f"server error{' ' + label if label else ''}: {brief(text, 200)}",
                       logging.WARNING)]

    def close_outcome(self, code: int | None, reason: str) -> Outcome:
        what = f"{self._error_type or ''} {reason}".strip()
        if code == 1008 and (self._error_type in LONG_WAIT_TYPES or "override" in reason):
            return Outcome(f"the agent refused this device's settings (1008 {what}): allow the "
                           "overrides in the agent's security settings, or remove them and "
                           "the dynamic variables it does not define from [elevenlabs]", "long")
        if code == 1008 and self._error_type is None and "auth" in reason.lower():
            return Outcome(f"closed 1008 ({reason}): check [elevenlabs] agent_id and api_key",
                           "auth")
        if code == 1002 and "quota" in f"{what} {self._error_text}".lower():
            return Outcome(f"ElevenLabs quota used up (1002 {what})", "long")
        if code == 1000:
            return Outcome(f"the agent ended the conversation{' (' + what + ')' if what else ''}")
        return super().close_outcome(code, reason)


DIALECT = Dialect("elevenlabs", ElevenLabsSettings, ElevenLabsProvider)
