"""deploy/grafana/edgevoice.json queries only what docs/metrics.md promises.

docs/metrics.md is the contract the exporter implements; a dashboard panel over a metric
or a label that is not in it would stay empty for ever, silently. This reads the contract's
tables (name, type, labels) and every PromQL expression of the dashboard.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "edgevoice.json"
CONTRACT = ROOT / "docs" / "metrics.md"
# Labels Prometheus adds itself (the scrape target) or histograms carry.
BUILTIN_LABELS = {"instance", "job", "le", "__name__"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def contract() -> dict[str, tuple[str, set[str]]]:
    """metric name -> (type, labels), from the rows of docs/metrics.md's tables."""
    metrics = {}
    for line in CONTRACT.read_text().splitlines():
        row = re.match(r"^\| `(edgevoice_\w+)` \|([^|]+)\|([^|]*)\|", line)
        if row:
            labels = set(re.findall(r"`(\w+)`", row[3]))
            metrics[row[1]] = (row[2].split()[0], labels)
    return metrics


def expressions() -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and template queries."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def series_metric(series: str, metrics: dict) -> str | None:
    """The contract's metric a series name belongs to (a histogram's _bucket -> itself)."""
    if series in metrics:
        return series
    for suffix in HISTOGRAM_SERIES:
        base = series[: -len(suffix)]
        if series.endswith(suffix) and metrics.get(base, ("",))[0] == "histogram":
            return base
    return None


def test_the_contract_follows_the_naming_conventions():
    metrics = contract()
    for name, (kind, labels) in metrics.items():
        assert kind in ("counter", "gauge", "histogram"), name
        assert name.endswith("_total") == (kind == "counter"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        assert not labels & BUILTIN_LABELS, name
    # what the issue asks for, by name
    assert {"edgevoice_state", "edgevoice_build_info", "edgevoice_sessions_started_total",
            "edgevoice_sessions_failed_total",
            "edgevoice_reconnects_total", "edgevoice_reconnect_backoff_seconds",
            "edgevoice_auth_failures_total", "edgevoice_barge_ins_total",
            "edgevoice_bargein_onset_to_pause_seconds", "edgevoice_capture_to_wire_seconds",
            "edgevoice_playback_underruns_total", "edgevoice_mic_frames_dropped_total",
            "edgevoice_tool_calls_total", "edgevoice_config_reloads_total"} <= set(metrics)
    assert metrics["edgevoice_build_info"][1] == {"version", "provider", "mode"}
    assert metrics["edgevoice_barge_ins_total"][1] == {"kind"}


def test_the_dashboard_is_json_and_queries_only_contract_metrics_and_labels():
    metrics = contract()
    exprs = expressions()
    assert exprs, "no PromQL found in the dashboard"
    used = set()
    for expr in exprs:
        for series in re.findall(r"\bedgevoice_\w+", expr):
            metric = series_metric(series, metrics)
            assert metric, f"{series} (in {expr!r}) is not in docs/metrics.md"
            used.add(metric)
            # label matchers right after this series name must be its labels
            for selector in re.findall(rf"\b{series}\{{([^}}]*)\}}", expr):
                for label in re.findall(r"(\w+)\s*[=!]~?", selector):
                    assert label in metrics[metric][1] | BUILTIN_LABELS, (label, expr)
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in re.split(r"\s*,\s*", group.strip()):
                assert any(label in labels for _, labels in metrics.values()) or \
                    label in BUILTIN_LABELS, (label, expr)
    # the panels the issue asks for: state per device, barge-in latency, reconnects,
    # underruns
    assert {"edgevoice_state", "edgevoice_bargein_onset_to_pause_seconds",
            "edgevoice_reconnects_total", "edgevoice_playback_underruns_total"} <= used


def test_the_dashboard_maps_every_state_of_the_contract():
    """The state timeline turns the one-gauge-per-state series into one number per device;
    each state of the contract needs its term and its value mapping."""
    states = set(re.findall(r"`(\w+)`", CONTRACT.read_text().split("`state` is one of", 1)[1]
                            .split(". A state", 1)[0]))
    panel = next(p for p in json.loads(DASHBOARD.read_text())["panels"]
                 if p["type"] == "state-timeline")
    expr = panel["targets"][0]["expr"]
    assert set(re.findall(r'state="(\w+)"', expr)) == states
    mapped = {m["text"] for m in panel["fieldConfig"]["defaults"]["mappings"][0]["options"].values()}
    assert mapped == states
