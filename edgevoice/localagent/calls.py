"""Server-side function calls, shared by the ``napster`` and ``navtalk`` dialects.

With ``options.function_call`` set (``{"name": ..., "arguments": dict or JSON string}``),
the *first* complete user utterance of a session is not answered at once:

1. the dialect tells the client what the user said (:meth:`CallingSession.send_utterance_heard`),
2. the dialect asks the client to run the function (:meth:`send_function_call`);
   recorded as ``function_called`` (call_id, name, arguments),
3. the client's output is recorded as ``function_output`` (call_id, output) and, once the
   dialect is satisfied (napster: the output itself; navtalk: the ``response.create``
   that follows it), the utterance is answered as usual,
4. if that takes longer than ``options.function_timeout_s`` (read when the call is made),
   ``function_timeout`` (call_id, got_output) is recorded, the dialect may say so
   (:meth:`send_function_timeout`) and the utterance is answered anyway.

Choices where the specs are silent: one call per session (the first utterance only); an
utterance that ends while a call is pending replaces the one to be answered; output for an
unknown, already answered or timed-out call_id is recorded as ``function_output_unexpected``
(call_id, output) and otherwise ignored. The reply that follows a call mentions its output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from websockets.sync.server import ServerConnection

from .context import DialectContext
from .listener import SpeechEnded
from .session import Session


@dataclass
class PendingCall:
    """A function call the server made and is waiting on."""

    call_id: str
    name: str
    arguments: Any  # as configured: an object or a JSON string
    utterance: SpeechEnded  # answered once the call resolves
    deadline: float  # monotonic
    output: str | None = None


def user_text(seconds: float) -> str:
    """The fake transcript of a user utterance."""
    return f"I said something for {seconds:.1f} seconds"


class CallingSession(Session):
    """A session whose first answer may wait for a client-side function call."""

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.pending_call: PendingCall | None = None
        self.calls_made = 0
        self.function_result: tuple[str, str] | None = None  # (name, output) for the next reply
        #: names of the functions the client told the model about (openai, gemini)
        self.declared_functions: list[str] = []

    # -- hooks for dialects -----------------------------------------------------------
    def send_utterance_heard(self, utterance: SpeechEnded) -> None:
        """Messages sent as soon as an utterance ends (transcripts), before any call."""

    def send_function_call(self, call: PendingCall) -> None:
        """Ask the client to run ``call``."""
        raise NotImplementedError

    def send_function_timeout(self, call: PendingCall) -> None:
        """Tell the client the call timed out (if the dialect can)."""

    def call_spec(self) -> dict[str, Any] | None:
        """The function to call on the first utterance: ``options.function_call``, else the
        first function the client declared (openai, gemini), with no arguments."""
        if self.options.function_call or not self.declared_functions:
            return self.options.function_call
        return {"name": self.declared_functions[0], "arguments": {}}

    # -- flow -------------------------------------------------------------------------
    def reply_text(self, seconds: float) -> str:
        """The agent's answer; mentions the output of the call just resolved, once."""
        text = f"You spoke for {seconds:.1f} seconds. Here it is back."
        if self.function_result is not None:
            name, output = self.function_result
            self.function_result = None
            text = f"{name} returned {output}. {text}"
        return text

    def on_utterance(self, utterance: SpeechEnded) -> None:
        """Answer the utterance, or make the session's one function call first."""
        self.send_utterance_heard(utterance)
        if self.pending_call is not None:
            self.pending_call.utterance = utterance
            return
        spec = self.call_spec()
        if spec and self.calls_made == 0:
            self.calls_made += 1
            call = PendingCall(
                call_id=self.context.next_id("call"),
                name=str(spec.get("name", "function")),
                arguments=spec.get("arguments", {}),
                utterance=utterance,
                deadline=time.monotonic() + self.options.function_timeout_s,
            )
            self.pending_call = call
            self.send_function_call(call)
            self.record("function_called", call_id=call.call_id, name=call.name,
                        arguments=call.arguments)
            return
        self.start_reply(utterance)

    def take_function_output(self, call_id: Any, output: Any) -> bool:
        """Record the client's output; True when it answers the pending call."""
        call = self.pending_call
        if call is None or call_id != call.call_id or call.output is not None:
            self.record("function_output_unexpected", call_id=call_id, output=output)
            return False
        call.output = output if isinstance(output, str) else str(output)
        self.record("function_output", call_id=call_id, output=output)
        return True

    def finish_call(self) -> None:
        """The pending call is resolved (or given up on): answer its utterance now."""
        call = self.pending_call
        if call is None:
            return
        self.pending_call = None
        if call.output is not None:
            self.function_result = (call.name, call.output)
        self.start_reply(call.utterance)

    def on_tick(self, now: float) -> float | None:
        """Give up on a pending call whose time is over; returns its deadline otherwise."""
        call = self.pending_call
        if call is None:
            return None
        if now < call.deadline:
            return call.deadline
        self.record("function_timeout", call_id=call.call_id, got_output=call.output is not None)
        self.send_function_timeout(call)
        self.finish_call()
        return None
