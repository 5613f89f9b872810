"""The dialect registry: every dialect is one provider module, registered once, and what
the config, the service, the CLI and the local agent know of dialects comes from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass

import pytest

from edgevoice.config import ConfigError, documented_keys, parse, render
from edgevoice.config.errors import Problem, missing
from edgevoice.config.types import Integer, Secret, key, keys
from edgevoice.dialect_names import DIALECT_NAMES
from edgevoice.providers import DIALECTS, make_provider
from edgevoice.providers.base import ConnectPlan, Dialect, Provider


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def test_the_registry_lists_every_named_dialect_once_in_order():
    assert tuple(DIALECTS) == DIALECT_NAMES
    assert all(dialect.name == name for name, dialect in DIALECTS.items())


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_every_dialect_has_a_section_and_a_provider(name):
    dialect = DIALECTS[name]
    assert dataclasses.is_dataclass(dialect.settings) and keys(dialect.settings)
    assert callable(dialect.settings().check)
    assert issubclass(dialect.provider, Provider) and dialect.provider.name == name
    assert name in documented_keys()


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_every_dialect_has_a_local_agent_counterpart(name):
    from edgevoice.localagent.registry import DIALECTS as LOCAL_AGENT_DIALECTS
    assert name in LOCAL_AGENT_DIALECTS


def test_the_local_agent_speaks_exactly_the_registered_dialects():
    from edgevoice.localagent.arguments import DIALECT_NAMES as LOCAL_NAMES
    from edgevoice.localagent.registry import DIALECTS as LOCAL_AGENT_DIALECTS
    assert set(LOCAL_AGENT_DIALECTS) == set(DIALECTS)
    assert set(DIALECTS) == set(LOCAL_NAMES)


def test_the_local_agents_options_load_no_daemon_dialect_code():
    probe = subprocess.run([sys.executable, "-c", "import sys, edgevoice.localagent.arguments; "
                            "print(sorted(m for m in sys.modules if m.startswith("
                            "('edgevoice.providers', 'edgevoice.config', 'websocket'))))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr


TURNS = ("what is the weather", "and tomorrow")
NEEDS = {"xuna": "agent_id = a1\n", "voiceapi": "api_url = https://v.test\napi_key = k\n",
         "napster": "api_key = k\ncompanion_id = c1\n", "navtalk": "license = l\nname = n\n",
         "elevenlabs": "agent_id = a1\n", "openai": "api_key = k\n", "gemini": "api_key = k\n"}


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_make_provider_builds_the_configured_dialect_with_its_section(name):
    cfg = parse(f"[agent]\nprovider = {name}\n[{name}]\n{NEEDS[name]}")
    provider = make_provider(cfg, TURNS)
    assert type(provider) is DIALECTS[name].provider
    assert provider.settings is cfg.section(name) is cfg.provider_settings()
    assert getattr(provider, "history", ()) == (TURNS if DIALECTS[name].takes_history else ())


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_a_dialects_own_rules_apply_only_when_it_is_in_use(name):
    with pytest.raises(ConfigError) as info:
        parse(f"[agent]\nprovider = {name}\n")
    assert {p.section for p in info.value.problems} == {name}
    other = next(n for n in DIALECT_NAMES if n != name)
    parse(f"[agent]\nprovider = {other}\n[{other}]\n{NEEDS[other]}")  # [name] left empty


def test_every_dialect_section_restarts_the_session_on_reload():
    from edgevoice.service import AGENT_SECTIONS
    assert set(DIALECT_NAMES) <= set(AGENT_SECTIONS)


# -- a dialect added to the registry is known to the config without touching it ---------------
@dataclass(frozen=True)
class ParrotSettings:
    token: object = key("Token.", None, Secret())
    volume: int = key("How loud the parrot is.", 5, Integer(0, 11))

    def check(self) -> list[Problem]:
        return missing("parrot", [(not self.token, "token", "set token or token_file")])


class ParrotProvider(Provider):
    name = "parrot"

    def __init__(self, settings, history=()) -> None:
        self.settings, self.history = settings, tuple(history)

    def connect_plan(self, response) -> ConnectPlan:
        return ConnectPlan("ws://127.0.0.1:1/parrot", {}, ())


@pytest.fixture
def parrot(monkeypatch):
    monkeypatch.setitem(DIALECTS, "parrot",
                        Dialect("parrot", ParrotSettings, ParrotProvider, takes_history=True))


def test_a_registered_dialect_gets_its_section_keys_rules_and_provider(parrot):
    cfg = parse("[agent]\nprovider = parrot\n[parrot]\ntoken = sq-secret-9\nvolume = 11\n")
    assert cfg.parrot.volume == 11 and cfg.parrot.token.reveal() == "sq-secret-9"
    text = render(cfg)
    assert "\n[parrot]\n" in text and "volume = 11" in text and "sq-secret-9" not in text
    assert documented_keys()["parrot"] == ["token", "volume"]
    provider = make_provider(cfg, TURNS)
    assert isinstance(provider, ParrotProvider) and provider.history == TURNS
    with pytest.raises(ConfigError) as info:
        parse("[agent]\nprovider = parrot\n[parrot]\nvolum = 12\n")
    assert {(p.section, p.key) for p in info.value.problems} == {("parrot", "volum"),
                                                                ("parrot", "token")}
    assert "did you mean 'volume'" in str(info.value)


def test_an_unregistered_dialect_is_an_unknown_provider_and_section():
    with pytest.raises(ConfigError) as info:
        parse("[agent]\nprovider = parrot\n[parrot]\nvolume = 1\n")
    # the provider falls back to its default (xuna), whose rules then apply as before
    assert {(p.section, p.key) for p in info.value.problems} == {
        ("agent", "provider"), ("parrot", ""), ("xuna", "agent_id")}


# -- the example configs of the cloud dialects work as shipped ----------------------------------
@pytest.mark.parametrize("name", ["elevenlabs", "openai", "gemini"])
def test_each_dialects_example_config_is_valid(name, tmp_path):
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    key = tmp_path / f"{name}.key"
    key.write_text("example-key-0123\n")
    tool = tmp_path / "temperature"
    tool.write_text("#!/bin/sh\necho 21\n")
    tool.chmod(0o755)
    text = (root / "config" / f"{name}.conf").read_text()
    text = (text.replace(f"/etc/edgevoice/{name}.key", str(key))
            .replace("/etc/edgevoice/tool-schemas.json", str(root / "config" / "tool-schemas.json"))
            .replace("/usr/local/lib/edgevoice/tools/temperature", str(tool)))
    cfg = parse(text, str(tmp_path / "edgevoice.conf"))
    assert cfg.agent.provider == name
    assert cfg.provider_settings().api_key.reveal() == "example-key-0123"
    assert [n for n, _ in cfg.tools] == ["get_temperature"]
    schemas = getattr(cfg.provider_settings(), "tool_schemas", None)
    assert schemas is None or [f.name for f in schemas] == ["get_temperature"]
    make_provider(cfg).connect_plan(None)
