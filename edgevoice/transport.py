"""The network side of opening a session, with limits a hostile server cannot stretch.

- :func:`call_with_deadline` runs a blocking network call (the REST bootstrap, the
  WebSocket connect) on a helper thread with a *total* deadline: when the deadline passes or
  the daemon stops, every socket the call opened is shut down, so the helper's blocked read
  returns at once and the thread ends (a server that drips one byte a second cannot keep it).
- :func:`fetch` makes the bootstrap request: connect, headers and the whole body within the
  deadline, the body capped at :data:`MAX_BODY_BYTES`, JSON that cannot be parsed (also too
  deeply nested) read as "no JSON".
- :class:`LimitedWebSocket` refuses a message larger than ``max_message_bytes`` (all its
  fragments together) from the frame headers, *before* reading its payload
  (:class:`MessageTooBig`); the session then closes with 1009.
- :func:`close_websocket` closes the socket on every path, also after websocket-client has
  answered the server's close frame (it then considers itself closed and ``close()`` does
  nothing, leaving the socket in CLOSE-WAIT until garbage collection).
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from typing import Any, Callable, TypeVar

import requests
import requests.adapters
import urllib3
import urllib3.connection
import websocket
from websocket import ABNF, continuous_frame, frame_buffer

from edgevoice import redact
from edgevoice.providers.base import HttpRequest, HttpResponse, Outcome, SessionFailed, loads
from edgevoice.threads import start_thread

T = TypeVar("T")

MAX_BODY_BYTES = 1 << 20  # a bootstrap answer is a token or a URL: a few hundred bytes
CUT_GRACE_S = 0.5  # after a cut, how long the caller waits for the helper thread to end
STATUS_MESSAGE_TOO_BIG = 1009  # RFC 6455

_local = threading.local()


class Cutter:
    """The sockets of one network call; :meth:`cut` shuts them all down (from any thread)
    so that reads blocked on them return at once. Sockets added after the cut are shut
    down as they are added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._websockets: list[websocket.WebSocket] = []
        self.is_cut = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.is_cut:
                _shut(sock)

    def add_websocket(self, ws: websocket.WebSocket) -> None:
        with self._lock:
            self._websockets.append(ws)

    def close_sockets(self) -> None:
        """Close the plain sockets (not the WebSockets): a request is over."""
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
            self._sockets.clear()

    def cut(self) -> None:
        with self._lock:
            self.is_cut = True
            for sock in self._sockets + [ws.sock for ws in self._websockets if ws.sock]:
                _shut(sock)


def _shut(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):  # already closed
        pass


def call_with_deadline(fn: Callable[[float], T], stop: threading.Event, timeout: float,
                       name: str, discard: Callable[[T], None] | None = None,
                       beat: Callable[[], None] | None = None) -> T:
    """``fn(deadline)`` on a helper thread, given ``timeout`` seconds in all. A stop request
    or the deadline cuts its sockets and raises :class:`SessionFailed`; a result that comes
    anyway is handed to ``discard`` (a WebSocket that connected too late is closed). Only a
    TCP connect or a DNS lookup can outlive the cut, and each ends within its own timeout."""
    cutter = Cutter()
    deadline = time.monotonic() + timeout
    box: dict[str, Any] = {}
    lock = threading.Lock()
    done = threading.Event()

    def claim() -> Any:
        with lock:
            if box.get("claimed") or "result" not in box:
                return None
            box["claimed"] = True
            return box["result"]

    def target() -> None:
        _local.cutter = cutter
        try:
            box["result"] = fn(deadline)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            _local.cutter = None
        done.set()
        if cutter.is_cut and discard is not None:
            _discard(discard, claim())

    thread = start_thread(name, target)
    while not done.wait(0.05):
        if beat is not None:
            beat()
        if stop.is_set() or time.monotonic() > deadline:
            cutter.cut()
            thread.join(CUT_GRACE_S)
            if discard is not None:
                _discard(discard, claim())
            box.pop("error", None)  # the cut's own error: dropped, no reference cycle
            if stop.is_set():
                raise SessionFailed(Outcome("stopped", "stopped"))
            raise SessionFailed(Outcome(f"{name} took longer than {timeout:g} s",
                                        cause="timeout"))
    thread.join()
    if "error" in box:
        raise box.pop("error")  # popped: no cycle keeps its frames (and sockets) alive
    return claim()


