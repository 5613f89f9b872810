"""Single-use, short-lived session tokens shared by the REST and WebSocket servers."""

from __future__ import annotations

import secrets
import threading
import time


class TokenStore:
    """Issues random tokens and redeems each one at most once before it expires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: dict[str, tuple[str, float]] = {}  # token -> (purpose, expiry)
        self._used: set[str] = set()

    def issue(self, purpose: str, ttl_s: float) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            # forget expired tokens so the store does not grow for ever
            for old in [t for t, (_, exp) in self._issued.items() if exp < now]:
                del self._issued[old]
            self._issued[token] = (purpose, now + ttl_s)
        return token

    def redeem(self, token: str, purpose: str) -> str:
        """Use ``token`` up. Returns ``"ok"``, ``"used"``, ``"expired"`` or ``"unknown"``."""
        with self._lock:
            if token in self._used:
                return "used"
            entry = self._issued.pop(token, None)
            if entry is None or entry[0] != purpose:
                if entry is not None:  # wrong purpose: keep it for its real use
                    self._issued[token] = entry
                return "unknown"
            self._used.add(token)
            return "ok" if entry[1] >= time.monotonic() else "expired"
