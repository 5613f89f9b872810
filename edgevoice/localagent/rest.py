"""The REST side of the local agent (token / signed-URL bootstrap), stdlib ``http.server``.

Routing is generic: every request becomes a :class:`~edgevoice.localagent.dialect.RestRequest`
for the dialect's ``rest_route``, which answers a
:class:`~edgevoice.localagent.dialect.RestAnswer` or None for "not mine" (404). The
``slow_token_s`` switch delays every answer here.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .dialect import Dialect, RestAnswer, RestRequest

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


class RestServer(ThreadingHTTPServer):
    """HTTP server for one dialect; request threads are daemon threads."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, dialect: Dialect, host: str, port: int) -> None:
        self.dialect = dialect
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: RestServer
    server_version = "edgevoice-localagent"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        dialect = self.server.dialect
        answer: RestAnswer | None
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY_BYTES)) if length > 0 else b""
            delay = dialect.options.slow_token_s
            if delay and delay > 0:
                dialect.context.stopping.wait(delay)
            url = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            answer = dialect.rest_route(RestRequest(method, url.path, query, self.headers, body))
            if answer is None:
                answer = RestAnswer.error(404, "not_found", f"no such endpoint: {url.path}")
        except Exception:
            log.exception("REST %s failed", method)
            answer = RestAnswer.error(500, "internal", "local agent error")
        self._reply(answer)

    def _reply(self, answer: RestAnswer) -> None:
        payload = json.dumps(answer.body).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            log.debug("REST client went away before the answer")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        # Request lines carry no secrets here (keys travel in headers), but keep them at debug.
        log.debug("http %s " + format, self.address_string(), *args)
