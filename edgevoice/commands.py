"""What any thread may ask of the daemon: the button, the mute switch, the signal handlers,
the service and tests call these. Each puts one :class:`~edgevoice.lifecycle.Order` on the
daemon's inbox and returns at once; the ``edgevoice-session`` thread applies the orders in
turn (:meth:`edgevoice.daemon.Daemon._apply`). The one exception is a mute, which also
closes the microphone at once, so that a busy session thread (a connect in progress)
cannot delay it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from edgevoice.lifecycle import Command, Inbox
from edgevoice.mute import MuteRequest, PrivacyMute
from edgevoice.wake import BUTTON

if TYPE_CHECKING:
    from edgevoice.audio.engine import AudioEngine


class DaemonCommands:
    """The command half of :class:`edgevoice.daemon.Daemon` (the button's
    :class:`~edgevoice.device.button.DaemonControl`)."""

    inbox: Inbox
    halt: threading.Event
    engine: AudioEngine | None
    _mute: PrivacyMute

    def stop(self) -> None:
        self.halt.set()
        self.inbox.order(Command.STOP)  # wakes the session thread at once

    @property
    def stopping(self) -> bool:
        return self.halt.is_set()

    def request_reload(self) -> None:
        """Re-read the config (SIGHUP)."""
        self.inbox.order(Command.RELOAD)

    def set_muted(self, muted: bool, source: str = "api") -> None:
        """Privacy mute on (True) or off: closes / reopens the capture stream
        (:mod:`edgevoice.mute`)."""
        if muted:
            self._close_mic_now()
        self.inbox.order(Command.MUTE, MuteRequest(bool(muted), source))

    def toggle_mute(self, source: str = "button") -> None:
        if not self._mute.muted:  # the toggle will mute
            self._close_mic_now()
        self.inbox.order(Command.MUTE, MuteRequest(None, source))

    def _close_mic_now(self) -> None:
        """A mute closes the microphone at once, even while the session thread is busy
        (a connect in progress); the order on the inbox does the rest."""
        engine = self.engine
        if engine is not None:
            engine.set_listening(False)

    def set_mic_open(self, open: bool) -> None:
        self.inbox.order(Command.MIC, bool(open))

    def interrupt(self) -> None:
        self.inbox.order(Command.INTERRUPT)

    def user_activity(self) -> None:
        self.inbox.order(Command.USER_ACTIVITY)

    def wake(self, model: str = BUTTON) -> None:
        """Wake-word mode: open a session as the wake word ``model`` does (the button)."""
        self.inbox.order(Command.WAKE, model)

    def start_session(self) -> None:
        self.inbox.order(Command.START_SESSION)

    def end_session(self) -> None:
        self.inbox.order(Command.END_SESSION)

    def restart_session(self) -> None:
        self.inbox.order(Command.RESTART_SESSION)

    def change_volume(self, level: int | None = None, step: int = 0) -> None:
        """Set the output volume to ``level`` (0-100; None: the current one), then move it
        by ``step``; clamped to 0-100, applied at the player's next block, remembered in the
        state directory (see :mod:`edgevoice.volume`)."""
        self.inbox.order(Command.VOLUME, (level, step))
