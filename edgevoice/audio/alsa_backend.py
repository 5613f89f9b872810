"""The ``alsa`` audio backend: PyAudio (PortAudio) over ALSA.

Devices are chosen by **name** or a unique part of it, never by index (indexes move when a
USB device is replugged), and opened at a rate the hardware accepts: the wire rate when
possible, else the device's own rate (many USB microphones are 48 kHz only); the audio
engine resamples in process.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000)


class DeviceError(Exception):
    """A device that does not exist, is ambiguous or cannot be opened."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: int

    def describe(self) -> str:
        return (f"{self.name!r} (in {self.max_input_channels} ch, out "
                f"{self.max_output_channels} ch, default {self.default_rate} Hz)")


_ALSA_ERROR_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                       ctypes.c_int, ctypes.c_char_p)
_keep_handler = None


def _quiet_alsa() -> None:
    """Send alsa-lib's own error prints (card probing noise) to nowhere instead of stderr."""
    global _keep_handler
    if _keep_handler is not None:
        return
    name = ctypes.util.find_library("asound")
    if not name:
        return
    try:
        lib = ctypes.cdll.LoadLibrary(name)
        _keep_handler = _ALSA_ERROR_HANDLER(lambda *args: None)
        lib.snd_lib_error_set_handler(_keep_handler)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _stderr_silenced():
    """PortAudio's JACK probe prints to fd 2 during initialisation; hide that one burst."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_pa_lock = threading.Lock()
_pa = None


def pyaudio_instance():
    """The process-wide PyAudio instance (initialising PortAudio is slow and noisy)."""
    global _pa
    with _pa_lock:
        if _pa is None:
            import pyaudio
            os.environ.setdefault("JACK_NO_START_SERVER", "1")
            _quiet_alsa()
            with _stderr_silenced():
                _pa = pyaudio.PyAudio()
        return _pa


def reset_pyaudio() -> None:
    """Forget PortAudio's device list (it is read only when PortAudio starts): call with no
    stream open, before looking again for a device that was missing or unplugged."""
    global _pa
    with _pa_lock:
        if _pa is not None:
            try:
                _pa.terminate()
            except Exception as exc:
                log.debug("terminating PortAudio: %s", exc)
            _pa = None


def list_devices() -> list[DeviceInfo]:
    pa = pyaudio_instance()
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        devices.append(DeviceInfo(index, str(info["name"]), int(info["maxInputChannels"]),
                                  int(info["maxOutputChannels"]), int(info["defaultSampleRate"])))
    return devices


def find_device(wanted: str, direction: str, devices: list[DeviceInfo] | None = None) -> DeviceInfo:
    """The device whose name is ``wanted`` or contains it (case-insensitive, unique).

    ``direction`` is "input" or "output". The error lists the devices that exist.
    """
    devices = list_devices() if devices is None else devices

    def usable(d: DeviceInfo) -> bool:
        return (d.max_input_channels if direction == "input" else d.max_output_channels) > 0

    candidates = [d for d in devices if usable(d)]
    exact = [d for d in candidates if d.name == wanted]
    if exact:
        return exact[0]
    part = [d for d in candidates if wanted.lower() in d.name.lower()]
    listing = "; ".join(d.describe() for d in candidates) or "none at all"
    if len(part) == 1:
        return part[0]
    if not part:
        raise DeviceError(f"no {direction} device named {wanted!r}; {direction} devices that "
                          f"exist: {listing}")
    names = ", ".join(repr(d.name) for d in part)
    raise DeviceError(f"{direction} device {wanted!r} is ambiguous, it matches {names}; use "
                      "more of the name")


def supported_rates(device: DeviceInfo, direction: str, rates=COMMON_RATES) -> list[int]:
    pa = pyaudio_instance()
    import pyaudio
    out = []
    for rate in rates:
        kwargs = ({"input_device": device.index, "input_channels": 1,
                   "input_format": pyaudio.paInt16} if direction == "input" else
                  {"output_device": device.index, "output_channels": 1,
                   "output_format": pyaudio.paInt16})
        try:
            if pa.is_format_supported(rate, **kwargs):
                out.append(rate)
        except ValueError:
            pass
    return out


def choose_rate(wanted: int, preferred: int, accepted: list[int], default: int) -> int:
    """Pick the rate to open a device at: the configured one, else the wire rate if the
    device takes it, else the device's default, else the highest it takes."""
    if wanted:
        return wanted
    if preferred in accepted:
        return preferred
    if default in accepted or not accepted:
        return default
    return max(accepted)


