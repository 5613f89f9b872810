"""The conversation's transcript, kept as JSON lines in the state directory.

Each turn is one line ``{"t": ISO time, "session": id, "role": "user"|"agent", "text": …}``
appended with a single ``write`` and an ``fsync``, so a power cut loses at most the turn
being written and never corrupts earlier ones (a torn last line is skipped when reading
and sealed off before the next append). When the file passes its size cap it is rewritten
with the newest half, atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from pathlib import Path

from edgevoice.logsetup import RateLimitedLog

log = logging.getLogger(__name__)

FILE_NAME = "history.jsonl"


class History:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._errors = RateLimitedLog(log, 300.0)
        self._sealed = False

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
        record = {"t": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="milliseconds"),
                  "session": session_id, "role": role, "text": text}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            try:
                self._seal_torn_line()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                if size > self.max_bytes:
                    self._compact()
            except OSError as exc:
                self._errors.warning("append", "could not write the conversation history to "
                                     "%s: %s", self.path, exc.strerror or exc)

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
    def _seal_torn_line(self) -> None:
        """After a power cut the last line may be half written: end it before appending."""
        if self._sealed:
            return
        self._sealed = True
        try:
            with open(self.path, "rb+") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())
        except FileNotFoundError:
            pass

    def _compact(self) -> None:
        lines = self.path.read_bytes().splitlines(keepends=True)
        kept: list[bytes] = []
        total = 0
        for line in reversed(lines):
            if total + len(line) > self.max_bytes // 2:
                break
            kept.append(line)
            total += len(line)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.writelines(reversed(kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
