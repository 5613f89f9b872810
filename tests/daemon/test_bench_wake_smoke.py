"""Smoke test of scripts/bench_wake_latency.py: one wake word, one question (~8 s)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT


def test_the_wake_latency_bench_measures_one_wake():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_wake_latency.py"),
                          "--cycles", "1"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)["wake_word_session"]
    assert result["wakes_detected"] == result["sessions_opened"] == 1
    first = result["wake_to_first_frame_ms"]
    assert first["n"] == 1 and 0 < first["p50"] < 5000
    assert result["wake_to_streaming_ms"]["p50"] <= first["p50"]
    assert result["question_heard_in_full"] is True