class _Stream:
    def __init__(self, device: DeviceInfo, rate: int, direction: str, block: int,
                 open_now: bool = True) -> None:
        self.rate = rate
        self.device = device
        self.direction = direction
        self.block = block
        self.xruns = 0
        self.latency_s = 0.0
        self._stream = None
        if open_now:
            self._open()

    def _open(self) -> None:
        import pyaudio
        pa = pyaudio_instance()
        direction, device, rate = self.direction, self.device, self.rate
        try:
            self._stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate,
                                   input=direction == "input", output=direction == "output",
                                   frames_per_buffer=self.block,
                                   **({"input_device_index": device.index}
                                      if direction == "input" else
                                      {"output_device_index": device.index}))
        except (OSError, ValueError) as exc:
            raise DeviceError(f"cannot open {direction} device {device.name!r} at {rate} Hz: "
                              f"{exc}") from None
        try:  # how long after a write it is heard / before a read it was captured
            self.latency_s = float(self._stream.get_output_latency() if direction == "output"
                                   else self._stream.get_input_latency())
        except (OSError, AttributeError):
            self.latency_s = 0.0

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.stop_stream()
            stream.close()


class AlsaCapture(_Stream):
    """The microphone. ``open_now=False`` (privacy mute at start) leaves the stream closed
    until :meth:`open_input`; :meth:`close_input` closes it again (PortAudio releases the
    ALSA device). Only the engine's capture thread calls these and :meth:`read`."""

    def __init__(self, device: DeviceInfo, rate: int, open_now: bool = True) -> None:
        super().__init__(device, rate, "input", rate // 50, open_now)

    @property
    def input_open(self) -> bool:
        return self._stream is not None

    def open_input(self) -> None:
        """Open the stream again at the same device and rate (DeviceError if it cannot)."""
        if self._stream is None:
            self._open()

    def close_input(self) -> None:
        self.close()

    def read(self, samples: int) -> bytes:
        return self._stream.read(samples, exception_on_overflow=False)


class AlsaPlayback(_Stream):
    def __init__(self, device: DeviceInfo, rate: int) -> None:
        super().__init__(device, rate, "output", rate // 50)

    def write(self, pcm: bytes) -> None:
        # PyAudio only takes read-only bytes; the player reuses one bytearray per block.
        self._stream.write(bytes(pcm), exception_on_underflow=False)


def open_alsa_backend(input_name: str, output_name: str, input_rate: int, output_rate: int,
                      wire_rate: int, listen: bool = True) -> tuple[AlsaCapture, AlsaPlayback]:
    """Find both devices by name and open them at rates they accept (the microphone's
    stream stays closed with ``listen=False``: the privacy mute is on)."""
    devices = list_devices()
    mic = find_device(input_name, "input", devices)
    spk = find_device(output_name, "output", devices)
    in_rate = choose_rate(input_rate, wire_rate, supported_rates(mic, "input"), mic.default_rate)
    out_rate = choose_rate(output_rate, wire_rate, supported_rates(spk, "output"),
                           spk.default_rate)
    capture = AlsaCapture(mic, in_rate, open_now=listen)
    try:
        playback = AlsaPlayback(spk, out_rate)
    except DeviceError:
        capture.close()
        raise
    log.info("audio: capture %r at %d Hz, playback %r at %d Hz (wire %d Hz)", mic.name, in_rate,
             spk.name, out_rate, wire_rate)
    return capture, playback
