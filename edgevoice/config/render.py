"""Configuration as text: the effective configuration (secrets masked), INI text from a
dict, and the list of every documented key."""

from __future__ import annotations

from edgevoice.config.loader import Config
from edgevoice.config.sections import sections
from edgevoice.config.types import keys, value_type


def render(cfg: Config) -> str:
    """The effective configuration as INI text, every secret masked."""
    out = [f"# effective configuration of {cfg.path or '<defaults>'}"]
    for name, cls in sections().items():
        out.append(f"\n[{name}]")
        settings = cfg.section(name)
        out += [f"{fld.name} = {value_type(fld).render(getattr(settings, fld.name))}"
                for fld in keys(cls)]
    out.append("\n[tools]")
    out += [f"{name} = {program}" for name, program in cfg.tools]
    return "\n".join(out) + "\n"


def ini_text(sections_: dict[str, dict[str, str]]) -> str:
    """Write ``{section: {key: value}}`` as INI text (for the demo, tests and the bench)."""
    lines: list[str] = []
    for section, values in sections_.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def documented_keys() -> dict[str, list[str]]:
    """Every section and key the schema knows (for docs and tests)."""
    return {name: [f.name for f in keys(cls)] for name, cls in sections().items()}
