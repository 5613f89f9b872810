"""The transcript file's edge cases: no turns, fewer turns than asked for, lines that are not
turns, a file that cannot be read or written, the size cap at and just past its limit."""

from __future__ import annotations

import datetime
import json
import logging
import os

import pytest

from edgevoice.history import FILE_NAME, History


def lines_of(history: History) -> list[bytes]:
    return history.path.read_bytes().splitlines(keepends=True)


def test_open_creates_a_private_folder_and_leaves_no_probe(tmp_path):
    history = History.open(tmp_path / "a" / "b", 4096)
    assert history is not None and history.path == tmp_path / "a" / "b" / FILE_NAME
    assert history.max_bytes == 4096
    assert (os.stat(tmp_path / "a" / "b").st_mode & 0o777) == 0o700
    assert list((tmp_path / "a" / "b").iterdir()) == []  # nothing written until a turn comes
    assert history.turns() == [] and history.recent_user_turns(5) == []


def test_open_an_existing_folder_keeps_its_turns(tmp_path):
    first = History.open(tmp_path, 4096)
    first.append("user", "kept", "s1")
    again = History.open(tmp_path, 4096)
    assert [t["text"] for t in again.turns()] == ["kept"]


def test_a_turn_is_one_json_line_with_time_session_role_and_text(tmp_path):
    history = History.open(tmp_path, 64 * 1024)
    before = datetime.datetime.now(datetime.timezone.utc)
    history.append("agent", "Grüß dich ☃\nzweite Zeile", None)
    after = datetime.datetime.now(datetime.timezone.utc)
    [line] = lines_of(history)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert "Grüß".encode() in line  # stored as UTF-8, readable with less
    record = json.loads(line)
    assert set(record) == {"t", "session", "role", "text"}
    assert record["role"] == "agent" and record["session"] is None
    assert record["text"] == "Grüß dich ☃\nzweite Zeile"
    when = datetime.datetime.fromisoformat(record["t"])
    assert when.tzinfo is not None
    assert before - datetime.timedelta(seconds=1) <= when <= after + datetime.timedelta(seconds=1)
    assert len(record["t"].split(".")[1].split("+")[0]) == 3  # milliseconds


@pytest.mark.parametrize("count, expected", [
    (0, []), (-1, []), (1, ["u3"]), (2, ["u2", "u3"]), (3, ["u1", "u2", "u3"]),
    (10, ["u1", "u2", "u3"])])
def test_recent_user_turns(tmp_path, count, expected):
    history = History.open(tmp_path, 64 * 1024)
    for role, text in [("user", "u1"), ("agent", "a1"), ("user", "u2"), ("agent", "a2"),
                       ("user", "u3"), ("agent", "a3")]:
        history.append(role, text, "s")
    assert history.recent_user_turns(count) == expected


def test_lines_that_are_not_turns_are_skipped(tmp_path):
    path = tmp_path / FILE_NAME
    good = {"t": "2026-01-01T00:00:00.000+00:00", "session": "s", "role": "user", "text": "ok"}
    path.write_bytes(b"\n".join([
        json.dumps(good).encode(),
        b"",
        b"not json at all",
        b"[1, 2, 3]",
        b'"a string"',
        json.dumps({"role": "user"}).encode(),
        json.dumps({"role": "user", "text": 5}).encode(),
        json.dumps({"role": "user", "text": None}).encode(),
        b"\xff\xfe binary",
        json.dumps(dict(good, text="also ok")).encode(),
        json.dumps({"text": "no role"}).encode(),
    ]) + b"\n")
    history = History(path, 64 * 1024)
    assert [t["text"] for t in history.turns()] == ["ok", "also ok", "no role"]
    assert history.recent_user_turns(5) == ["ok", "also ok"]


