"""The config's files and texts: secrets from every source, loading, printing and reading
back, and the README reference and example config checked against the schema (the rules
one by one: tests/config/test_rules.py)."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

from edgevoice import config as cfgmod
from edgevoice.config import Config, ConfigError, Problem, load, parse, render, sections
from edgevoice.config.types import keys as section_keys, value_type
from edgevoice.redact import Secret
from tests.support import ROOT
from tests.support.config import XUNA, problems, where, with_key


# -- secrets ---------------------------------------------------------------------------------
def test_secret_inline_from_file_relative_to_the_config_and_sources(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "xuna.key").write_text("  file-secret-1\n\n")
    conf = tmp_path / "edgevoice.conf"
    conf.write_text(XUNA.replace("a1\n", "a1\napi_key_file = keys/xuna.key\n"))
    cfg = load(str(conf))
    assert cfg.xuna.api_key.reveal() == "file-secret-1"
    assert str(tmp_path / "keys" / "xuna.key") in cfg.xuna.api_key.source
    inline = parse(XUNA.replace("a1\n", "a1\napi_key = inline-secret-2\n"))
    assert inline.xuna.api_key.reveal() == "inline-secret-2"
    assert inline.xuna.api_key.source == "config"

def test_secret_file_problems(tmp_path):
    empty = tmp_path / "empty.key"
    empty.write_text("\n  \n")
    assert where(XUNA.replace("a1\n", f"a1\napi_key_file = {empty}\n")) == {
        ("xuna", "api_key_file")}
    assert where(XUNA.replace("a1\n", f"a1\napi_key_file = {tmp_path}/none\n")) == {
        ("xuna", "api_key_file")}
    assert where(XUNA.replace("a1\n", f"a1\napi_key_file = {tmp_path}\n")) == {
        ("xuna", "api_key_file")}
    both = XUNA.replace("a1\n", f"a1\napi_key = x-1234\napi_key_file = {empty}\n")
    assert where(both) == {("xuna", "api_key")}

def test_secret_from_credentials_only_when_not_in_the_config(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "xuna_api_key").write_text("cred-secret-3\n")
    (creds / "navtalk_license").write_text("\n")  # empty: as if not there
    (creds / "napster_api_key").mkdir()  # not a file: ignored
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = parse(XUNA)
    assert cfg.xuna.api_key.reveal() == "cred-secret-3"
    assert "xuna_api_key" in cfg.xuna.api_key.source
    assert cfg.navtalk.license is None and cfg.napster.api_key is None
    inline = parse(XUNA.replace("a1\n", "a1\napi_key = inline-secret-4\n"))
    assert inline.xuna.api_key.reveal() == "inline-secret-4"

def test_unreadable_credential_is_a_problem(tmp_path, monkeypatch):
    (tmp_path / "xuna_api_key").symlink_to("/proc/self/mem")  # a file whose read fails (EIO)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    [problem] = problems(XUNA)
    assert (problem.section, problem.key) == ("xuna", "api_key")
    assert "xuna_api_key" in problem.message

# -- loading, printing, reading back ---------------------------------------------------------
def test_load_problems_name_the_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "missing.conf"))
    assert [(p.section, p.key) for p in info.value.problems] == [("file", "")]
    assert str(tmp_path / "missing.conf") in str(info.value)
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))  # a directory
    assert [(p.section, p.key) for p in info.value.problems] == [("file", "")]
    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"[xuna]\nagent_id = \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load(str(binary))
    assert [(p.section, p.key) for p in info.value.problems] == [("file", "")]

def test_config_error_lists_every_problem():
    with pytest.raises(ConfigError) as info:
        parse(XUNA + "[agent]\nprovider = nope\nhistory = meh\n", "/etc/e.conf")
    text = str(info.value)
    assert text.startswith("/etc/e.conf: 2 problem")
    assert "[agent] provider: " in text and "[agent] history: " in text
    assert str(Problem("a", "", "m")) == "[a]: m" and str(Problem("a", "k", "m")) == "[a] k: m"

def test_render_reads_back_as_the_same_config(tmp_path):
    tool = tmp_path / "t"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    text = ("[agent]\nprovider = napster\nhistory = off\nhistory_replay_turns = 0\n"
            "tool_timeout = 2.5\nmode = toggle\n"
            "[napster]\ncompanion_id = c1\nagent_id = ag\nfunctions = f1, f2\n"
            'provider_settings = {"temperature": 0.5, "x": [1, 2]}\ndisable_idle_timeout = yes\n'
            "[gpio]\nenabled = yes\nled = rgb\nred_pin = 5\ngreen_pin = 6\nblue_pin = 7\n"
            f"[tools]\nlights = {tool}\n")
    cfg = parse(text.replace("[napster]\n", "[napster]\napi_key = k3y-abcd\n"))
    rendered = render(cfg)
    assert "k3y-abcd" not in rendered
    assert "history = no" in rendered and "disable_idle_timeout = yes" in rendered
    assert "functions = f1, f2" in rendered and f"lights = {tool}" in rendered
    # unset values print as "key = " (an empty URL would not parse: leave those out)
    lines = [line for line in rendered.splitlines() if not line.endswith(" = ")]
    back = parse("\n".join(lines).replace("api_key = ***", "api_key = k3y-abcd  #"))
    for name in sections():
        assert back.section(name) == cfg.section(name), name
    assert back.tools == cfg.tools

def test_render_of_defaults_shows_every_key_and_empty_unset_values():
    rendered = render(Config())
    assert rendered.startswith("# effective configuration of <defaults>")
    for section, keys in cfgmod.documented_keys().items():
        assert f"\n[{section}]\n" in rendered
        for key in keys:
            assert f"\n{key} = " in rendered, key
    assert "\napi_key = \n" in rendered and "\nprovider_settings = \n" in rendered
    assert rendered.rstrip().endswith("[tools]")

def test_render_masks_a_secret_and_names_its_source():
    xuna = dataclasses.replace(Config().xuna, api_key=Secret("render-secret-5", "file /k"))
    cfg = dataclasses.replace(Config(), sections={**Config().sections, "xuna": xuna})
    line = next(l for l in render(cfg).splitlines() if l.startswith("api_key"))
    assert "render-secret-5" not in line and "***" in line and "file /k" in line

def test_ini_text_writes_sections_that_parse():
    text = cfgmod.ini_text({"xuna": {"agent_id": "a9"}, "agent": {"history": "off"}})
    cfg = parse(text)
    assert cfg.xuna.agent_id == "a9" and cfg.agent.history is False
    assert text.startswith("[xuna]\nagent_id = a9\n")

def test_state_dir_from_config_then_systemd_then_default(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/run/a:/run/b")
    assert str(cfgmod.state_dir(parse(XUNA))) == "/run/a"
    assert str(cfgmod.state_dir(parse(XUNA + "[agent]\nstate_dir = /srv/x\n"))) == "/srv/x"
    monkeypatch.delenv("STATE_DIRECTORY")
    assert str(cfgmod.state_dir(parse(XUNA))) == "/var/lib/edgevoice"
    monkeypatch.setenv("STATE_DIRECTORY", "")
    assert str(cfgmod.state_dir(parse(XUNA))) == "/var/lib/edgevoice"

def test_defaults_match_the_documented_example():
    cfg = parse(XUNA)
    assert cfg.agent.provider == "xuna" and cfg.agent.history is True
    assert cfg.agent.barge_in is True and cfg.agent.mode == "always-on"
    assert cfg.barge_in.gate is True and cfg.gpio.enabled is False

# -- the documentation is the schema -----------------------------------------------------------
def reference_rows() -> dict[str, dict[str, tuple[str, str]]]:
    """The README's configuration reference: {section: {key: (default cell, meaning)}}."""
    text = (ROOT / "README.md").read_text()
    reference = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, tuple[str, str]]] = {}
    section = None
    for line in reference.splitlines():
        head = re.match(r"\*\*\[(\w+)\]\*\*", line)
        if head:
            section = head.group(1)
            rows[section] = {}
            continue
        row = re.match(r"\| `(\w+)` \| (.*?) \| (.*) \|$", line)
        if row and section:
            rows[section][row.group(1)] = (row.group(2), row.group(3))
    return rows

