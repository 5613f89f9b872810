"""The ``elevenlabs`` dialect: ElevenLabs Agents, the protocol ``xuna`` mirrors.

Written from ``docs/protocols/elevenlabs.md``. Everything xuna does (the signed-URL
endpoint, public and signed handshakes, initiation metadata, pings, transcripts, echo
replies, ``interruption`` with optional late audio) is inherited from :mod:`.xuna`; this
module adds what ElevenLabs documents beyond the seed:

- client tools: with ``options.function_call`` set, the first utterance is answered only
  after a ``client_tool_call`` (``tool_name``, ``tool_call_id``, ``parameters``) got its
  ``client_tool_result`` with the same ``tool_call_id`` (see :mod:`.calls`);
- ``contextual_update`` messages are recorded as ``contextual_update`` (text);
- ElevenLabs' closing errors (``error`` with an ``error_event``, recorded as
  ``error_sent``): ``elevenlabs_receive_timeout_s`` without client input closes 1002
  (``transport_receive_timeout``), and ``elevenlabs_refuse_overrides`` answers an
  initiation carrying ``conversation_config_override`` with 1008 (``override_error``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.sync.server import ServerConnection

from .calls import CallingSession, PendingCall, user_text
from .context import DialectContext
from .listener import SpeechEnded
from .reply import ReplyStream
from .xuna import XunaDialect, XunaSession


class ElevenLabsSession(CallingSession, XunaSession):
    """A xuna conversation that may call a client tool before its first answer."""

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.last_input = self.opened_at

    def fail(self, code: int, error_type: str, message: str) -> None:
        """Send ElevenLabs' ``error`` event, then close with ``code``."""
        self.send_json({"type": "error", "error_event": {
            "code": code, "error_type": error_type, "message": message, "reason": message}})
        self.record("error_sent", code=error_type, close_code=code)
        self.close(code, message)

    def on_text(self, text: str) -> None:
        self.last_input = time.monotonic()
        super().on_text(text)

    def on_message(self, kind: Any, message: dict[str, Any]) -> None:
        if (kind == "conversation_initiation_client_data"
                and self.options.elevenlabs_refuse_overrides
                and message.get("conversation_config_override")):
            self.record("client_init", message=message, first=self.messages_seen == 1)
            self.fail(1008, "override_error", "Override for field is not allowed by config.")
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
        timeout = self.options.elevenlabs_receive_timeout_s
        if timeout is not None:
            if now >= self.last_input + timeout:
                self.fail(1002, "transport_receive_timeout",
                          f"No user input for {timeout:g} seconds")
            wakes.append(self.last_input + timeout)
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
