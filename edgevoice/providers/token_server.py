"""Keys for the dialects that take either a long-lived API key or a short-lived credential
from the user's own server (``openai``, ``gemini``): the ``token_url`` contract.

With ``token_url`` set, every session starts with ``POST token_url`` (body
``{"model": MODEL}``, and ``Authorization: Bearer TOKEN_KEY`` when ``token_key`` is set);
the server answers with the vendor's own JSON (OpenAI: ``value`` or
``client_secret.value``; Gemini: ``name``), so the vendor key never reaches the device.
"""

from __future__ import annotations

from typing import Any

from edgevoice.config.errors import Problem
from edgevoice.providers.base import (HttpRequest, HttpResponse, Outcome, SessionFailed, dig,
                                      http_failure)


def check(section: str, settings: Any, what: str) -> list[Problem]:
    """``api_key`` or ``token_url`` must be set."""
    if not settings.api_key and not settings.token_url:
        return [Problem(section, "api_key", "missing; set api_key (or api_key_file), or "
                        f"token_url for {what}")]
    return []


def request(settings: Any, what: str) -> HttpRequest | None:
    """The request for a fresh credential, or None when the API key is used."""
    if not settings.token_url:
        return None
    headers = {"Content-Type": "application/json"}
    if settings.token_key:
        headers["Authorization"] = f"Bearer {settings.token_key.reveal()}"
    return HttpRequest("POST", settings.token_url, headers, {"model": settings.model},
                       what=what)


def credential(settings: Any, response: HttpResponse | None, section: str, what: str,
               *paths: tuple[str, ...]) -> str:
    """The API key (no request was made), or the credential at the first of ``paths`` in
    the token server's answer; :class:`SessionFailed` when there is none."""
    if response is None:
        return settings.api_key.reveal() if settings.api_key else ""
    if response.status not in (200, 201):
        raise http_failure(response, what, f"check [{section}] token_key and your token server")
    for path in paths:
        value = dig(response.body, *path)
        if isinstance(value, str) and value:
            return value
    raise SessionFailed(Outcome(f"{what}: the answer has no "
                                + " or ".join(".".join(p) for p in paths)))
