"""The ``elevenlabs`` dialect: ElevenLabs Agents, the protocol ``xuna`` mirrors.

Written from ``docs/protocols/elevenlabs.md``. Everything xuna does (the signed-URL
endpoint, public and signed handshakes, initiation metadata, pings, transcripts, echo
replies, ``interruption`` with optional late audio) is inherited from :mod:`.xuna`; this
module adds what ElevenLabs documents beyond the seed:

- client tools: with ``options.function_call`` set, the first utterance is answered only
  after a ``client_tool_call`` (``tool_name``, ``tool_call_id``, ``parameters``) got its
  ``client_tool_result`` with the same ``tool_call_id`` (see :mod:`.calls`);
- ``contextual_update`` messages are recorded as ``contextual_update`` (text).
"""

from __future__ import annotations

import json
from typing import Any

from .calls import CallingSession, PendingCall, user_text
from .listener import SpeechEnded
from .reply import ReplyStream
from .xuna import XunaDialect, XunaSession


class ElevenLabsSession(CallingSession, XunaSession):
    """A xuna conversation that may call a client tool before its first answer."""

    def on_message(self, kind: Any, message: dict[str, Any]) -> None:
        if kind == "client_tool_result":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                self.record("client_malformed", reason="client_tool_result without tool_call_id")
                return
            self.record("tool_result", message=message)
            if self.take_function_output(call_id, message.get("result")):
                self.finish_call()
        elif kind == "contextual_update":
            self.record("contextual_update", text=message.get("text"))
        else:
            super().on_message(kind, message)

    def on_tick(self, now: float) -> float | None:
        wakes = [CallingSession.on_tick(self, now), XunaSession.on_tick(self, now)]
        due = [wake for wake in wakes if wake is not None]
        return min(due) if due else None

    def send_utterance_heard(self, utterance: SpeechEnded) -> None:
        self.send_json({"type": "user_transcript", "user_transcription_event": {
            "user_transcript": user_text(utterance.seconds)}})

    def send_reply_intro(self, reply: ReplyStream, seconds: float) -> None:
        self.send_json({"type": "agent_response",
                        "agent_response_event": {"agent_response": self.reply_text(seconds)}})

    def send_function_call(self, call: PendingCall) -> None:
        parameters = call.arguments
        if isinstance(parameters, str):
            parameters = json.loads(parameters or "{}")
        self.send_json({"type": "client_tool_call", "client_tool_call": {
            "tool_name": call.name, "tool_call_id": call.call_id, "parameters": parameters,
            "event_id": self.replies + 1}})


class ElevenLabsDialect(XunaDialect):
    """elevenlabs: xuna's endpoints and handshakes, :class:`ElevenLabsSession`."""

    name = "elevenlabs"
    session_class = ElevenLabsSession
