"""A local stand-in for the cloud voice agents edgevoice talks to.

Speaks the ``xuna``, ``voiceapi``, ``napster`` and ``navtalk`` dialects on loopback
(WebSocket + REST), echoes each user utterance back as the agent's reply, and can
misbehave on request. It is written from the protocol specs alone and shares no code
with the daemon's providers.

    from edgevoice.localagent import LocalAgent, AgentOptions
    with LocalAgent("voiceapi", AgentOptions(barge_in_ms=200)) as agent:
        print(agent.config_values())
"""

from .events import Event
from .options import AgentOptions
from .server import LocalAgent

__all__ = ["AgentOptions", "Event", "LocalAgent"]
