"""The conversation's transcript, kept as JSON lines in the state directory.

Each turn is one line ``{"t": ISO time, "session": id, "role": "user"|"agent", "text": …}``
appended whole or not at all: a write that fails or falls short (a full disk) is cut off
again, and a line torn by a power cut is skipped when reading and sealed off before the
next append, so earlier turns are never lost. A turn longer than half the cap is shortened.
When the file passes its cap it is rewritten with the newest turns that fit in half of it,
atomically (temporary file, fsync, rename); the file stays private (0600).
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import threading
from pathlib import Path

from edgevoice.logsetup import RateLimitedLog
from edgevoice.statefile import write_atomic

log = logging.getLogger(__name__)

FILE_NAME = "history.jsonl"


class History:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._errors = RateLimitedLog(log, 300.0)

    @classmethod
    def open(cls, directory: Path, max_bytes: int) -> "History | None":
        """The history file in ``directory``; None (with one clear log line) when the
        directory cannot be created or written."""
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = directory / ".edgevoice-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            log.warning("conversation history off: cannot write to %s (%s); set [agent] "
                        "state_dir or history = off", directory, exc.strerror or exc)
            return None
        return cls(directory / FILE_NAME, max_bytes)

    def append(self, role: str, text: str, session_id: str | None) -> None:
        line = self._line(role, text, session_id)
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                             0o600)
                try:
                    size = self._append(fd, line)
                finally:
                    os.close(fd)
                if size > self.max_bytes:
                    self._compact()
            except OSError as exc:
                self._errors.warning("append", "could not write the conversation history to "
                                     "%s: %s", self.path, exc.strerror or exc)

    def _line(self, role: str, text: str, session_id: str | None) -> bytes:
        """The turn as one JSON line of at most half the cap (a longer text is cut)."""
        record = {"t": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="milliseconds"),
                  "session": session_id, "role": role, "text": text}
        limit = self.max_bytes // 2
        while True:
            line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
            if len(line) <= limit or not record["text"]:
                return line
            keep = max(0, len(record["text"]) - (len(line) - limit) - 1)
            record["text"] = record["text"][:keep] + "…"
            if keep == 0:
                record["text"] = ""

    def _append(self, fd: int, line: bytes) -> int:
        """Write ``line`` whole (after sealing a torn last line) or cut the file back to
        where it was; returns the new size."""
        info = os.fstat(fd)
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)  # files written by older versions were 0644
        size = info.st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a power cut tore the last line: end it first
        written = 0
        try:
            while written < len(line):
                n = os.write(fd, line[written:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, "short write")
                written += n
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)  # the turn is absent rather than torn
            except OSError:
                pass
            raise
        return size + written

    def turns(self) -> list[dict]:
        """Every readable turn, oldest first (torn or foreign lines skipped)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._errors.warning("read", "could not read %s: %s", self.path, exc.strerror)
            return []
        out = []
        for line in raw.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                out.append(item)
        return out

    def recent_user_turns(self, count: int) -> list[str]:
        if count <= 0:
            return []
        return [t["text"] for t in self.turns() if t.get("role") == "user"][-count:]

    # -- internals ------------------------------------------------------------------------
    def _compact(self) -> None:
        """Keep the newest whole turns that fit in half the cap."""
        lines = self.path.read_bytes().splitlines(keepends=True)
        kept: list[bytes] = []
        total = 0
        for line in reversed(lines):
            if not line.endswith(b"\n"):
                continue  # torn
            if total + len(line) > self.max_bytes // 2:
                break
            kept.append(line)
            total += len(line)
        write_atomic(self.path, b"".join(reversed(kept)))
