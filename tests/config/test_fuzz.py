"""Property fuzzing of the config parser, and the values that used to pass check-config
and then break ``run``: every bad config is a ConfigError naming its section and key."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given

from edgevoice.config import ConfigError, load, parse, sections
from tests.support import ROOT
from tests.support.fuzz import FUZZ, config_texts


def _numbers_finite(cfg) -> bool:
    for name in sections():
        for fld in dataclasses.fields(cfg.section(name)):
            value = getattr(cfg.section(name), fld.name)
            if isinstance(value, float) and not math.isfinite(value):
                return False
    return True


@FUZZ
@given(config_texts())
def test_any_config_text_is_a_config_or_a_config_error(text):
    try:
        cfg = parse(text)
    except ConfigError as exc:
        assert exc.problems
        assert all(p.section for p in exc.problems)
        return
    assert _numbers_finite(cfg)


BAD = [
    ("[session]\nconnect_timeout = nan\n", "[session] connect_timeout"),
    ("[audio]\nplayback_buffer_s = NaN\n", "[audio] playback_buffer_s"),
    ("[session]\nidle_timeout = inf\n", "[session] idle_timeout"),
    ("[session]\nping_interval = 1e999\n", "[session] ping_interval"),
    ("[agent]\nstate_dir = /var/lib/a\x00b\n", "[agent] state_dir"),
    ("[agent]\nhistory = no\n[xuna]\nagent_id = a\nprompt = " + "x" * 70_000 + "\n",
     "[xuna] prompt"),
    ('[napster]\nprovider_settings = {"t": NaN}\n', "[napster] provider_settings"),
    ("[napster]\nprovider_settings = " + "[" * 5000 + "\n", "[napster] provider_settings"),
    ("[audio]\nbackend = file\noutput_file = /" + "a" * 5000 + "/x.wav\n", "[audio] output_file"),
    ("[tools]\nt = /" + "a" * 5000 + "\n", "[tools] t"),
]


@pytest.mark.parametrize("text,where", BAD)
def test_values_that_break_run_are_refused_by_name(text, where):
    with pytest.raises(ConfigError) as info:
        parse(text if "[xuna]" in text else "[xuna]\nagent_id = a\n" + text)
    assert where in str(info.value), str(info.value)[:500]


@pytest.mark.parametrize("kind", ["fifo", "device", "huge", "directory"])
def test_secret_files_are_read_without_blocking_and_bounded(tmp_path, kind):
    path = tmp_path / "key"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = "/dev/zero"
    elif kind == "huge":
        path.write_bytes(b"k" * (2 << 20))
    else:
        path.mkdir()
    with pytest.raises(ConfigError) as info:
        parse(f"[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = http://x\n"
              f"api_key_file = {path}\n")
    assert "[voiceapi] api_key_file" in str(info.value)


def test_the_config_file_itself_may_not_be_a_fifo(tmp_path):
    fifo = tmp_path / "edgevoice.conf"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        load(str(fifo))
    assert "not a regular file" in str(info.value)


def test_check_config_exits_78_naming_the_key_for_what_run_cannot_use(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[xuna]\nagent_id = a\n[audio]\nplayback_buffer_s = nan\n"
                    "[agent]\nstate_dir = /tmp/a\x00b\n")
    result = subprocess.run([sys.executable, "-m", "edgevoice", "check-config", "--config",
                             str(conf)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 78
    assert "[audio] playback_buffer_s" in result.stderr
    assert "[agent] state_dir" in result.stderr
    assert "Traceback" not in result.stderr
