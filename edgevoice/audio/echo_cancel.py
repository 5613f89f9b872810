"""Acoustic echo cancellers: remove the agent's own voice from the microphone signal.

Two implementations behind one small interface (``process(mic, ref) -> cleaned``, 20 ms
frames of PCM16 mono at the wire rate, ``mic`` and ``ref`` aligned by the caller):

- :class:`SpeexCanceller`: libspeexdsp's multi-delay-block echo canceller followed by its
  preprocessor's residual echo suppressor, through a thin ctypes binding (Debian package
  ``libspeexdsp1``; nothing to build). The suppressor is what makes the echo inaudible
  within a second of a fresh start (the adaptive filter alone takes ten), but it also
  ducks the user by ~20 dB while the agent talks, so the linear output (user intact, some
  echo left) is kept as :attr:`last_linear` for the barge-in detector.
- :class:`WebRtcCanceller`: WebRTC's AEC3 through the ``livekit`` package's
  ``rtc.AudioProcessingModule`` (10 ms sub-frames, noise suppression off).

:func:`open_canceller` picks one by name (``[audio] echo_cancel``) and turns a missing
library into :class:`EchoCancelUnavailable` with one sentence saying what to install.
``scripts/bench`` measures both; the README has the figures.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from edgevoice.audio.frames import frame_samples

log = logging.getLogger(__name__)

KINDS = ("speex", "webrtc", "off")
DEFAULT_TAIL_MS = 500

# speex_echo.h / speex_preprocess.h
_SPEEX_ECHO_SET_SAMPLING_RATE = 24
_SPEEX_PREPROCESS_SET_DENOISE = 0
_SPEEX_PREPROCESS_SET_ECHO_SUPPRESS = 20
_SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE = 22
_SPEEX_PREPROCESS_SET_ECHO_STATE = 24


class EchoCancelUnavailable(Exception):
    """The canceller's library is missing or unusable; the message says what to install."""


class FrameSizeError(ValueError):
    """A frame whose length is not the canceller's frame size."""


_speex_lib = None


def load_speexdsp(names: tuple[str, ...] = ("libspeexdsp.so.1",)) -> ctypes.CDLL:
    """libspeexdsp, with the prototypes this module uses declared (loaded once)."""
    global _speex_lib
    if _speex_lib is not None and names == ("libspeexdsp.so.1",):
        return _speex_lib
    lib = None
    candidates = list(names) + [ctypes.util.find_library("speexdsp") or ""]
    for name in filter(None, candidates):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise EchoCancelUnavailable("libspeexdsp is not installed (apt install libspeexdsp1)")
    try:
        p, i16p, c_int = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16), ctypes.c_int
        lib.speex_echo_state_init.restype = p
        lib.speex_echo_state_init.argtypes = [c_int, c_int]
        lib.speex_echo_state_destroy.argtypes = [p]
        lib.speex_echo_ctl.argtypes = [p, c_int, p]
        lib.speex_echo_cancellation.argtypes = [p, i16p, i16p, i16p]
        lib.speex_preprocess_state_init.restype = p
        lib.speex_preprocess_state_init.argtypes = [c_int, c_int]
        lib.speex_preprocess_state_destroy.argtypes = [p]
        lib.speex_preprocess_ctl.argtypes = [p, c_int, p]
        lib.speex_preprocess_run.argtypes = [p, i16p]
    except AttributeError as exc:
        raise EchoCancelUnavailable(f"libspeexdsp lacks {exc}; reinstall libspeexdsp1") from None
    if names == ("libspeexdsp.so.1",):
        _speex_lib = lib
    return lib


