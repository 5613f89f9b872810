"""Config test helpers: a minimal valid config and the problems a text gives."""

from __future__ import annotations

import pytest

from edgevoice.config import ConfigError, Problem, parse

XUNA = "[xuna]\nagent_id = a1\n"


def problems(text: str, path: str = "test.conf") -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse(text, path)
    return info.value.problems


def where(text: str, path: str = "test.conf") -> set[tuple[str, str]]:
    return {(p.section, p.key) for p in problems(text, path)}


def with_key(section: str, key: str, value: str, base: str = XUNA) -> str:
    if f"[{section}]\n" in base:
        return base.replace(f"[{section}]\n", f"[{section}]\n{key} = {value}\n", 1)
    return base + f"[{section}]\n{key} = {value}\n"


def check_config(tmp_path, text: str):
    """``edgevoice check-config`` on ``text``, through the installed entry point."""
    import subprocess
    import sys
    from pathlib import Path
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(text)
    return subprocess.run([str(Path(sys.executable).parent / "edgevoice"), "check-config",
                           "--config", str(conf)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
