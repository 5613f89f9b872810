"""A local stand-in for the cloud voice agents edgevoice talks to.

Speaks the ``xuna``, ``voiceapi``, ``napster`` and ``navtalk`` dialects on loopback
(WebSocket + REST), echoes each user utterance back as the agent's reply, and can
misbehave on request. It is written from the protocol specs alone and shares no code
with the daemon's providers.

    from edgevoice.localagent import LocalAgent, AgentOptions
    with LocalAgent("voiceapi", AgentOptions(barge_in_ms=200)) as agent:
        print(agent.config_values())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["AgentOptions", "Event", "LocalAgent"]

if TYPE_CHECKING:
    from .events import Event
    from .options import AgentOptions
    from .server import LocalAgent


def __getattr__(name: str):
    # Lazy, so that `edgevoice.localagent.arguments` (imported by the daemon's CLI) does not
    # load the WebSocket server library.
    if name == "LocalAgent":
        from .server import LocalAgent
        return LocalAgent
    if name == "AgentOptions":
        from .options import AgentOptions
        return AgentOptions
    if name == "Event":
        from .events import Event
        return Event
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