def _discard(discard: Callable[[Any], None], result: Any) -> None:
    if result is not None:
        try:
            discard(result)
        except Exception:
            pass


# -- the REST bootstrap ---------------------------------------------------------------------
class _Watched:
    """urllib3 connection mixin: the TCP socket joins the current call's :class:`Cutter`
    as soon as it is connected (before TLS, headers or body)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        cutter = getattr(_local, "cutter", None)
        if cutter is not None:
            cutter.add(sock)
        return sock


class _Conn(_Watched, urllib3.connection.HTTPConnection):
    pass


class _TLSConn(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Conn


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TLSConn


_POOLS = {"http": _Pool, "https": _TLSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections can be cut (see :class:`_Watched`)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


def fetch(request: HttpRequest, deadline: float, max_bytes: int = MAX_BODY_BYTES
          ) -> HttpResponse:
    """Make the bootstrap request (run it under :func:`call_with_deadline`, which enforces
    ``deadline`` on the whole exchange). One fresh connection, closed afterwards."""
    what = request.what
    remaining = max(0.1, deadline - time.monotonic())
    headers = {"Accept-Encoding": "identity", **request.headers}
    try:
        with requests.Session() as http:
            adapter = _Adapter(max_retries=0)
            http.mount("http://", adapter)
            http.mount("https://", adapter)
            with http.request(request.method, request.url, headers=headers, json=request.json,
                              timeout=(remaining, remaining), stream=True) as resp:
                raw = _read_capped(resp, max_bytes, what)
                status, resp_headers = resp.status_code, dict(resp.headers)
    except requests.RequestException as exc:
        raise SessionFailed(Outcome(f"{what} failed: {redact.describe_error(exc)}")) from None
    finally:  # urllib3 may keep a finished connection alive until garbage collection
        cutter = getattr(_local, "cutter", None)
        if cutter is not None:
            cutter.close_sockets()
    encoding = resp_headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("gzip", "deflate"):  # sent although we asked for identity
        inflater = zlib.decompressobj(47)  # gzip or zlib header
        try:
            raw = inflater.decompress(raw, max_bytes + 1)
        except zlib.error:
            raw = b""
        if len(raw) > max_bytes:
            raise SessionFailed(Outcome(f"{what}: the answer inflates to over {max_bytes} "
                                        "bytes"))
    try:
        body = loads(raw) if raw else None
    except ValueError:  # not JSON, or nested too deeply to parse
        body = None
    return HttpResponse(status, body, resp_headers)


def _read_capped(resp: requests.Response, max_bytes: int, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.raw.stream(65536, decode_content=False):
        total += len(chunk)
        if total > max_bytes:
            raise SessionFailed(Outcome(f"{what}: the answer is over {max_bytes} bytes; "
                                        "not read further"))
        chunks.append(chunk)
    return b"".join(chunks)


# -- the WebSocket ------------------------------------------------------------------------------
class MessageTooBig(websocket.WebSocketException):
    """The server started a message over the size limit (its payload was not read)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a message of at least {size} bytes is over the {limit}-byte limit")
        self.size = size
        self.limit = limit