def test_the_readme_reference_shows_every_key_with_its_default_and_meaning():
    rows = reference_rows()
    for section, cls in sections().items():
        assert set(rows[section]) == {f.name for f in section_keys(cls)}, section
        for fld in section_keys(cls):
            default = fld.default
            cell = "" if default in ("", None, ()) else f"`{value_type(fld).render(default)}`"
            meaning = fld.metadata["doc"]
            if value_type(fld).choices:
                meaning += " One of: " + ", ".join(value_type(fld).choices) + "."
            if value_type(fld).secret:
                meaning += (f" Or `{fld.name}_file = PATH`, or the systemd credential "
                            f"`{section}_{fld.name}`.")
            assert rows[section][fld.name] == (cell, meaning), f"[{section}] {fld.name}"

def test_the_example_config_shows_the_defaults():
    section = None
    shown = 0
    for line in (ROOT / "config" / "edgevoice.conf").read_text().splitlines():
        head = re.match(r"\[(\w+)\]", line)
        if head:
            section = head.group(1)
            continue
        item = re.match(r"# (\w+) = (.*)$", line)
        if not item or section not in sections():
            continue
        fields = {f.name: f for f in section_keys(sections()[section])}
        if item.group(1) not in fields or fields[item.group(1)].default in ("", None, ()):
            continue  # an example value, not a default
        key, raw = item.group(1), item.group(2).strip()
        cfg = parse(with_key(section, key, raw))
        assert getattr(getattr(cfg, section), key) == fields[key].default, f"[{section}] {key}"
        shown += 1
    assert shown >= 40

