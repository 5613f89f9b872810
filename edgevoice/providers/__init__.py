"""Agent dialects: the registry, and :func:`make_provider`, which builds the one the
config names.

Each dialect is one module, ``edgevoice/providers/<name>.py``, that declares
``DIALECT = Dialect(name, settings section, provider class, ...)``
(:class:`~edgevoice.providers.base.Dialect`); the names are listed once, in
``edgevoice/dialect_names.py``. Config ([agent] provider, the [<name>] sections and their
rules), the service (which sections restart a session) and the CLI read :data:`DIALECTS`.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from edgevoice.dialect_names import DIALECT_NAMES
from edgevoice.providers.base import Dialect, Provider

#: ``{name: Dialect}``, in the order of :data:`~edgevoice.dialect_names.DIALECT_NAMES`.
DIALECTS: dict[str, Dialect] = {
    name: importlib.import_module(f"{__name__}.{name}").DIALECT for name in DIALECT_NAMES}


def make_provider(config, history: Sequence[str] = (), carry: dict | None = None) -> Provider:
    """A fresh provider for the configured dialect (one per session: providers hold
    per-session protocol state such as the announced output rate). ``history``: recent
    user turns, for dialects that take them at session start (navtalk, openai). ``carry``:
    a dict the caller keeps across sessions, for dialects that carry state from one session
    to the next (gemini's resumption handle)."""
    name = config.agent.provider
    try:
        dialect = DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}") from None
    return dialect.make_provider(config.provider_settings(), history, carry)
