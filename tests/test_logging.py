"""Logging: journald fields, secrets scrubbed everywhere, rate-limited bad-input lines."""

from __future__ import annotations

import io
import logging
import os
import sys

from edgevoice import logsetup
from edgevoice.logsetup import JournalHandler, RateLimitedLog, set_context, under_journald
from edgevoice.redact import ScrubbingFormatter, Secret, redact_url


def test_journal_gets_structured_fields_and_no_secret():
    sent = []
    handler = JournalHandler(send=lambda msg, **fields: sent.append((msg, fields)))
    handler.setFormatter(ScrubbingFormatter(logsetup.JOURNAL_FORMAT))
    logger = logging.getLogger("edgevoice.test.journal")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    key = Secret("sk-journal-secret-123")
    try:
        set_context(provider="xuna", session_id="conv_42")
        logger.info("connecting with %s", key.reveal(), extra={"event": "session_started"})
        set_context(session_id=None)
        logger.warning("bad message from the server")
    finally:
        logger.removeHandler(handler)
        set_context(provider=None)
    (msg, fields), (msg2, fields2) = sent
    assert msg == "edgevoice.test.journal: connecting with ***"
    assert fields["PROVIDER"] == "xuna" and fields["SESSION_ID"] == "conv_42"
    assert fields["EVENT"] == "session_started" and fields["PRIORITY"] == "6"
    assert fields["SYSLOG_IDENTIFIER"] == "edgevoice"
    assert "sk-journal-secret-123" not in repr(sent)
    assert "SESSION_ID" not in fields2 and fields2["PRIORITY"] == "4"


def test_journald_detection_follows_journal_stream(monkeypatch):
    st = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert under_journald()
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not under_journald()
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not under_journald()


def test_stderr_lines_are_scrubbed_tracebacks_included():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logsetup.setup_logging("info", stream=stream)
    secret = Secret("tok-very-secret-456")
    try:
        raise RuntimeError(f"server said no to {secret.reveal()}")
    except RuntimeError:
        logging.getLogger("edgevoice.test").exception("failed with %s", secret.reveal())
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert "tok-very-secret-456" not in stream.getvalue()
    assert stream.getvalue().count("***") >= 2


def test_urls_are_logged_with_query_values_masked():
    shown = redact_url("wss://x.example/realtime?license=L1C3NSE&name=navtalk.Leo&token=abc")
    assert shown == "wss://x.example/realtime?license=***&name=navtalk.Leo&token=***"
    assert redact_url("wss://user:pw@x.example/p?agent_id=a1") == "wss://x.example/p?agent_id=a1"


def test_rate_limited_log_counts_what_it_skipped(caplog):
    limited = RateLimitedLog(logging.getLogger("edgevoice.test.rl"), interval=60)
    for _ in range(5):
        limited.warning("k", "bad thing")
    assert [r.getMessage() for r in caplog.records] == ["bad thing"]
    limited._last["k"] -= 61
    limited.warning("k", "bad thing")
    assert caplog.records[-1].getMessage() == "bad thing (4 more like this not shown)"
