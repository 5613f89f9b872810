"""Settings of the local agent, including the switches that make it misbehave.

The dataclass is deliberately mutable: tests flip fields (``stall``, ``reject_auth``,
``ping_interval``...) on a running agent and the sessions read them live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

@dataclass
class AgentOptions:
    """How the local agent behaves. Times in seconds unless the name says ``_ms``."""

    #: xuna agent id (``?agent_id=``, signed-URL endpoint) / napster Omniagent that always exists;
    #: None: the dialect's default, filled in by the Dialect ("local-agent"; napster "agent_local")
    agent_id: str | None = None
    #: REST key (xuna ``xi-api-key``, voiceapi ``Bearer``, napster ``X-Api-Key``);
    #: navtalk: the license
    api_key: str = "local-secret-key"
    private: bool = False  #: xuna: refuse ``?agent_id=``; only signed URLs connect

    #: xuna reply audio rate, announced as ``pcm_<rate>`` (voiceapi: always 16000)
    output_rate: int = 16000
    ping_interval: float = 2.0  #: xuna application-level ping period; 0 disables

    end_silence_ms: int = 600  #: non-voiced audio that ends an utterance
    min_speech_ms: int = 300  #: shorter utterances are ignored
    vad_mode: int = 2  #: webrtcvad aggressiveness 0..3

    chunk_ms: int = 100  #: reply audio chunk length
    reply_lead_s: float = 0.5  #: reply audio sent ahead of real-time playback
    #: voiced user audio during playback that counts as talking over the agent
    barge_in_ms: int = 200

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
    #: xuna, elevenlabs, openai: 3 more chunks of the interrupted response
    late_audio_after_interrupt: bool = False
    slow_token_s: float = 0.0  #: delay before every REST answer
    error_code: str | None = None  #: voiceapi: send this error right after auth, then close

    # --- function calls (napster, navtalk) ---
    #: ``{"name": ..., "arguments": dict or JSON string}``: called once, after the first utterance
    function_call: dict[str, Any] | None = None
    #: wait this long for the client's function output, then reply anyway
    function_timeout_s: float = 10.0

    # --- elevenlabs ---
    #: close 1002 (``transport_receive_timeout``) after this long without client input
    elevenlabs_receive_timeout_s: float | None = None
    #: refuse a ``conversation_config_override`` (``override_error``, close 1008)
    elevenlabs_refuse_overrides: bool = False

    # --- openai ---
    #: send the beta event names (``response.audio.delta``...) instead of the GA ones
    openai_beta_names: bool = False

    # --- gemini ---
    #: send ``goAway`` this long after setup, then close a second later; None: never
    gemini_go_away_after_s: float | None = None
    #: take each toolCall back at once (``toolCallCancellation``) and answer without it
    gemini_cancel_tool_calls: bool = False

    # --- napster ---
    #: napster companionId put in config_values (any non-empty id is accepted)
    companion_id: str = "comp_local"
    omniagent: bool = False  #: napster: config_values carries agent_id (Omniagent connections)
    #: decoded token ``{"url", "authToken"}`` (seed form) or, with "token",
    #: ``{"url": url?token=T, "token"}``
    napster_token_form: str = "authToken"
    #: scheme of the url inside the token: "ws" or "http" (clients must rewrite)
    napster_url_scheme: str = "ws"
    #: message_received fields under ``data.message`` instead of ``data``
    napster_nested_messages: bool = False
    #: reply audio key/payload: "event/data", "type/data" or "event/audio"
    napster_audio_form: str = "event/data"
    #: min seconds between connection requests (429 + Retry-After); None off
    napster_rate_limit_s: float | None = None
    #: connection requests answer 409 while this many sessions are open
    napster_max_sessions: int | None = None
    #: send ``{"type":"error","data":{"message":...}}`` after opening
    napster_error_after_open: str | None = None

    # --- navtalk ---
    #: character name put in config_values (any name is accepted)
    navtalk_name: str = "navtalk.Local"
    #: from session.created until session.updated (history collection)
    navtalk_history_wait_s: float = 0.3
    #: send conversation.connected.insufficient_balance and close
    navtalk_insufficient_balance: bool = False
    #: send conversation.connected.warning with this message after success
    navtalk_warning: str | None = None
    #: e.g. "gpu_full": send conversation.connected.<it> and close
    navtalk_fail_event: str | None = None
    #: also send webrtc.signaling.offer / iceCandidate an audio client ignores
    navtalk_webrtc_noise: bool = True
    #: payload fields at the top level instead of under ``data``
    navtalk_top_level_payload: bool = False
