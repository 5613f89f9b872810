"""What a config problem is: :class:`Problem` (section, key, what is wrong and the fix) and
:class:`ConfigError`, which carries every problem found in one file at once."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

EX_CONFIG = 78  # sysexits.h: configuration error


@dataclass(frozen=True)
class Problem:
    section: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"[{self.section}] {self.key}" if self.key else f"[{self.section}]"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file is invalid; ``problems`` lists everything wrong with it."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the config file:\n{lines}")


def did_you_mean(word: str, options: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or ``""``."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def missing(section: str, rules: list[tuple[bool, str, str]]) -> list[Problem]:
    """A ``missing; <fix>`` problem for each ``(is_missing, key, fix)`` rule that holds (the
    keys a section needs set)."""
    return [Problem(section, key, f"missing; {fix}") for absent, key, fix in rules if absent]
