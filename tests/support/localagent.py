"""Plain clients for the local agent's tests (websocket-client + requests): sending audio in
20 ms frames, receiving JSON until a message or the close frame. Nothing here imports the
daemon: these helpers pin the local agent to the protocol specs, not to the providers."""

from __future__ import annotations

import base64
import json
import struct
import time

import websocket

RATE = 16000
NAV_RATE = 24000
FRAME_BYTES = 640  # 20 ms at 16 kHz
NAV_FRAME_BYTES = 960  # 20 ms at 24 kHz
FRAME_S = 0.02
TIMEOUT = 10.0
KEY = "local-secret-key"  # the local agent's key, license and token secret


def chunks(pcm: bytes, size: int = FRAME_BYTES):
    for start in range(0, len(pcm), size):
        yield pcm[start:start + size]


def name_of(message: dict) -> str | None:
    """A message's name, under ``event`` (napster) or ``type`` (everyone)."""
    return message.get("event") or message.get("type")


def recv_json(ws: websocket.WebSocket) -> dict:
    message = ws.recv()
    assert isinstance(message, str), f"expected a text frame, got {len(message)} bytes"
    return json.loads(message)


def recv_until(ws: websocket.WebSocket, wanted, timeout: float = TIMEOUT,
               skip_pings: bool = True) -> tuple[dict, list[dict]]:
    """Receive JSON until a message for which ``wanted(message)`` holds, or whose name is
    ``wanted``; return it and everything before it (pings left out unless ``skip_pings``
    is False)."""
    test = wanted if callable(wanted) else (lambda m: name_of(m) == wanted)
    before: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = recv_json(ws)
        if test(message):
            return message, before
        if not (skip_pings and name_of(message) == "ping"):
            before.append(message)
    raise AssertionError(f"no {wanted!r} message; got {[name_of(m) for m in before]}")


def recv_until_closed(ws: websocket.WebSocket) -> tuple[list, int | None, str]:
    """Everything received until the server's close frame (JSON texts decoded, binary frames
    as bytes), its close code and its reason."""
    received: list = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            return received, code, data[2:].decode(errors="replace")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            received.append(json.loads(data.decode()))
        elif opcode == websocket.ABNF.OPCODE_BINARY:
            received.append(bytes(data))


def recv_until_close(ws: websocket.WebSocket) -> tuple[list, int | None]:
    """:func:`recv_until_closed` without the reason."""
    received, code, _ = recv_until_closed(ws)
    return received, code


def tolerance_bytes(rate: int) -> int:
    return 2 * int(FRAME_S * rate) * 2  # two 20 ms frames either way


def talk_over_the_answer(ws: websocket.WebSocket, send_audio, pcm: bytes, audio_kind: str) -> None:
    """Ask with ``pcm``, wait for the first ``audio_kind`` message of the answer, then say
    ``pcm`` again over it (``send_audio(ws, pcm)`` sends in the dialect's form)."""
    send_audio(ws, pcm)
    recv_until(ws, audio_kind)
    send_audio(ws, pcm)


def xuna_send_audio(ws: websocket.WebSocket, pcm: bytes, legacy_form: bool = False) -> None:
    """Send PCM as 20 ms frames, as fast as the socket takes them (the VAD does not mind)."""
    for frame in chunks(pcm):
        b64 = base64.b64encode(frame).decode()
        if legacy_form:
            ws.send(json.dumps({"user_audio_chunk": b64}))
        else:
            ws.send(json.dumps({"type": "audio", "audio_event": {"audio_base_64": b64}}))
