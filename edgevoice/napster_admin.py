"""``edgevoice napster create-agent|update-agent``: move a device from per-session
connections to a Napster Omniagent (the seed's migration guide).

``create-agent`` builds the agent from the ``[napster]`` per-session settings with the
seed's field mapping (``agent_body``), ``POST``s it to ``/public/agents`` and prints the
one config line to change. ``update-agent`` ``PATCH``es ``/public/agents/{agent_id}`` with
the mapped fields that are set in the config (the server changes only the fields sent).
``--dry-run`` prints the request instead of sending it. The API key is never printed.
"""

from __future__ import annotations

import json
import sys
import urllib.parse

import requests

from edgevoice.providers.napster import AGENTS_PATH, agent_body
from edgevoice.redact import describe_error

TIMEOUT_S = 15.0


def _headers(settings) -> dict[str, str]:
    return {"X-Api-Key": settings.api_key.reveal() if settings.api_key else "",
            "Content-Type": "application/json"}


def _show_request(method: str, url: str, body: dict, out) -> None:
    print(f"{method} {url}", file=out)
    print("X-Api-Key: ***", file=out)
    print(json.dumps(body, indent=2, ensure_ascii=False), file=out)


def _fail(what: str, resp: requests.Response | None, exc: Exception | None = None) -> int:
    if exc is not None:
        print(f"{what} failed: {describe_error(exc)}", file=sys.stderr)
    elif resp.status_code in (401, 403):
        print(f"{what} rejected (HTTP {resp.status_code}): check [napster] api_key",
              file=sys.stderr)
    else:
        print(f"{what} failed with HTTP {resp.status_code}: {resp.text[:300]}", file=sys.stderr)
    return 1


def _request(method: str, url: str, settings, body: dict, what: str,
             ok: tuple[int, ...]) -> requests.Response | int:
    """Send one request; the response when its status is in ``ok``, else the exit status
    after saying what went wrong."""
    try:
        resp = requests.request(method, url, headers=_headers(settings), json=body,
                                timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        return _fail(what, None, exc)
    if resp.status_code not in ok:
        return _fail(what, resp)
    return resp


def _send(dry_run: bool, method: str, url: str, s, body: dict, what: str, ok: tuple[int, ...],
          out):
    """The server's answer, or an exit status: 0 after only showing the request (dry run),
    or the failure's status (already explained on stderr)."""
    if dry_run:
        _show_request(method, url, body, out)
        return 0
    return _request(method, url, s, body, what, ok)


def _missing(settings, key: str, why: str) -> bool:
    """True, after saying so on stderr, when ``[napster] key`` is not set."""
    if getattr(settings, key):
        return False
    print(f"[napster] {key} is not set: {why}", file=sys.stderr)
    return True


def create_agent(config, name: str | None, dry_run: bool, out=None) -> int:
    out = out if out is not None else sys.stdout  # looked up now: tests and callers swap it
    s = config.napster
    if _missing(s, "companion_id", "the agent is built from the per-session settings, which "
                "start with the companion"):
        return 1
    body = agent_body(s, name)
    url = s.api_url.rstrip("/") + AGENTS_PATH
    resp = _send(dry_run, "POST", url, s, body, "creating the agent", (200, 201), out)
    if isinstance(resp, int):
        return resp
    try:
        answer = resp.json()
    except ValueError:
        answer = {}
    agent_id = (answer.get("id") or answer.get("agentId")
                or (answer.get("agent") or {}).get("id")) if isinstance(answer, dict) else None
    if not agent_id:
        print(f"the server created the agent but its answer has no id: {resp.text[:300]}",
              file=sys.stderr)
        return 1
    print(f"created Omniagent {agent_id}", file=out)
    print("To use it, set this line in the [napster] section of the config:", file=out)
    print(f"    agent_id = {agent_id}", file=out)
    print("then apply it: sudo systemctl reload edgevoice", file=out)
    return 0


def update_agent(config, name: str | None, dry_run: bool, out=None) -> int:
    out = out if out is not None else sys.stdout
    s = config.napster
    if _missing(s, "agent_id", "create the agent first (edgevoice napster create-agent)"):
        return 1
    body = agent_body(s, name)
    body.pop("companionId", None)  # an agent's companion is chosen when it is created
    url = f"{s.api_url.rstrip('/')}{AGENTS_PATH}/{urllib.parse.quote(s.agent_id, safe='')}"
    resp = _send(dry_run, "PATCH", url, s, body, "updating the agent", (200, 204), out)
    if isinstance(resp, int):
        return resp
    print(f"updated Omniagent {s.agent_id}: {', '.join(sorted(body)) or 'nothing to change'}",
          file=out)
    return 0