def test_a_turn_after_a_torn_line_starts_on_its_own_line(tmp_path):
    path = tmp_path / FILE_NAME
    path.write_bytes(b'{"t": "x", "role": "user", "text": "whole"}\n{"t": "x", "role": "us')
    history = History(path, 64 * 1024)
    history.append("user", "after", "s")
    history.append("user", "later", "s")
    assert [t["text"] for t in history.turns()] == ["whole", "after", "later"]
    assert all(line.endswith(b"\n") for line in lines_of(history))


def test_a_whole_file_gets_no_extra_blank_lines(tmp_path):
    history = History.open(tmp_path, 64 * 1024)
    history.append("user", "one", "s")
    fresh = History(history.path, 64 * 1024)  # the daemon restarted
    fresh.append("user", "two", "s")
    assert [json.loads(l)["text"] for l in lines_of(fresh)] == ["one", "two"]
    empty = tmp_path / "empty" / FILE_NAME
    empty.parent.mkdir()
    empty.write_bytes(b"")
    third = History(empty, 64 * 1024)
    third.append("user", "first", "s")
    assert empty.read_bytes().startswith(b"{")


def test_unreadable_file_reads_as_no_turns_with_one_warning(tmp_path, caplog):
    history = History(tmp_path, 4096)  # a folder where the file should be
    with caplog.at_level(logging.WARNING, logger="edgevoice.history"):
        assert history.turns() == []
        assert history.turns() == []
        assert history.recent_user_turns(3) == []
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_a_failed_write_loses_the_turn_not_the_daemon(tmp_path, caplog):
    history = History.open(tmp_path / "state", 4096)
    history.append("user", "kept", "s")
    os.unlink(history.path)
    os.rmdir(tmp_path / "state")
    with caplog.at_level(logging.WARNING, logger="edgevoice.history"):
        history.append("user", "lost", "s")  # no exception
        history.append("user", "lost too", "s")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited, not one line per turn
    assert history.turns() == []


def test_the_cap_is_kept_at_its_limit_and_compacted_just_past_it(tmp_path):
    history = History.open(tmp_path, 10 ** 9)
    for i in range(6):
        history.append("user", f"turn {i}", "s")
    size = history.path.stat().st_size
    at_limit = History(history.path, size)  # exactly at the cap: nothing is dropped
    at_limit.append("user", "", "s")
    at_limit_size = history.path.stat().st_size
    capped = History(history.path, at_limit_size)
    capped.append("user", "turn 6", "s")  # just past the cap: compacted
    texts = [t["text"] for t in capped.turns()]
    assert capped.path.stat().st_size <= at_limit_size
    assert texts[-1] == "turn 6" and "turn 0" not in texts
    assert texts == [t for t in ["turn 0", "turn 1", "turn 2", "turn 3", "turn 4", "turn 5",
                                 "", "turn 6"] if t in texts]
    assert not history.path.with_suffix(".tmp").exists()


def test_a_file_right_at_the_cap_keeps_every_turn(tmp_path):
    history = History.open(tmp_path, 10 ** 9)
    for i in range(5):
        history.append("user", f"turn {i}", "s")
    size = history.path.stat().st_size
    history.path.unlink()
    exact = History(history.path, size)
    for i in range(5):
        exact.append("user", f"turn {i}", "s")
    assert [t["text"] for t in exact.turns()] == [f"turn {i}" for i in range(5)]


def test_compaction_keeps_whole_lines_newest_last(tmp_path):
    history = History.open(tmp_path, 2048)
    for i in range(100):
        history.append("agent" if i % 2 else "user", f"{i:03d} " + "w" * (i % 7), f"s{i // 10}")
        assert history.path.stat().st_size <= 2048
        raw = history.path.read_bytes()
        assert raw.endswith(b"\n")
        texts = [t["text"] for t in history.turns()]
        assert len(texts) == raw.count(b"\n") and texts[-1].startswith(f"{i:03d}")
        assert texts == sorted(texts)
    assert len(texts) >= 5


