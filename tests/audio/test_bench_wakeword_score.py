"""scripts/bench_wakeword.py's scoring: what counts as a hit and what as a false accept."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_wakeword",
                                                  ROOT / "scripts" / "bench_wakeword.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EVENTS = [{"model": "alexa", "start_s": 10.0, "end_s": 10.8, "snr_db": 20, "voice": "en-us",
           "speed": 160, "pitch": 35},
          {"model": "okay_nabu", "start_s": 20.0, "end_s": 21.0, "snr_db": 10,
           "voice": "en-gb", "speed": 130, "pitch": 65}]


def test_a_detection_within_a_second_of_the_phrase_end_is_a_hit(bench):
    recall, stray = bench.score(EVENTS, [(11.7, "alexa"), (21.2, "okay_nabu")])
    assert recall["recall"] == 1.0 and stray == []
    assert recall["recall_by_snr"] == {"10 dB": 1.0, "20 dB": 1.0}


def test_late_early_doubled_or_wrong_model_detections_are_false_accepts(bench):
    found = [(9.9, "alexa"), (11.9, "alexa"), (20.5, "alexa"), (20.9, "okay_nabu"),
             (21.5, "okay_nabu")]
    recall, stray = bench.score(EVENTS, found)
    assert recall["per_model"]["alexa"] == {"phrases": 1, "hits": 0, "recall": 0.0}
    assert recall["per_model"]["okay_nabu"]["hits"] == 1
    assert stray == [(9.9, "alexa"), (11.9, "alexa"), (20.5, "alexa"), (21.5, "okay_nabu")]
    assert recall["recall_by_voice"] == {"en-gb": 1.0, "en-us": 0.0}
