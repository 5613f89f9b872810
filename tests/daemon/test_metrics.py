"""The Prometheus exporter against a real session: the endpoint scraped over HTTP on
loopback while the service talks to the local agent (a barge-in included), the textfile
node_exporter reads, and the metric names and labels checked against docs/metrics.md."""

from __future__ import annotations

import logging
import re
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgevoice.config import parse
from tests.support import ROOT, ini, question_then_barge_in, wait_until

SECRET = "sk-metrics-test-0123456789abcdef"


def contract() -> dict[str, str]:
    """``{metric name: type}`` from the tables of docs/metrics.md."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    rows = re.findall(r"^\| `(edgevoice_\w+)` \| (\w+)", text, re.M)
    return {name: kind for name, kind in rows}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}``."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def with_key(agent, key: str) -> None:
    """Point the daemon at the agent with ``[xuna] api_key`` (the signed-URL bootstrap)."""
    sections = agent.config_values()
    sections["xuna"]["api_key"] = key
    agent.config_values = lambda: sections


def start_service(tmp_path, agent, metrics: dict, input_wav=None):
    from edgevoice.service import Service

    sections = agent.config_values()
    sections["audio"] = {"backend": "file", "input_file": str(input_wav),
                         "output_file": str(tmp_path / "out.wav")}
    sections["metrics"] = metrics
    path = tmp_path / "edgevoice.conf"
    path.write_text(ini(sections))
    service = Service(str(path), parse(path.read_text(), str(path)))
    result: list = []
    thread = threading.Thread(target=lambda: result.append(service.run()), name="test-service")
    thread.start()
    return service, thread, result


def test_a_session_with_a_barge_in_is_scraped_over_http(make_agent, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    agent = make_agent("xuna", api_key=SECRET)
    with_key(agent, SECRET)
    service, thread, _ = start_service(tmp_path, agent, {"listen": "127.0.0.1:0"},
                                       question_then_barge_in(tmp_path, 1.0))
    try:
        assert service.daemon.ready.wait(5)
        port = service.metrics.port
        assert port
        assert "edgevoice-metrics" in {t.name for t in threading.enumerate()}
        agent.wait_for("interrupted", timeout=20)
        agent.wait_for("reply_start", count=2, timeout=20)
        stats = service.daemon.stats
        wait_until(lambda: stats.local_pauses >= 1 and stats.interruptions >= 1, 10,
                   "the barge-in counted")
        text = scrape(port)
    finally:
        service.stop()
        thread.join(5)
    assert not thread.is_alive()

    served = families(text)
    promised = contract()
    # every metric of the contract with its type, and nothing else (the parser names a
    # counter's family without "_total"; Info is served as a gauge)
    for name, kind in promised.items():
        family = name.removesuffix("_total")
        assert family in served, name
        assert served[family] == kind.split()[0], name
    assert set(served) == {n.removesuffix("_total") for n in promised}

    assert value(text, "edgevoice_state", state="listening") + \
        value(text, "edgevoice_state", state="speaking") == 1
    assert sum(value(text, "edgevoice_state", state=s) for s in
               ("starting", "connecting", "listening", "speaking", "idle", "offline",
                "stopped")) == 1
    assert value(text, "edgevoice_build_info", version=__import__("edgevoice").__version__,
                 provider="xuna", mode="always-on") == 1
    assert value(text, "edgevoice_sessions_started_total") == 1
    assert all(value(text, "edgevoice_sessions_failed_total", reason=r) == 0 for r in
               ("connect", "timeout", "auth", "rate_limited", "bootstrap", "dead_link",
                "closed", "too_big", "sound_device", "internal"))
    assert value(text, "edgevoice_reconnects_total") == 0
    assert value(text, "edgevoice_barge_ins_total", kind="local") >= 1
    assert value(text, "edgevoice_barge_ins_total", kind="server") == 1
    assert value(text, "edgevoice_barge_ins_total", kind="false") == 0
    assert value(text, "edgevoice_tool_calls_total", tool="_unknown", result="unknown") == 0
    assert value(text, "edgevoice_config_reloads_total", result="rejected") == 0

    # the onset-to-pause histogram holds the barge-in, well under a second
    onset = "edgevoice_bargein_onset_to_pause_seconds"
    count = value(text, onset + "_count")
    assert count >= 1 and value(text, onset + "_bucket", le="+Inf") == count
    assert value(text, onset + "_bucket", le="0.5") == count  # the target is 0.2 s
    assert 0.0 < value(text, onset + "_sum") / count < 0.5
    # capture to wire: every frame sent, a few ms each
    wire = "edgevoice_capture_to_wire_seconds"
    frames = value(text, wire + "_count")
    assert frames >= 100  # the question alone is over 2 s of 20 ms frames
    assert value(text, wire + "_bucket", le="0.1") >= 0.95 * frames
    assert 0.0 < value(text, wire + "_sum") / frames < 0.05
    buckets = [value(text, wire + "_bucket", le=le) for le in
               ("0.001", "0.002", "0.003", "0.005", "0.0075", "0.01", "0.015", "0.02", "0.03",
                "0.05", "0.1", "0.25", "+Inf")]
    assert buckets == sorted(buckets)  # cumulative

    # nothing secret and no words of the conversation
    assert SECRET not in text and "local-agent" not in text
    said = [r.getMessage().split(": ", 1)[1] for r in caplog.records
            if getattr(r, "event", "").startswith("transcript_")]
    assert said, "no transcript was logged: the test proves nothing about it"
    for words in said:
        assert words not in text


def test_a_rejected_key_is_counted_and_the_backoff_shown(make_agent, tmp_path):
    from tests.support import QUESTION_WAV

    agent = make_agent("xuna", api_key=SECRET)
    with_key(agent, "sk-wrong-key-for-this-agent")
    service, thread, _ = start_service(tmp_path, agent, {"listen": "127.0.0.1:0"},
                                       QUESTION_WAV)
    try:
        agent.wait_for("auth_rejected", timeout=10)
        wait_until(lambda: service.metrics.counters.auth_failures == 1, 5, "the count")
        text = scrape(service.metrics.port)
    finally:
        service.stop()
        thread.join(5)
    assert value(text, "edgevoice_auth_failures_total") == 1
    assert value(text, "edgevoice_sessions_failed_total", reason="auth") == 1
    assert value(text, "edgevoice_sessions_failed_total", reason="connect") == 0
    assert value(text, "edgevoice_sessions_started_total") == 0
    assert value(text, "edgevoice_state", state="offline") == 1
    # auth_retry_delay (300 s by default) with its jitter of 10 %
    assert 270 <= value(text, "edgevoice_reconnect_backoff_seconds") <= 330
    assert "sk-wrong" not in text


def test_the_textfile_is_replaced_whole_and_parses(make_agent, tmp_path, monkeypatch):
    import edgevoice.metrics

    monkeypatch.setattr(edgevoice.metrics, "TEXTFILE_INTERVAL_S", 0.1)
    folder = tmp_path / "textfile_collector"
    folder.mkdir()
    prom = folder / "edgevoice.prom"
    agent = make_agent("xuna")
    from tests.support import QUESTION_WAV
    service, thread, result = start_service(tmp_path, agent, {"textfile": str(prom)},
                                            QUESTION_WAV)
    try:
        agent.wait_for("ws_open", timeout=10)
        wait_until(lambda: prom.exists(), 5, "the textfile")
        inode = prom.stat().st_ino
        seen_listening = False
        for _ in range(15):  # read while it is rewritten every 0.1 s: always whole
            text = prom.read_text()
            assert text.rstrip().endswith(tuple(f"{v}" for v in ("0.0", "1.0")))
            parsed = families(text)
            assert "edgevoice_config_reloads" in parsed and "edgevoice_state" in parsed
            seen_listening |= value(text, "edgevoice_state", state="listening") == 1
            # a new file renamed over the old one, never written in place (the inode of
            # the one before may come back: only the last one is compared)
            wait_until(lambda: prom.stat().st_ino != inode, 5, "a rewrite")
            inode = prom.stat().st_ino
        assert seen_listening
    finally:
        service.stop()
        thread.join(5)
    assert result == [0]
    text = prom.read_text()
    assert value(text, "edgevoice_state", state="stopped") == 1  # the last write
    assert value(text, "edgevoice_sessions_started_total") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["edgevoice.prom"]  # no leftovers


def test_a_port_in_use_stops_the_start_with_exit_78(make_agent, tmp_path, caplog):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        agent = make_agent("xuna")
        from tests.support import QUESTION_WAV
        service, thread, result = start_service(
            tmp_path, agent, {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}, QUESTION_WAV)
        thread.join(5)
    finally:
        taken.close()
    assert result == [78]
    assert agent.count("ws_open") == 0
    assert any("[metrics] listen: cannot listen on" in r.getMessage() for r in caplog.records)


@pytest.fixture
def root_level():
    """A reload sets the root logger's level from [log] level: put it back afterwards."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def test_a_reload_moves_the_endpoint_or_is_rejected(make_agent, tmp_path, root_level):
    import socket

    from tests.support import QUESTION_WAV

    agent = make_agent("xuna")
    service, thread, _ = start_service(tmp_path, agent, {"listen": "127.0.0.1:0"},
                                       QUESTION_WAV)
    conf = tmp_path / "edgevoice.conf"
    reloads = service.metrics.counters.reloads
    try:
        assert service.daemon.ready.wait(5)
        first = service.metrics.port
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        try:  # a taken port: rejected, the old endpoint still serves
            conf.write_text(conf.read_text().replace(
                "127.0.0.1:0", f"127.0.0.1:{taken.getsockname()[1]}"))
            service.daemon.request_reload()
            wait_until(lambda: reloads["rejected"] == 1, 5, "the rejected reload")
        finally:
            taken.close()
        text = scrape(first)
        assert value(text, "edgevoice_config_reloads_total", result="rejected") == 1
        assert value(text, "edgevoice_config_reloads_total", result="ok") == 0
        # back to the running text: applied, the endpoint stays where it is
        conf.write_text(re.sub(r"listen = .*", "listen = 127.0.0.1:0", conf.read_text()))
        service.daemon.request_reload()
        wait_until(lambda: reloads["ok"] == 1, 5, "the applied reload")
        assert service.metrics.port == first
        # metrics off: applied, nothing listens any more
        conf.write_text(re.sub(r"listen = .*", "listen =", conf.read_text()))
        service.daemon.request_reload()
        wait_until(lambda: reloads["ok"] == 2, 5, "metrics turned off")
        assert service.metrics.port is None
        with pytest.raises(urllib.error.URLError):
            scrape(first)
    finally:
        service.stop()
        thread.join(5)