class SpeexCanceller:
    """libspeexdsp echo canceller + residual echo suppression, one 20 ms frame at a time.

    ``tail_ms`` is the length of the adaptive filter: the longest echo path it models
    (delay misalignment plus room reverberation)."""

    name = "speex"

    def __init__(self, rate: int, tail_ms: int = DEFAULT_TAIL_MS, lib=None) -> None:
        if rate <= 0 or rate % 50:
            raise ValueError(f"echo canceller: {rate} Hz has no whole 20 ms frame")
        self._lib = lib or load_speexdsp()
        self.rate = rate
        self.tail_ms = tail_ms
        self.frame_samples = frame_samples(rate)
        self.frame_bytes = self.frame_samples * 2
        n = self.frame_samples
        self._echo = self._lib.speex_echo_state_init(n, max(n, rate * tail_ms // 1000))
        self._pre = self._lib.speex_preprocess_state_init(n, rate)
        if not self._echo or not self._pre:
            self.close()
            raise EchoCancelUnavailable("libspeexdsp could not allocate an echo canceller")
        self._ctl_echo(_SPEEX_ECHO_SET_SAMPLING_RATE, rate)
        self._ctl_pre(_SPEEX_PREPROCESS_SET_ECHO_STATE, None)
        # its residual echo suppression only acts with the denoiser on (measured)
        self._ctl_pre(_SPEEX_PREPROCESS_SET_DENOISE, 1)
        self._ctl_pre(_SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, -40)
        self._ctl_pre(_SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, -15)
        # buffers reused for every frame: no allocation on the 20 ms path
        self._mic = (ctypes.c_int16 * n)()
        self._ref = (ctypes.c_int16 * n)()
        self._out = (ctypes.c_int16 * n)()
        self.last_linear = b""  # the last frame after the adaptive filter only

    def _ctl_echo(self, request: int, value: int) -> None:
        v = ctypes.c_int(value)
        self._lib.speex_echo_ctl(self._echo, request, ctypes.byref(v))

    def _ctl_pre(self, request: int, value: int | None) -> None:
        if value is None:  # SET_ECHO_STATE takes the echo state pointer itself
            self._lib.speex_preprocess_ctl(self._pre, request, self._echo)
            return
        v = ctypes.c_int(value)
        self._lib.speex_preprocess_ctl(self._pre, request, ctypes.byref(v))

    def process(self, mic: bytes, ref: bytes) -> bytes:
        """The mic frame with the echo of ``ref`` removed. Raises :class:`FrameSizeError`
        for frames of another size, or :class:`RuntimeError` once closed."""
        size = self.frame_bytes
        if len(mic) != size or len(ref) != size:
            raise FrameSizeError(f"echo canceller takes {size}-byte frames at {self.rate} "
                                 f"Hz, got mic {len(mic)} / reference {len(ref)} bytes")
        if not self._echo:
            raise RuntimeError("echo canceller is closed")
        ctypes.memmove(self._mic, mic, size)
        ctypes.memmove(self._ref, ref, size)
        self._lib.speex_echo_cancellation(self._echo, self._mic, self._ref, self._out)
        self.last_linear = bytes(self._out)
        self._lib.speex_preprocess_run(self._pre, self._out)
        return bytes(self._out)

    def close(self) -> None:
        if getattr(self, "_pre", None):
            self._lib.speex_preprocess_state_destroy(self._pre)
        if getattr(self, "_echo", None):
            self._lib.speex_echo_state_destroy(self._echo)
        self._pre = self._echo = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class WebRtcCanceller:
    """WebRTC AEC3 (livekit's AudioProcessingModule): each 20 ms frame as two 10 ms ones.
    The caller aligns the reference, so the module is told a stream delay of 0 ms and its
    own delay estimator takes up what is left."""

    name = "webrtc"

    def __init__(self, rate: int, tail_ms: int = DEFAULT_TAIL_MS) -> None:
        if rate <= 0 or rate % 100:
            raise ValueError(f"echo canceller: {rate} Hz has no whole 10 ms frame")
        try:
            from livekit import rtc
        except Exception as exc:  # ImportError, or a broken native library inside it
            raise EchoCancelUnavailable(f"the livekit package is not usable ({exc}); "
                                        "pip install livekit") from None
        self._rtc = rtc
        self.rate = rate
        self.tail_ms = tail_ms
        self.frame_samples = frame_samples(rate)
        self.frame_bytes = self.frame_samples * 2
        self._half = self.frame_samples // 2
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._mic = bytearray(self.frame_bytes)
        self._ref = bytearray(self.frame_bytes)

    def process(self, mic: bytes, ref: bytes) -> bytes:
        size = self.frame_bytes
        if len(mic) != size or len(ref) != size:
            raise FrameSizeError(f"echo canceller takes {size}-byte frames at {self.rate} "
                                 f"Hz, got mic {len(mic)} / reference {len(ref)} bytes")
        if self._apm is None:
            raise RuntimeError("echo canceller is closed")
        self._mic[:] = mic
        self._ref[:] = ref
        half, frame_cls = self._half, self._rtc.AudioFrame
        out = bytearray()
        for k in range(2):
            lo, hi = k * half * 2, (k + 1) * half * 2
            far = frame_cls(self._ref[lo:hi], self.rate, 1, half)
            near = frame_cls(self._mic[lo:hi], self.rate, 1, half)
            self._apm.process_reverse_stream(far)
            self._apm.set_stream_delay_ms(0)
            self._apm.process_stream(near)
            out += near.data.tobytes()
        return bytes(out)

    def close(self) -> None:
        self._apm = None


def open_canceller(kind: str, rate: int, tail_ms: int = DEFAULT_TAIL_MS):
    """The canceller called ``kind`` at ``rate``; None for "off". Raises
    :class:`EchoCancelUnavailable` when its library is missing."""
    if kind == "off":
        return None
    if kind == "speex":
        return SpeexCanceller(rate, tail_ms)
    if kind == "webrtc":
        return WebRtcCanceller(rate, tail_ms)
    raise ValueError(f"unknown echo canceller {kind!r}; choose one of {', '.join(KINDS)}")