def test_write_failures_are_logged_once_per_five_minutes(tmp_path, caplog, monkeypatch):
    from edgevoice import logsetup
    now = [5000.0]
    monkeypatch.setattr(logsetup, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))
    history = History(tmp_path, 4096)  # a folder where the file should be: every write fails
    caplog.set_level(logging.WARNING, logger="edgevoice.history")
    history.append("user", "a", "s")
    now[0] += 299.0
    history.append("user", "b", "s")
    assert len(caplog.records) == 1
    now[0] += 1.5
    history.append("user", "c", "s")
    assert len(caplog.records) == 2 and "1 more" in caplog.records[-1].getMessage()


# -- a turn's size, compaction's arithmetic, the file's mode, a short write -----------------
def ascii_turns(history: History, count: int, first: int = 0) -> None:
    """``count`` user turns whose lines are 100 bytes each (83 bytes of JSON around the text)."""
    for i in range(first, first + count):
        history.append("user", f"turn {i:012d}", "s")


def test_ascii_turns_are_100_bytes(tmp_path):  # what the tests below count on
    history = History(tmp_path / FILE_NAME, 4096)
    ascii_turns(history, 1)
    assert history.path.stat().st_size == 100


@pytest.mark.parametrize("cap", [1000, 1001])
def test_a_turn_of_exactly_half_the_cap_is_kept_whole_and_a_longer_one_is_cut(tmp_path, cap):
    history = History(tmp_path / FILE_NAME, cap)
    whole = "w" * (500 - 83)  # its line is exactly 500 bytes, half the cap
    history.append("user", whole, "s")
    [line] = lines_of(history)
    assert len(line) == 500 and json.loads(line)["text"] == whole
    history.path.unlink()
    history.append("user", whole + "x", "s")
    [line] = lines_of(history)
    # cut to the longest start that fits with its "…" (3 bytes in UTF-8)
    assert len(line) == 500 and json.loads(line)["text"] == whole[:500 - 83 - 3] + "…"


def test_a_turn_that_cannot_fit_even_cut_is_kept_with_an_empty_text(tmp_path):
    history = History(tmp_path / FILE_NAME, 100)  # 50 bytes: less than a turn without text
    history.append("agent", "a few words", "s")
    assert [(t["role"], t["text"]) for t in history.turns()] == [("agent", "")]


def test_compaction_keeps_exactly_the_newest_turns_that_fit_in_half_the_cap(tmp_path):
    path = tmp_path / FILE_NAME
    ascii_turns(History(path, 10 ** 9), 10)
    assert path.stat().st_size == 1000
    stale = path.with_name(path.name + ".tmp")  # left by a power cut during a compaction
    stale.write_bytes(b"junk line\n" * 300)
    capped = History(path, 1000)
    ascii_turns(capped, 1, first=10)  # 1,100 bytes > 1,000: keep the newest 500 bytes
    assert [t["text"] for t in capped.turns()] == [f"turn {i:012d}" for i in range(6, 11)]
    assert path.stat().st_size == 500 and len(lines_of(capped)) == 5
    assert path.stat().st_mode & 0o777 == 0o600 and not stale.exists()


def test_an_old_world_readable_file_becomes_private_at_the_next_turn(tmp_path):
    path = tmp_path / FILE_NAME
    path.write_bytes(b"")
    path.chmod(0o644)
    History(path, 4096).append("user", "hi", "s")
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_write_that_falls_short_is_cut_back_so_no_torn_turn_remains(tmp_path, caplog):
    import resource
    import signal
    history = History(tmp_path / FILE_NAME, 10 ** 6)
    history.append("user", "kept", "s")
    size = history.path.stat().st_size
    # a full disk, made real: the file may grow by 20 bytes, then writing fails (EFBIG)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 20, hard))
    try:
        with caplog.at_level(logging.WARNING, logger="edgevoice.history"):
            history.append("user", "lost " * 40, "s")  # no exception
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert history.path.stat().st_size == size
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    history.append("user", "after", "s")
    assert [t["text"] for t in history.turns()] == ["kept", "after"]
