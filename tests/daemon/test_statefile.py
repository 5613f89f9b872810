"""The state directory's small files: whole, private, and never fatal to read."""

import os
import stat

from edgevoice.statefile import read_json, write_json


def test_a_written_value_reads_back_and_is_private(tmp_path):
    path = tmp_path / "sub" / "volume.json"
    assert write_json(path, {"level": 40})
    assert read_json(path) == {"level": 40}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not path.with_name("volume.json.tmp").exists()


def test_a_crash_left_tmp_does_not_keep_its_mode(tmp_path):
    path = tmp_path / "mute.json"
    tmp = tmp_path / "mute.json.tmp"
    tmp.write_text("junk")
    os.chmod(tmp, 0o644)
    assert write_json(path, True)
    assert read_json(path) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_missing_torn_or_unwritable_files_never_raise(tmp_path, caplog):
    assert read_json(tmp_path / "none.json") is None
    torn = tmp_path / "torn.json"
    torn.write_text('{"level": 4')
    assert read_json(torn) is None
    assert "torn.json" in caplog.text
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert write_json(blocker / "x.json", 1) is False  # its parent is a file
    assert "x.json" in caplog.text