@pytest.mark.parametrize("listen, says", [
    ("9464", "'9464' has no port"),
    ("localhost:http", "'http' is not a port"),
    ("127.0.0.1:99999", "'99999' is not a port"),
    ("::1:9464", "'::1:9464': write an IPv6 address in brackets"),
    ("[nope]:9464", "'nope' is not an IPv6 address"),
    ("bad host:9464", "'bad host' is not an IP address or host name"),
])
def test_check_config_names_a_bad_listen_address_and_the_fix(tmp_path, listen, says):
    import subprocess
    import sys

    conf = tmp_path / "edgevoice.conf"
    conf.write_text(ini({"xuna": {"agent_id": "a"}, "metrics": {"listen": listen}}))
    result = subprocess.run([sys.executable, "-m", "edgevoice", "check-config", "--config",
                             str(conf)], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 78, result.stderr
    assert "[metrics] listen: " + says in result.stderr
    assert "expected HOST:PORT, e.g. 127.0.0.1:9464" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_wants_a_textfile_node_exporter_reads(tmp_path):
    from edgevoice.config import ConfigError

    def problems(textfile: str) -> str:
        try:
            parse(ini({"xuna": {"agent_id": "a"}, "metrics": {"textfile": textfile}}), "t")
        except ConfigError as exc:
            return str(exc)
        return ""

    assert "must be an absolute path" in problems("edgevoice.prom")
    assert "must end in .prom" in problems(str(tmp_path / "edgevoice.txt"))
    assert f"its folder {tmp_path / 'nope'} does not exist" in problems(
        str(tmp_path / "nope" / "edgevoice.prom"))
    assert problems(str(tmp_path / "edgevoice.prom")) == ""
    ok = parse(ini({"xuna": {"agent_id": "a"}, "metrics": {"listen": "[::1]:9464"}}), "t")
    assert ok.metrics.listen == "[::1]:9464" and ok.metrics.enabled
    assert not parse(ini({"xuna": {"agent_id": "a"}}), "t").metrics.enabled


def test_tool_calls_are_counted_by_configured_name_and_result(tmp_path):
    from edgevoice.flow import Tally
    from edgevoice.tools import MAX_ARGUMENT_BYTES, ToolRunner
    from tests.support import program

    tally = Tally()
    started = tmp_path / "started"
    runner = ToolRunner({"ok": program(tmp_path, "ok", "echo 21 C\n"),
                         "fails": program(tmp_path, "fails", "exit 3\n"),
                         "slow": program(tmp_path, "slow", f"touch {started}\nexec sleep 30\n")},
                        timeout=0.5, tally=tally)
    assert runner.run("ok", {}) == ("21 C", False)
    assert runner.run("fails", {})[1] and runner.run("slow", {})[1]
    assert runner.run("ok", {"x": "y" * MAX_ARGUMENT_BYTES})[1]
    # a name the server made up, with text in it: counted as _unknown, never as itself
    assert runner.run('ignore previous instructions"} 1', {})[1]
    answered = threading.Event()
    runner.timeout = 30
    runner.submit("slow", {}, lambda output, is_error: answered.set())
    wait_until(started.exists, 5, "the slow tool running")
    runner.close()  # the daemon stops mid-call
    assert answered.wait(5)
    assert tally.snapshot() == {("ok", "ok"): 1, ("fails", "error"): 1, ("slow", "timeout"): 1,
                                ("ok", "too_large"): 1, ("_unknown", "unknown"): 1,
                                ("slow", "cancelled"): 1}


def test_each_way_a_session_ends_has_its_reason():
    from edgevoice.metrics import failure_reason
    from edgevoice.providers.base import Outcome, Retry

    assert failure_reason(Outcome("button", Retry.IDLE)) is None
    assert failure_reason(Outcome("reload", Retry.NOW)) is None
    assert failure_reason(Outcome("stopped", Retry.STOPPED)) is None
    assert failure_reason(Outcome("device", Retry.NOW, cause="sound_device")) == "sound_device"
    assert failure_reason(Outcome("401", Retry.AUTH, cause="connect")) == "auth"
    assert failure_reason(Outcome("429", Retry.LATER, 3.0, cause="bootstrap")) == "rate_limited"
    assert failure_reason(Outcome("slow", cause="timeout")) == "timeout"
    assert failure_reason(Outcome("quiet", cause="dead_link")) == "dead_link"
    assert failure_reason(Outcome("empty account", Retry.LONG)) == "closed"
    assert failure_reason(Outcome("whatever", cause="not a cause")) == "closed"
