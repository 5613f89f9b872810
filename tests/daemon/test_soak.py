"""A short reconnect soak (scripts/soak runs 1,000 cycles): 50 sessions against the hostile
server, each ended another way; thread and fd counts back to the baseline after every one,
and no memory growth."""

from __future__ import annotations

import importlib.util

from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "soak.py"


def test_fifty_reconnects_leave_no_thread_fd_or_memory_behind():
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    result = soak.soak(50)
    assert result["cycles_not_back_to_baseline"] == 0, result
    assert (result["final_threads"], result["final_fds"]) == (
        result["baseline_threads"], result["baseline_fds"])
    assert result["rss_growth_mb"] < 2.0, result
