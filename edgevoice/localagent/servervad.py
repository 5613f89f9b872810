"""What navtalk and openai share: both speak the OpenAI Realtime event model at 24 kHz.

Their server VAD announces ``speech_started`` once per utterance (when speech has lasted
``min_speech_ms``, or earlier when the user talks over an answer), and the answer after a
function call starts on the ``response.create`` that follows the call's output.
"""

from __future__ import annotations

from typing import Any

from websockets.sync.server import ServerConnection

from .calls import CallingSession
from .context import DialectContext

RATE = 24000


class ServerVadSession(CallingSession):
    """A calling session with OpenAI-style server VAD events and ``response.create``."""

    output_rate = RATE
    input_rate = RATE
    conversation_prefix = "sess"

    def __init__(
        self, context: DialectContext, connection: ServerConnection, auth: dict[str, Any]
    ) -> None:
        super().__init__(context, connection, auth)
        self.speech_started_sent = False

    def send_speech_started(self) -> None:
        """Send the dialect's ``input_audio_buffer.speech_started``."""
        raise NotImplementedError

    def speech_started(self) -> None:
        """Announce the user's speech, once per utterance."""
        if not self.speech_started_sent:
            self.speech_started_sent = True
            self.send_speech_started()

    def on_user_speech_start(self) -> None:
        self.speech_started()

    def take_user_audio(self, pcm: bytes) -> None:
        super().take_user_audio(pcm)
        if not self.listener.active:  # utterance over (answered or dropped as too short)
            self.speech_started_sent = False

    def response_create(self) -> None:
        """The client's ``response.create``: answers the utterance of a call with output."""
        call = self.pending_call
        ready = call is not None and call.output is not None
        self.record("response_create", call_id=call.call_id if ready else None)
        if ready:
            self.finish_call()