class _LimitedFrames(frame_buffer):
    """websocket-client's frame reader, checking each frame's announced length against
    what the message may still hold before the payload is read."""

    def __init__(self, recv: Callable[[int], bytes], skip_utf8_validation: bool,
                 limit: int) -> None:
        super().__init__(recv, skip_utf8_validation)
        self.limit = limit
        self._message_bytes = 0  # of the fragmented message in progress
        self._partial: tuple[bytearray, int] | None = None  # a large payload being read

    def recv_frame(self) -> ABNF:
        with self.lock:
            if self.needs_header():
                self.recv_header()
            if self.needs_length():
                self.recv_length()
            fin, opcode, length = self.header[0], self.header[4], self.length
        if opcode & 0x8:  # a control frame: 125 bytes at most (RFC 6455 5.5)
            if length > 125:
                raise MessageTooBig(length, 125)
            return super().recv_frame()
        total = length + (self._message_bytes if opcode == ABNF.OPCODE_CONT else 0)
        if total > self.limit:
            raise MessageTooBig(total, self.limit)
        frame = super().recv_frame()
        self._message_bytes = 0 if fin else total
        return frame

    def recv_strict(self, bufsize: int) -> bytes | bytearray:
        """A large payload is read into one bytearray of its final size (websocket-client
        joins a list of chunks: twice the payload in memory at once). A receive timeout
        keeps what was read for the next call, as the original does."""
        if bufsize <= _SMALL or sum(map(len, self.recv_buffer)) >= bufsize:
            return super().recv_strict(bufsize)
        if self._partial is None or len(self._partial[0]) != bufsize:
            buf = bytearray(bufsize)
            pending = b"".join(self.recv_buffer)  # read ahead with the header
            buf[:len(pending)] = pending
            self._partial = (buf, len(pending))
            self.recv_buffer = []
        buf, filled = self._partial
        view = memoryview(buf)
        try:
            while filled < bufsize:
                chunk = self.recv(min(_SMALL, bufsize - filled))
                view[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
                self._partial = (buf, filled)
        finally:
            view.release()
        self._partial = None
        return buf


_SMALL = 1 << 16


class _Fragments(continuous_frame):
    """Joins a fragmented message in one growing bytearray (websocket-client adds bytes to
    bytes: a new copy of the whole message per fragment)."""

    def add(self, frame: ABNF) -> None:
        if not self.cont_data and not frame.fin and not isinstance(frame.data, bytearray):
            frame.data = bytearray(frame.data)
        super().add(frame)


class LimitedWebSocket(websocket.WebSocket):
    """A websocket-client ``WebSocket`` that refuses messages over ``max_message_bytes``
    (raising :class:`MessageTooBig` from ``recv*``) without reading them."""

    def __init__(self, max_message_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        skip_utf8 = options.get("skip_utf8_validation", False)
        self.frame_buffer = _LimitedFrames(self._recv, skip_utf8, max_message_bytes)
        self.cont_frame = _Fragments(options.get("fire_cont_frame", False), skip_utf8)

    def send_close(self, status: int = websocket.STATUS_NORMAL, reason: bytes = b"") -> None:
        """Best effort: answering a server's close frame on a socket the server has
        already shut must not turn its close code into "connection lost"."""
        try:
            super().send_close(status, reason)
        except (websocket.WebSocketException, OSError):
            self.connected = False


def open_websocket(url: str, headers: dict[str, str], timeout: float,
                   max_message_bytes: int) -> LimitedWebSocket:
    """Connect (run it under :func:`call_with_deadline`: its cutter reaches this socket
    too, so a handshake answer dripped byte by byte is cut at the deadline)."""
    ws = LimitedWebSocket(max_message_bytes, enable_multithread=True,
                          skip_utf8_validation=True)
    cutter = getattr(_local, "cutter", None)
    if cutter is not None:
        cutter.add_websocket(ws)
    try:
        ws.connect(url, header=[f"{k}: {v}" for k, v in headers.items()], timeout=timeout)
    except BaseException:
        close_websocket(ws)
        raise
    return ws


def wake_websocket(ws: websocket.WebSocket) -> None:
    """Make reads and writes blocked on ``ws`` fail at once (any thread); the socket stays
    open until :func:`close_websocket`."""
    sock = ws.sock
    if sock is not None:
        _shut(sock)


def close_websocket(ws: websocket.WebSocket) -> None:
    """Close the socket now, whatever websocket-client thinks of the connection's state."""
    wake_websocket(ws)
    try:
        ws.shutdown()
    except (OSError, AttributeError):
        pass


def refuse_too_big(ws, exc: MessageTooBig) -> Outcome:
    """The server started a message over the limit: its payload is never read; the
    connection is closed with 1009 (message too big), and the session ends so."""
    try:
        ws.send_close(STATUS_MESSAGE_TOO_BIG, "message too big")
    except (websocket.WebSocketException, OSError):
        pass
    return Outcome(f"the server sent a message of {exc.size} bytes or more, over [session] "
                   f"max_message_bytes = {exc.limit}; closed with {STATUS_MESSAGE_TOO_BIG}",
                   cause="too_big")
