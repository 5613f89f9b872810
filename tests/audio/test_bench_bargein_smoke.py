"""Smoke test of scripts/bench_bargein.py: one small room, one round, a few seconds."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import replace

import pytest

from edgevoice.audio.bargein import BargeInSettings
from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "bench_bargein.py"



def test_espeak_ng_is_installed():
    """scripts/bootstrap installs espeak-ng: without it the bench cannot build its corpus."""
    assert shutil.which("espeak-ng"), "espeak-ng is missing: run ./scripts/bootstrap"

@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_bargein", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(bench, tmp_path_factory):
    return bench.build_corpus(str(tmp_path_factory.mktemp("corpus")))


def test_corpus_is_16k_speech(bench, corpus):
    assert len(corpus.agent) == len(bench.AGENT_PHRASES)
    assert len(corpus.user) == len(bench.USER_PHRASES)
    for sentence in corpus.agent:
        assert len(sentence) > bench.FS  # over a second each
        assert abs(bench.active_level_db(sentence) - bench.AGENT_LEVEL_DBFS) < 0.5


def test_one_room_gate_on_and_off(bench, corpus):
    room = [bench.Condition(delay_ms=50, atten_db=-12.0, rt60=0.15, seed=7)]
    on = bench.run(BargeInSettings(), corpus, conds=room, rounds=1)
    off = bench.run(replace(BargeInSettings(), gate=False), corpus, conds=room, rounds=1)
    levels = len(bench.USER_LEVELS_DB)
    for result in (on, off):
        assert result["trials"] == levels
        assert result["echo_only_minutes"] > 10 / 60
        assert set(result["missed_by_level_db"]) == {"-6", "0", "+6", "+12"}
        assert result["clean_signal_floor_ms"]["p50"] >= 20 * BargeInSettings().onset_frames
    # voice detection alone pauses on the agent's own echo: what the gate is for
    assert off["false_pauses"] > 0
    assert on["false_pauses"] <= off["false_pauses"]
