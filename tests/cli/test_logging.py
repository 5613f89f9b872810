"""Logging: journald fields, secrets scrubbed everywhere, rate-limited bad-input lines."""

from __future__ import annotations

import io
import logging
import os
import sys

import pytest

from edgevoice import logsetup
from edgevoice.logsetup import JournalHandler, RateLimitedLog, set_context, under_journald
from edgevoice.redact import ScrubbingFormatter, Secret, redact_url


@pytest.fixture
def journal_lines(monkeypatch):
    """Records as python-systemd's own ``journal.send`` formats them: only the C-level
    ``sendv`` beneath it is replaced, so its field formatting runs for real."""
    from systemd import journal

    sent: list[dict[str, str]] = []

    def sendv(*lines):
        entry = {}
        for line in lines:
            assert isinstance(line, (str, bytes)), line
            text = line.decode() if isinstance(line, bytes) else line
            key, _, value = text.partition("=")
            entry[key] = value
        sent.append(entry)

    monkeypatch.setattr(journal, "sendv", sendv)
    return sent


def journal_logger(name: str) -> tuple[logging.Logger, JournalHandler]:
    handler = JournalHandler()
    handler.setFormatter(ScrubbingFormatter(logsetup.JOURNAL_FORMAT))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, handler


def test_journal_gets_structured_fields_and_no_secret(journal_lines, capsys):
    logger, handler = journal_logger("edgevoice.test.journal")
    key = Secret("sk-journal-secret-123")
    try:
        set_context(provider="xuna", session_id="conv_42")
        logger.info("connecting with %s", key.reveal(), extra={"event": "session_started"})
        set_context(session_id=None)
        logger.warning("bad message from the server")
    finally:
        logger.removeHandler(handler)
        set_context(provider=None)
    first, second = journal_lines
    assert first["MESSAGE"] == "edgevoice.test.journal: connecting with ***"
    assert first["PROVIDER"] == "xuna" and first["SESSION_ID"] == "conv_42"
    assert first["EVENT"] == "session_started" and first["PRIORITY"] == "6"
    assert first["SYSLOG_IDENTIFIER"] == "edgevoice" and first["LOGGER"] == logger.name
    assert int(first["CODE_LINE"]) > 0 and first["CODE_FILE"].endswith("test_logging.py")
    assert first["CODE_FUNC"] == "test_journal_gets_structured_fields_and_no_secret"
    assert "sk-journal-secret-123" not in repr(journal_lines)
    assert "SESSION_ID" not in second and second["PRIORITY"] == "4"
    assert capsys.readouterr().err == ""  # no "--- Logging error ---"


def test_a_record_the_journal_refuses_goes_to_stderr_scrubbed(monkeypatch, capsys):
    from systemd import journal

    def refuse(*lines):
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(journal, "sendv", refuse)
    logger, handler = journal_logger("edgevoice.test.refused")
    secret = Secret("tok-refused-secret-789")
    try:
        logger.error("could not connect with %s", secret.reveal())
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "could not connect with ***" in err  # the line itself is kept
    assert "Connection refused" in err and "test_logging.py" in err
    assert "tok-refused-secret-789" not in err
    assert "Logging error" not in err and "Arguments:" not in err


@pytest.mark.parametrize("handler_kind", ["journal", "stderr"])
def test_a_record_that_cannot_be_formatted_never_prints_its_arguments(handler_kind,
                                                                        journal_lines, capsys):
    secret = Secret("tok-badformat-secret-321")
    stream = io.StringIO()
    if handler_kind == "journal":
        logger, handler = journal_logger("edgevoice.test.badformat")
    else:
        handler = logsetup.ScrubbedStreamHandler(stream)
        handler.setFormatter(ScrubbingFormatter(logsetup.FORMAT))
        logger = logging.getLogger("edgevoice.test.badformat.stderr")
        logger.addHandler(handler)
        logger.propagate = False
    try:
        logger.error("one placeholder %d", secret.reveal(), "and a spare argument")
    finally:
        logger.removeHandler(handler)
    printed = capsys.readouterr().err + stream.getvalue()
    assert "could not be logged" in printed and "test_logging.py" in printed
    assert "tok-badformat-secret-321" not in printed
    assert "Arguments:" not in printed and "spare argument" not in printed
    assert journal_lines == []


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
