"""A stand-in for what :class:`edgevoice.wake.WakeWord` uses of the daemon."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from edgevoice.audio.bargein import SpeakerLevels
from edgevoice.config import parse
from edgevoice.lifecycle import DaemonState
from edgevoice.wake import BUTTON
from tests.support.config import XUNA


class Host:
    """What WakeWord uses of the daemon."""

    def __init__(self, rate: int, **wake_word) -> None:
        config = parse(XUNA + "[agent]\nmode = wake-word\n")
        if wake_word:
            settings = dataclasses.replace(config.section("wake_word"), **wake_word)
            config = dataclasses.replace(config, sections={**config.sections,
                                                           "wake_word": settings})
        self.config = config
        self.engine = SimpleNamespace(wire_rate=rate, frame_sink=None, speaker=SpeakerLevels())
        self.state = DaemonState.STARTING
        self.details: list[str] = []
        self.woken: list[str] = []

    def state_changed(self, state, detail: str = "") -> None:
        self.state = state
        self.details.append(detail)

    def wake(self, model: str = BUTTON) -> None:
        self.woken.append(model)
