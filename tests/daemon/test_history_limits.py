"""The history file on a full disk, with huge turns and failed compactions: every turn is
whole or absent, the file stays 0600, and no temporary file is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from edgevoice.history import History
from tests.support import ROOT

FULL_DISK = r"""
import json, resource, signal, sys
from pathlib import Path
from edgevoice.history import History
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
history = History.open(Path(sys.argv[1]), 64 * 1024)
history.append("user", "first", "s")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (history.path.stat().st_size + 30, hard))
history.append("user", "second, which the full disk cuts after 30 bytes", "s")
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
history.append("user", "third", "s")
print(json.dumps([t["text"] for t in history.turns()]))
print(history.path.read_bytes().count(b"\n"))
"""


def test_a_write_cut_short_by_a_full_disk_leaves_no_torn_turn(tmp_path):
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    texts, lines = result.stdout.splitlines()
    assert json.loads(texts) == ["first", "third"]
    assert int(lines) == 2  # two whole lines: nothing torn, nothing glued
    assert "could not write the conversation history" in result.stderr


def test_compaction_keeps_the_file_private_and_the_newest_turns(tmp_path):
    history = History.open(tmp_path, 4096)
    history.path.touch(mode=0o644)
    os.chmod(history.path, 0o644)  # as older versions left it
    for i in range(100):
        history.append("user", f"turn {i:03d}", "s")
    assert oct(history.path.stat().st_mode & 0o777) == "0o600"
    assert history.path.stat().st_size <= 4096
    assert [t["text"] for t in history.turns()][-1] == "turn 099"
    assert not (tmp_path / "history.jsonl.tmp").exists()


def test_a_turn_larger_than_half_the_cap_is_shortened_not_lost(tmp_path):
    history = History.open(tmp_path, 4096)
    history.append("user", "before", "s")
    history.append("agent", "x" * 10_000, "s")
    turns = history.turns()
    assert turns[-1]["text"].startswith("xxx") and turns[-1]["text"].endswith("…")
    assert history.path.stat().st_size <= 4096
    history.append("user", "after", "s")
    assert [t["text"] for t in history.turns()][-1] == "after"


def test_a_failed_compaction_leaves_no_temporary_file(tmp_path, monkeypatch, caplog):
    history = History.open(tmp_path, 4096)
    for i in range(20):
        history.append("user", f"turn {i:03d} " + "y" * 100, "s")

    def no_room(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_room)
    for i in range(20):
        history.append("user", f"more {i:03d} " + "y" * 100, "s")
    assert not (tmp_path / "history.jsonl.tmp").exists()
    assert [t["text"][:8] for t in history.turns()][-1] == "more 019"
    assert any("No space left" in r.getMessage() for r in caplog.records)
