"""Agent dialects. :func:`make_provider` builds the one the config names."""

from __future__ import annotations

from typing import Sequence

from edgevoice.providers.base import Provider
from edgevoice.providers.napster import NapsterProvider
from edgevoice.providers.navtalk import NavTalkProvider
from edgevoice.providers.voiceapi import VoiceApiProvider
from edgevoice.providers.xuna import XunaProvider


def make_provider(config, history: Sequence[str] = ()) -> Provider:
    """A fresh provider for the configured dialect (one per session: providers hold
    per-session protocol state such as the announced output rate). ``history``: recent
    user turns, for dialects that take them at session start (navtalk)."""
    name = config.agent.provider
    settings = config.provider_settings()
    if name == "xuna":
        return XunaProvider(settings)
    if name == "voiceapi":
        return VoiceApiProvider(settings)
    if name == "napster":
        return NapsterProvider(settings)
    if name == "navtalk":
        return NavTalkProvider(settings, history)
    raise ValueError(f"unknown provider {name!r}")
