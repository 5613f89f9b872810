"""What every section module needs: the dialect registry (read when first asked for) and
file checks that never raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgevoice.config.types import Choice


def dialects() -> Mapping[str, Any]:
    """The dialect registry, ``{name: Dialect}``. Imported when first asked for, not at the
    top: the provider modules import this package to declare their sections."""
    from edgevoice.providers import DIALECTS
    return DIALECTS


class DialectName(Choice):
    """The name of a registered dialect (read at parse time: a dialect added to the
    registry is accepted without touching this module)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dialects())


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. a name too long
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
