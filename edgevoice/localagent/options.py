"""Settings of the local agent, including the switches that make it misbehave.

The dataclass is deliberately mutable: tests flip fields (``stall``, ``reject_auth``,
``ping_interval``...) on a running agent and the sessions read them live.
"""

from __future__ import annotations

from dataclasses import dataclass

#: voiceapi error code -> WebSocket close code used after sending it.
VOICEAPI_ERROR_CLOSE_CODES = {
    "AUTH_TIMEOUT": 4001,
    "AUTH_FAILED": 4003,
    "INVALID_AUTH": 4003,
    "SESSION_SETUP_FAILED": 4500,
}


@dataclass
class AgentOptions:
    """How the local agent behaves. Times in seconds unless the name says ``_ms``."""

    agent_id: str = "local-agent"  #: xuna agent id accepted on ``?agent_id=`` and by the signed-URL endpoint
    api_key: str = "local-secret-key"  #: REST key (xuna ``xi-api-key``, voiceapi ``Bearer``)
    private: bool = False  #: xuna: refuse ``?agent_id=``; only signed URLs connect

    output_rate: int = 16000  #: xuna reply audio rate, announced as ``pcm_<rate>`` (voiceapi: always 16000)
    ping_interval: float = 2.0  #: xuna application-level ping period; 0 disables

    end_silence_ms: int = 600  #: non-voiced audio that ends an utterance
    min_speech_ms: int = 300  #: shorter utterances are ignored
    vad_mode: int = 2  #: webrtcvad aggressiveness 0..3

    chunk_ms: int = 100  #: reply audio chunk length
    reply_lead_s: float = 0.5  #: reply audio sent ahead of real-time playback
    barge_in_ms: int = 200  #: voiced user audio during playback that counts as talking over the agent

    auth_timeout_s: float = 10.0  #: voiceapi: time allowed for the ``{"token": T}`` first message
    max_utterance_s: float = 30.0  #: an utterance this long is ended even without silence

    # --- misbehaviour switches (all off by default) ---
    reject_auth: bool = False  #: REST 401, xuna signed-URL 401, WebSocket handshake 403
    device_disabled: bool = False  #: voiceapi token endpoint 403
    close_after_s: float | None = None  #: server closes each session this long after it opens
    close_after_reply: bool = False  #: close once the first complete reply has been sent and played
    stall: bool = False  #: stop reading and writing but keep the socket open
    send_garbage: bool = False  #: send one of each kind of malformed message after opening
    garbage_big_bytes: int = 2_000_000  #: size of the oversized garbage text message
    late_audio_after_interrupt: bool = False  #: xuna: 3 more chunks of the interrupted response
    slow_token_s: float = 0.0  #: delay before every REST answer
    error_code: str | None = None  #: voiceapi: send this error right after auth, then close
