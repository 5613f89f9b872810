"""XUNA AI Conversational AI (mirrors ElevenLabs Conversational AI).

Spec: ``shared/seeds/003_…`` and ``shared/protocols.md`` §1. The protocol is shared with
``elevenlabs`` (``edgevoice.providers.convai``); this module holds the ``[xuna]`` section
and what XUNA does differently: the seed's mic message (``audio_event``) unless
``audio_form`` asks for the ElevenLabs form. Accepts the ElevenLabs variants on receive
(ping event id at top level, string event ids).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgevoice import redact
from edgevoice.config.errors import Problem, missing
from edgevoice.config.types import Choice, Secret, Url, key
from edgevoice.providers.base import Dialect
from edgevoice.providers.convai import ConvAiProvider, parse_audio_format

__all__ = ["DIALECT", "XunaProvider", "XunaSettings", "parse_audio_format"]


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


class XunaProvider(ConvAiProvider):
    name = "xuna"

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.chunk_form = settings.audio_form


DIALECT = Dialect("xuna", XunaSettings, XunaProvider)
