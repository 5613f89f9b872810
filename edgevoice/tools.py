"""Agent function calls answered by programs on the device (the ``[tools]`` section).

``get_temperature = /usr/local/lib/edgevoice/tools/temperature`` means: when the agent
calls ``get_temperature``, run that program with the call's arguments as JSON on stdin;
its stdout (trimmed) is the result. A non-zero exit, a timeout or an unknown name gives
the agent an error result instead. Programs run on their own threads, a few at a time, so
neither the audio path nor the session ever waits for them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from typing import Any, Callable

from edgevoice.threads import start_thread

log = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 16_000
MAX_PARALLEL = 4


class ToolRunner:
    def __init__(self, tools: dict[str, str], timeout: float) -> None:
        self.tools = dict(tools)
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(MAX_PARALLEL)

    def run(self, name: str, arguments: Any) -> tuple[str, bool]:
        """Run the tool now (blocking); returns (output, is_error)."""
        program = self.tools.get(name)
        if program is None:
            known = ", ".join(sorted(self.tools)) or "none"
            log.warning("the agent called %r, which is not in [tools] (known: %s)", name, known)
            return f"this device has no tool named {name}", True
        started = time.monotonic()
        try:
            done = subprocess.run([program], input=json.dumps(arguments), capture_output=True,
                                  encoding="utf-8", errors="replace", timeout=self.timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            log.warning("tool %s did not answer within %g s; the agent gets an error", name,
                        self.timeout)
            return f"{name} timed out after {self.timeout:g} s", True
        except OSError as exc:
            log.warning("tool %s could not start: %s", name, exc.strerror or exc)
            return f"{name} could not start", True
        took = time.monotonic() - started
        if done.returncode != 0:
            detail = (done.stderr or "").strip().splitlines()[-1:] or [""]
            log.warning("tool %s failed with exit status %d in %.2f s: %s", name,
                        done.returncode, took, detail[0][:200])
            return f"{name} failed (exit status {done.returncode}) {detail[0][:200]}".strip(), True
        log.info("tool %s answered in %.2f s", name, took)
        return done.stdout.strip()[:MAX_OUTPUT_CHARS], False

    def submit(self, name: str, arguments: Any, reply: Callable[[str, bool], None]) -> None:
        """Run the tool on a thread and hand the result to ``reply``."""
        if not self._slots.acquire(blocking=False):
            reply(f"{name} not run: {MAX_PARALLEL} tools are already running", True)
            return

        def work() -> None:
            try:
                try:
                    output, is_error = self.run(name, arguments)
                except Exception as exc:  # the agent still gets an answer
                    log.exception("tool %s failed unexpectedly", name)
                    output, is_error = f"{name} failed ({type(exc).__name__})", True
                reply(output, is_error)
            except Exception:  # a failing reply must not kill anything else
                log.exception("tool %s: answering the agent failed", name)
            finally:
                self._slots.release()

        start_thread("tool", work)
