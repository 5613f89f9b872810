"""The REST side of the local agent (token / signed-URL bootstrap), stdlib ``http.server``.

Routing is generic; each dialect module supplies ``rest_route(agent, method, path, query,
headers, body)`` returning ``(status, json_body)`` or ``(status, json_body, extra_headers)``,
or None for "not mine" (404). ``body`` is the raw request body (``b""`` when there is none).
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from .server import LocalAgent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


class RestServer(ThreadingHTTPServer):
    """HTTP server bound to one agent; request threads are daemon threads."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, agent: LocalAgent, host: str, port: int) -> None:
        self.agent = agent
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
        agent = self.server.agent
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY_BYTES)) if length > 0 else b""
            delay = agent.options.slow_token_s
            if delay and delay > 0:
                agent.stopping.wait(delay)
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            answer = agent.rest_route(method, url.path, query, self.headers, body)
            if answer is None:
                answer = (404, {"error": "not_found", "message": f"no such endpoint: {url.path}"})
        except Exception:
            log.exception("REST %s failed", method)
            answer = (500, {"error": "internal", "message": "local agent error"})
        self._reply(*answer)

    def _reply(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            log.debug("REST client went away before the answer")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        # Request lines carry no secrets here (keys travel in headers), but keep them at debug.
        log.debug("http %s " + format, self.address_string(), *args)
