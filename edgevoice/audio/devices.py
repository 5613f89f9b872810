"""Opening the sound devices named by ``[audio]``: the backend (alsa, file or room) and,
around its capture and playback streams, the :class:`~edgevoice.audio.engine.AudioEngine`.

Raises :class:`~edgevoice.audio.alsa_backend.DeviceError` when a device is missing (the
daemon retries) and :class:`~edgevoice.audio.file_backend.AudioFileError` when a file
cannot be used (a configuration error).
"""

from __future__ import annotations

from typing import Any

from edgevoice.audio.alsa_backend import open_alsa_backend
from edgevoice.audio.engine import AudioEngine
from edgevoice.audio.file_backend import open_file_backend
from edgevoice.audio.room_backend import open_room_backend


def open_engine(a: Any, wire_rate: int, *, listen: bool = True) -> AudioEngine:
    """The engine over the devices ``a`` (an ``[audio]`` section) names, for a session
    speaking at ``wire_rate``. ``listen`` False: the microphone starts closed (privacy
    mute: an ALSA capture stream is not even opened)."""
    if a.backend == "file":
        capture, playback = open_file_backend(a.input_file, a.output_file, a.output_rate,
                                              a.file_speed)
    elif a.backend == "room":
        capture, playback = open_room_backend(a, wire_rate)
    else:
        capture, playback = open_alsa_backend(a.input_device, a.output_device, a.input_rate,
                                              a.output_rate, wire_rate, listen=listen)
    return AudioEngine(capture, playback, wire_rate, a.playback_buffer_s, a.echo_cancel,
                       a.echo_cancel_tail_ms)
