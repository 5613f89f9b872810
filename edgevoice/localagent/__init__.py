"""A local stand-in for the cloud voice agents edgevoice talks to.

Speaks the ``xuna``, ``voiceapi``, ``napster``, ``navtalk``, ``elevenlabs``, ``openai`` and
``gemini`` dialects on loopback (WebSocket + REST), echoes each user utterance back as the
agent's reply, and can misbehave on request. It is written from the protocol specs alone
and shares no code with the daemon's providers.

Each dialect is one :class:`Dialect` subclass (``xuna.XunaDialect``...) registered in
:mod:`.registry` under its name in ``arguments.DIALECT_NAMES``; it sees the agent only
through a :class:`DialectContext` (options, token store, event log, ids and counters).

    from edgevoice.localagent import LocalAgent, AgentOptions
    with LocalAgent("voiceapi", AgentOptions(barge_in_ms=200)) as agent:
        print(agent.config_values())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["AgentOptions", "Dialect", "DialectContext", "Event", "LocalAgent"]

if TYPE_CHECKING:
    from .context import DialectContext
    from .dialect import Dialect
    from .events import Event
    from .options import AgentOptions
    from .server import LocalAgent

#: Public name -> the module that defines it, imported on first use.
_HOMES = {
    "AgentOptions": ".options",
    "Dialect": ".dialect",
    "DialectContext": ".context",
    "Event": ".events",
    "LocalAgent": ".server",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `edgevoice.localagent.arguments` (imported by the daemon's CLI) does not
    # load the WebSocket server library.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
