"""Reconnect soak (run by scripts/soak; prints JSON): N sessions against the hostile server,
each ended a different way (close frames, FIN, RST, oversized and fragmented messages,
deep JSON, hostile bootstrap answers), sampling this process's threads, fds and RSS after
every one. Thread and fd counts must come back to the baseline after every session; RSS
growth over the run is reported (target: < 2 MB over 1,000 cycles).

``--matrix`` instead runs each hostile case once with the default settings and reports how
long the session took to end and its peak RSS above the level before it (targets: a silent
link noticed within 10 s; peak under 2 x the configured limit).
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support.hostile import (Rig, config, counts, hostile_server, peak_rss,  # noqa: E402
                               reset_peak_rss, rss, settle)

# (bootstrap mode or None, WebSocket mode): every way a session can end quickly
CYCLE = [(None, "close"), (None, "closesilent"), (None, "fin"), (None, "reset"),
         (None, "oversized"), (None, "fragments"), (None, "deep"), ("ok", "close"),
         ("endless", "hello"), ("big", "hello"), ("deep", "hello"), ("gzipbomb", "hello")]
SLOW = [("drip", "hello"), ("slowbody", "hello"), (None, "drip"), (None, "silent")]  # seconds each


def soak(cycles: int, slow: bool = False, port: int | None = None) -> dict:
    plan = CYCLE + (SLOW if slow else [])
    if port is None:
        with hostile_server() as port:
            return soak(cycles, slow, port)
    rig = Rig()
    for http_mode, mode in plan:  # warm up: imports and first allocations
        rig.session(config(port, mode, http_mode, connect_timeout="1"))
    gc.collect()
    baseline = counts()
    rss_start = rss()
    started = time.monotonic()
    off_baseline = 0
    rss_max = rss_start
    outcomes: collections.Counter = collections.Counter()
    for i in range(cycles):
        http_mode, mode = plan[i % len(plan)]
        outcome, _ = rig.session(config(port, mode, http_mode, connect_timeout="1"))
        outcomes[f"{http_mode or '-'}/{mode}"] += 1
        if settle(baseline) != baseline:
            off_baseline += 1
        rss_max = max(rss_max, rss())
    gc.collect()
    threads, fds = settle(baseline)
    return {
        "cycles": cycles,
        "seconds": round(time.monotonic() - started, 1),
        "baseline_threads": baseline[0], "baseline_fds": baseline[1],
        "final_threads": threads, "final_fds": fds,
        "cycles_not_back_to_baseline": off_baseline,
        "rss_start_mb": round(rss_start / 2**20, 2),
        "rss_end_mb": round(rss() / 2**20, 2),
        "rss_growth_mb": round((rss() - rss_start) / 2**20, 2),
        "rss_max_growth_mb": round((rss_max - rss_start) / 2**20, 2),
        "sessions_by_ending": dict(outcomes),
    }


MATRIX = [("drip", "hello"), ("slowbody", "hello"), ("endless", "hello"), ("big", "hello"),
          ("gzipbomb", "hello"), ("deep", "hello"), (None, "oversized"), (None, "fragments"),
          (None, "big?bytes=3900000"), (None, "deep"), (None, "flood"), (None, "close"),
          (None, "closesilent"), (None, "fin"), (None, "reset"), (None, "drip"), (None, "silent")]


def matrix() -> dict:
    with hostile_server() as port:
        rig = Rig()
        rig.session(config(port, "close", "ok"))
        results = {}
        for http_mode, mode in MATRIX:
            gc.collect()
            before = rss()
            reset_peak_rss()
            # a message that is not refused leaves a working session: end it after a second
            seconds = 1.0 if mode.startswith("big") else None
            outcome, took = rig.session(config(port, mode, http_mode), seconds)
            print(f"{http_mode or '-'}/{mode}: {took:.2f} s", file=sys.stderr)
            results[f"{http_mode or '-'}/{mode}"] = {
                "ended_after_s": round(took, 2),
                "peak_rss_above_mb": round((peak_rss() - before) / 2**20, 2),
                "outcome": outcome.reason[:100]}
        return {"limits": {"max_message_bytes": 4_000_000, "bootstrap_body_bytes": 1 << 20,
                           "connect_timeout_s": 10}, "cases": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--slow", action="store_true",
                        help="also drip-fed bootstraps and silent links (seconds each)")
    parser.add_argument("--matrix", action="store_true",
                        help="each hostile case once: time to end and peak memory")
    args = parser.parse_args()
    print(json.dumps(matrix() if args.matrix else soak(args.cycles, args.slow), indent=2))


if __name__ == "__main__":
    main()