def test_a_relative_secret_file_of_text_without_a_path_is_found_from_here(tmp_path, monkeypatch):
    (tmp_path / "k").write_text("relative-secret-7\n")
    monkeypatch.chdir(tmp_path)
    cfg = parse(XUNA.replace("a1\n", "a1\napi_key_file = k\n"))  # path "<config>"
    assert cfg.xuna.api_key.reveal() == "relative-secret-7"
    assert cfg.xuna.api_key.source == f"file {tmp_path}/k"

def test_credentials_reach_sections_the_file_does_not_have(tmp_path, monkeypatch):
    (tmp_path / "voiceapi_api_key").write_text("cred-secret-8\n")
    (tmp_path / "navtalk_license").symlink_to("/proc/self/mem")  # unreadable
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    [problem] = problems(XUNA)
    assert (problem.section, problem.key) == ("navtalk", "license")
    (tmp_path / "navtalk_license").unlink()
    assert parse(XUNA).voiceapi.api_key.reveal() == "cred-secret-8"


def test_the_config_knows_its_file():
    cfg = parse(XUNA, "/etc/edgevoice/edgevoice.conf")
    assert cfg.path == "/etc/edgevoice/edgevoice.conf"
    assert render(cfg).startswith("# effective configuration of /etc/edgevoice/edgevoice.conf\n")


def test_a_pasted_secret_is_not_echoed_by_a_parse_error():
    try:
        parse("[xuna]\nagent_id = a\nsk_live_PASTED_SECRET_123\n")
    except ConfigError as exc:
        assert "sk_live_PASTED_SECRET_123" not in str(exc)
        assert "line 3" in str(exc)
    else:
        raise AssertionError("accepted a line without '='")


# -- reading small files: the config, a secret file, a credential ---------------------------
def test_a_secret_file_may_be_64k_and_is_read_whole_but_not_one_byte_more(tmp_path):
    key = tmp_path / "k"
    key.write_text("k" * (64 * 1024 - 1) + "Z")
    text = XUNA.replace("a1\n", f"a1\napi_key_file = {key}\n")
    assert parse(text).xuna.api_key.reveal() == "k" * (64 * 1024 - 1) + "Z"
    key.write_text("k" * 64 * 1024 + "Z")
    assert where(text) == {("xuna", "api_key_file")}


def test_read_small_file_says_why_it_refuses(tmp_path):
    import errno
    small = tmp_path / "small"
    small.write_text("12345")
    assert cfgmod.read_small_file(small, 5) == "12345"
    with pytest.raises(OSError) as info:
        cfgmod.read_small_file(small, 4)
    assert info.value.errno == errno.EFBIG and "4" in info.value.strerror
    with pytest.raises(OSError) as info:
        cfgmod.read_small_file(tmp_path, 100)  # a folder
    assert info.value.errno == errno.EINVAL and info.value.strerror
    # a file whose size the system does not know (st_size 0) is still cut at the limit
    with pytest.raises(OSError) as info:
        cfgmod.read_small_file(pathlib.Path("/proc/self/status"), 10)
    assert info.value.errno == errno.EFBIG and "10" in info.value.strerror


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    import os
    import threading
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            load(str(fifo))
        except ConfigError as exc:
            outcome.append(exc.problems)
        try:
            parse(XUNA.replace("a1\n", f"a1\napi_key_file = {fifo}\n"))
        except ConfigError as exc:
            outcome.append(exc.problems)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): let it go before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        reader.join(10)
        pytest.fail("opening a FIFO waited for a writer")
    assert [[(p.section, p.key) for p in ps] for ps in outcome] == [
        [("file", "")], [("xuna", "api_key_file")]]
