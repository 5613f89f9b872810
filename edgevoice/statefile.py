"""Small files the daemon keeps in its state directory (``[agent] state_dir``): written
whole and atomically (temporary file, fsync, rename, fsync of the directory), private
(0600), and read back without ever raising: a missing, torn or foreign file reads as None
and the caller falls back to its default.

Used for what must survive a restart: the conversation history's compaction, the volume
level, the privacy mute.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` in one step: a reader (or a crash) sees the old file
    or the new one, never half of one. Raises OSError (the old file is left as it was)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        with open(fd, "wb") as f:
            os.fchmod(fd, mode)  # a .tmp left by a crash keeps its own mode otherwise
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, value: Any) -> bool:
    """Store ``value`` as JSON; False (and one warning naming the file) when it cannot be
    written: losing a remembered setting must never stop the daemon."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(value, sort_keys=True).encode("utf-8") + b"\n")
        return True
    except (OSError, ValueError, TypeError) as exc:
        log.warning("cannot write %s: %s", path, exc)
        return False


def read_json(path: Path) -> Any:
    """The JSON value stored at ``path``, or None when there is none or it is unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
