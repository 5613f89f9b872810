"""Agent dialects. :func:`make_provider` builds the one the config names."""

from __future__ import annotations

from edgevoice.providers.base import Provider
from edgevoice.providers.voiceapi import VoiceApiProvider
from edgevoice.providers.xuna import XunaProvider

_PROVIDERS = {"xuna": XunaProvider, "voiceapi": VoiceApiProvider}


def make_provider(config) -> Provider:
    """A fresh provider for the configured dialect (one per session: providers hold
    per-session protocol state such as the announced output rate)."""
    return _PROVIDERS[config.agent.provider](config.provider_settings())
