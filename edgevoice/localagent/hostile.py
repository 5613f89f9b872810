"""A hostile server on loopback: HTTP and WebSocket spoken just well enough to misbehave
in the ways a well-kept server library refuses to (drip-fed headers, endless bodies, frames
announcing 200 MB, close frames followed by silence, floods).

The behaviour is chosen by the request path, so one server serves a whole test matrix::

    python -m edgevoice.localagent.hostile      # prints the port, serves until killed

HTTP (any path starting with ``/http/<mode>``; the xuna signed-URL path is appended):

- ``ok``: ``{"signed_url": "ws://host:port/ws/<agent_id>"}``; ``drip``: the status line,
  then one header byte every 0.2 s; ``slowbody``: a chunked body, one byte every 0.2 s;
  ``endless``: a chunked body of zeros as fast as the client reads; ``big``: 300 MB
  announced and sent; ``deep``: a JSON body nested 400,000 deep; ``gzipbomb``: 16 KiB that
  inflate to 16 MiB.

WebSocket (``/ws/<mode>``): ``drip`` (the handshake answer one byte every 0.2 s),
``hello`` (xuna metadata, then reads and stays), ``oversized``
(one text frame announcing 200 MB, payload streamed), ``fragments`` (a text message in
1 MB fragments without end), ``close`` (a close frame, then FIN), ``closesilent`` (a close
frame, then nothing), ``fin`` (TCP FIN, no close frame), ``reset`` (TCP RST), ``silent``
(the handshake, then never reads or writes: a half-open link), ``deep`` (a deeply nested
message, then a close frame), ``flood`` (pings and audio as fast as the client reads, for
3 s, then a close frame), ``big`` (one valid audio message of ``?bytes=N``, then hello).

It imports nothing from the daemon (see the local agent's rule).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
DRIP_S = 0.2


def ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked server frame (RFC 6455): ``opcode`` 0x1 text, 0x8 close, 0xA pong..."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def _text(message: dict) -> bytes:
    """A text frame of ``message`` as JSON."""
    return ws_frame(0x1, json.dumps(message).encode())


HELLO = {"type": "conversation_initiation_metadata",
         "conversation_initiation_metadata_event": {"conversation_id": "hostile",
                                                    "agent_output_audio_format": "pcm_16000"}}


class HostileServer:
    """Listens on loopback and misbehaves per request path; each connection in its own thread.

    ::

        server = HostileServer()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{server.port}/ws/silent"
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.listener = socket.create_server((host, port))
        self.host, self.port = self.listener.getsockname()[:2]
        self.close_codes: list[int | None] = []  # of the clients' close frames, in order
        self.gzip_bomb = gzip.compress(b" " * (16 << 20))

    def serve_forever(self) -> None:
        """Accept connections until the listening socket is closed."""
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """Read one request head and hand the connection to the HTTP or WebSocket mode."""
        conn.settimeout(60)
        try:
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            line, *headers = request.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            target = urllib.parse.urlsplit(line.split(" ")[1])
            parts = target.path.strip("/").split("/")
            query = dict(urllib.parse.parse_qsl(target.query))
            fields = {h.split(":", 1)[0].strip().lower(): h.split(":", 1)[1].strip()
                      for h in headers if ":" in h}
            if parts[0] == "ws":
                self._websocket(conn, parts[1], fields.get("sec-websocket-key", ""), query)
            else:
                self._http(conn, parts[1] if len(parts) > 1 else "ok", query)
        except OSError:
            pass
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # the reader thread's makefile keeps the fd
                conn.close()
            except OSError:
                pass

    # -- HTTP ---------------------------------------------------------------------------------
    def _http(self, conn: socket.socket, mode: str, query: dict) -> None:
        """Answer one HTTP request the ``mode`` way, then read until the client hangs up."""
        chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
        if mode == "drip":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while True:
                conn.sendall(b"X")
                time.sleep(DRIP_S)
        elif mode == "slowbody":
            conn.sendall(chunked)
            while True:
                conn.sendall(b"1\r\n \r\n")
                time.sleep(DRIP_S)
        elif mode == "endless":
            conn.sendall(chunked)
            chunk = b"10000\r\n" + b"0" * 0x10000 + b"\r\n"
            while True:
                conn.sendall(chunk)
        elif mode == "big":
            size = 300 << 20
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            block = b" " * 0x10000
            for _ in range(size // len(block)):
                conn.sendall(block)
        elif mode == "deep":
            body = b"[" * 400_000 + b"]" * 400_000
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        elif mode == "gzipbomb":
            body = self.gzip_bomb
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        else:
            ws = f"ws://{self.host}:{self.port}/ws/{query.get('agent_id', 'hello')}"
            body = json.dumps({"signed_url": ws}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass

    def _read_client(self, conn: socket.socket) -> None:
        """Read what the client sends (so its sends never block), answer its pings and
        note the code of its close frame in :attr:`close_codes`."""
        try:
            stream = conn.makefile("rb")
            while (frame := _read_frame(stream)) is not None:
                opcode, payload = frame
                if opcode == 0x9:
                    conn.sendall(ws_frame(0xA, payload))
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    self.close_codes.append(code)
        except (OSError, struct.error, ValueError):
            pass

    # -- WebSocket ---------------------------------------------------------------------------------
    def _websocket(self, conn: socket.socket, mode: str, key: str, query: dict) -> None:
        """Open (or botch) a WebSocket the ``mode`` way."""
        if mode == "drip":  # the handshake answer, one byte at a time
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
            while True:
                conn.sendall(b"X")
                time.sleep(DRIP_S)
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        if mode == "silent":
            time.sleep(60)  # neither reads nor writes
            return
        if mode in ("close", "closesilent"):
            conn.sendall(ws_frame(0x8, struct.pack("!H", 1000) + b"bye"))
            if mode == "closesilent":
                time.sleep(30)
            return
        if mode == "fin":
            conn.shutdown(socket.SHUT_WR)
            return
        if mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        threading.Thread(target=self._read_client, args=(conn,), daemon=True).start()
        if mode == "oversized":
            conn.sendall(bytes([0x81, 127]) + struct.pack("!Q", 200 << 20))
            block = b"x" * 0x10000
            while True:
                conn.sendall(block)
        elif mode == "fragments":
            block = b"x" * (1 << 20)
            conn.sendall(ws_frame(0x1, block, fin=False))
            while True:
                conn.sendall(ws_frame(0x0, block, fin=False))
        elif mode == "deep":
            conn.sendall(ws_frame(0x1, b'{"type": "interruption", "x": ' + b"[" * 200_000
                                  + b"]" * 200_000 + b"}"))
            conn.sendall(ws_frame(0x8, struct.pack("!H", 1000)))
        elif mode == "flood":
            audio = _text({"type": "audio", "audio_event": {
                "audio_base_64": base64.b64encode(bytes(640)).decode(), "event_id": 1}})
            end = time.monotonic() + 3.0
            n = 0
            while time.monotonic() < end:
                n += 1
                conn.sendall(_text({"type": "ping", "ping_event": {"event_id": n}}) + audio)
            conn.sendall(ws_frame(0x8, struct.pack("!H", 1000)))
        else:
            if mode == "big":
                size = int(query.get("bytes", "1000000"))
                pcm = base64.b64encode(bytes(size * 3 // 4 // 2 * 2)).decode()
                conn.sendall(_text({"type": "audio", "audio_event": {"audio_base_64": pcm}}))
            conn.sendall(_text(HELLO))
        time.sleep(60)


def _read_frame(stream) -> tuple[int, bytes] | None:
    """One client frame (masked, as RFC 6455 requires): (opcode, payload), None at EOF."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", stream.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", stream.read(8))[0]
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = bytearray(stream.read(n))
    for i in range(len(payload)):
        payload[i] ^= mask[i % 4]
    return head[0] & 0x0F, bytes(payload)


def main() -> None:
    """Print the port, then serve until killed."""
    server = HostileServer()
    print(server.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
