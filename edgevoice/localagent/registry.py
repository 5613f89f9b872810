"""The local agent's dialects, one class each, by the names the CLI offers.

``arguments.DIALECT_NAMES`` is the list of names (argparse reads it without loading the
server libraries); this module maps each to its :class:`~edgevoice.localagent.dialect.Dialect`
class. A new dialect is one module with its Dialect subclass, added here and to that list.
"""

from __future__ import annotations

from .arguments import DIALECT_NAMES
from .dialect import Dialect
from .elevenlabs import ElevenLabsDialect
from .gemini import GeminiDialect
from .napster import NapsterDialect
from .navtalk import NavTalkDialect
from .openai import OpenAIDialect
from .voiceapi import VoiceApiDialect
from .xuna import XunaDialect

#: Dialect name -> its class.
DIALECTS: dict[str, type[Dialect]] = {
    dialect.name: dialect
    for dialect in (ElevenLabsDialect, GeminiDialect, NapsterDialect, NavTalkDialect,
                    OpenAIDialect, VoiceApiDialect, XunaDialect)
}


def dialect_class(name: str) -> type[Dialect]:
    """The class of the dialect called ``name``; ValueError naming the choices otherwise."""
    try:
        return DIALECTS[name]
    except KeyError:
        choices = ", ".join(DIALECT_NAMES)
        raise ValueError(f"unknown dialect {name!r}; choose one of {choices}") from None
