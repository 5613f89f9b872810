"""A state listener for the daemon's tests."""

from __future__ import annotations

import threading

from edgevoice.lifecycle import DaemonState


class StateLog:
    """A state listener that keeps (state, detail, thread name) and lets a test wait for a
    state sequence to appear."""

    def __init__(self) -> None:
        self.calls: list[tuple[DaemonState, str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, state, detail) -> None:
        with self._cond:
            self.calls.append((state, detail, threading.current_thread().name))
            self._cond.notify_all()

    def states(self) -> list[DaemonState]:
        """The states in order, a repeated one (a new detail) counted once."""
        with self._cond:
            out: list[DaemonState] = []
            for state, _, _ in self.calls:
                if not out or out[-1] != state:
                    out.append(state)
            return out

    def wait_for(self, *sequence: DaemonState, timeout: float = 15.0) -> None:
        """Wait until ``sequence`` appears in :meth:`states` (in order, not necessarily
        adjacent)."""
        def seen() -> bool:
            it = iter(self.states())
            return all(any(s == want for s in it) for want in sequence)

        with self._cond:
            assert self._cond.wait_for(seen, timeout), \
                f"never saw {list(sequence)}; got {self.states()}"
