"""On-device wake word detection: 20 ms mic frames in, the name of the phrase heard out.

The default engine is microWakeWord (``pymicro-wakeword``: TensorFlow Lite through its own
``libtensorflowlite_c``, models bundled in the wheel: ``okay_nabu``, ``hey_jarvis``,
``hey_mycroft``, ``alexa``); ``engine="open"`` runs openWakeWord instead (see
:mod:`edgevoice.audio.wakeword_engines`, and the README's "Wake word engine" for the
measured comparison). Every model of an engine runs on the same features, so listening for
several phrases costs one feature extractor plus one small network per phrase.

Frames arrive at the session's wire rate (16 kHz for most dialects, 24 kHz for openai) and
are resampled to the 16 kHz the models want. Nothing here keeps audio: the features are
computed and the samples dropped, so the audio before the wake word never leaves the
device (it never reaches a session's mic queue either: see :mod:`edgevoice.daemon`).

:meth:`WakeWordDetector.process` never raises into the capture thread: a malformed frame
is logged (rate-limited) and skipped, and a model that fails while running turns detection
off with one error line (:attr:`WakeWordDetector.error` says why; :meth:`reset` tries again).

::

    detector = WakeWordDetector(["okay_nabu"], rate=16000)
    for frame in frames:                 # 640 bytes each at 16 kHz
        heard = detector.process(frame)  # "okay_nabu" once, then None for refractory_s
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from edgevoice.audio.resample import StreamResampler
from edgevoice.audio.wakeword_engines import (
    ENGINES, MODEL_RATE, WakeWordUnavailable, _check_cutoff, engine_class)
from edgevoice.logsetup import RateLimitedLog

log = logging.getLogger(__name__)

DEFAULT_ENGINE = "micro"
DEFAULT_REFRACTORY_S = 2.0  # one utterance of the phrase is one detection

__all__ = ["DEFAULT_ENGINE", "ENGINES", "MODEL_RATE", "WakeWordDetector",
           "WakeWordUnavailable", "builtin_models"]


def builtin_models(engine: str = DEFAULT_ENGINE) -> tuple[str, ...]:
    """The phrases ``engine`` knows without a model file, by model name."""
    return engine_class(engine).builtin()


class WakeWordDetector:
    """Listens for one or more wake phrases in a stream of mic frames.

    :param models: built-in model names (:func:`builtin_models`) or paths to model files
        (``micro``: a microWakeWord ``.json`` with its ``.tflite`` beside it; ``open``: an
        openWakeWord ``.tflite``).
    :param rate: the sample rate of the frames given to :meth:`process`.
    :param cutoff: probability above which a phrase counts (0 < cutoff < 1); None: each
        model's own (``micro``) or 0.5 (``open``).
    :param refractory_s: after a detection, ignore every phrase this long (audio seconds).
    :param engine: ``"micro"`` (default) or ``"open"``.
    :raises WakeWordUnavailable: an unknown engine or model (naming the choices), a model
        file that cannot be loaded, a bad cutoff, rate or refractory time.
    """

    def __init__(self, models: Sequence[str], rate: int = MODEL_RATE, *,
                 cutoff: float | None = None,
                 refractory_s: float = DEFAULT_REFRACTORY_S,
                 engine: str = DEFAULT_ENGINE) -> None:
        if isinstance(models, str):
            models = [models]
        if not models:
            raise WakeWordUnavailable("no wake word model given")
        if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 192000:
            raise WakeWordUnavailable(f"wake word input rate must be 8000-192000 Hz, not {rate!r}")
        if not isinstance(refractory_s, (int, float)) or refractory_s < 0:
            raise WakeWordUnavailable(f"refractory_s must be ≥ 0, not {refractory_s!r}")
        _check_cutoff(cutoff)
        self._engine = engine_class(engine)(list(models), cutoff)
        self.engine = engine
        self._resampler = StreamResampler(rate, MODEL_RATE) if rate != MODEL_RATE else None
        self.rate = rate
        self.refractory_s = float(refractory_s)
        self._odd = b""          # the first byte of a sample split across two frames
        self._quiet_left = 0.0   # audio seconds still ignored after a detection
        self._problems = RateLimitedLog(log, 300.0)
        # reset() and close() free the TFLite interpreters process() may be running in:
        # never at the same time (uncontended, this costs well under a microsecond a frame)
        self._lock = threading.Lock()
        self._closed = False
        self.error: str | None = None  # why detection is off, None while it works
        self.detections = 0
        self.seconds_processed = 0.0  # audio seconds seen (the bench's CPU per audio second)
        self.busy_s = 0.0             # CPU time spent in process() (both engines run there)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._engine.models)

    @property
    def active(self) -> bool:
        """False once a model failed at run time (until a :meth:`reset` succeeds)."""
        return self.error is None

    def process(self, frame: bytes) -> str | None:
        """Feed one frame (16-bit little-endian mono at :attr:`rate`); returns the model name
        whose phrase just ended in it, or None. Never raises."""
        if self.error is not None:
            return None
        started = time.thread_time()
        with self._lock:
            try:
                heard = self._detect(frame)
            except Exception as exc:  # a model failing at run time: detection off, loudly
                self._fail(exc)
                heard = None
        self.busy_s += time.thread_time() - started
        return heard

    def _detect(self, frame: bytes) -> str | None:
        if not isinstance(frame, bytes):
            if not isinstance(frame, (bytearray, memoryview)):
                self._problems.warning("type", "wake word: ignoring a frame of type %s "
                                       "(want bytes)", type(frame).__name__)
                return None
            frame = bytes(frame)
        if self._odd:
            frame = self._odd + frame
            self._odd = b""
        if len(frame) % 2:
            self._problems.warning("odd", "wake word: a frame of %d bytes is not whole 16-bit "
                                   "samples; carrying the odd byte over", len(frame))
            self._odd = frame[-1:]
            frame = frame[:-1]
        if not frame:
            return None
        seconds = len(frame) / (2 * self.rate)
        self.seconds_processed += seconds
        pcm = self._resampler.process(frame) if self._resampler is not None else frame
        heard = self._engine.feed(pcm) if pcm else None
        if self._quiet_left > 0:
            self._quiet_left -= seconds
            heard = None
        if heard is not None:
            self.detections += 1
            self._quiet_left = self.refractory_s
        return heard

    def _fail(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        if self._problems.warning("failed", "wake word detection is OFF: engine %s failed "
                                  "on models %s (%s); it tries again at the next reset",
                                  self.engine, ", ".join(self.models), self.error):
            log.debug("wake word failure", exc_info=exc)

    def reset(self) -> None:
        """Forget what was heard (a fresh wait for the phrase); if a model had failed,
        reload and turn detection back on. Never raises; safe from another thread."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        if self._closed:
            return
        self._odd = b""
        self._quiet_left = 0.0
        if self._resampler is not None:
            self._resampler.reset()
        try:
            self._engine.reset()
        except Exception as exc:
            self._fail(exc)
            return
        if self.error is not None:
            log.warning("wake word detection is back ON after a reset (it had failed: %s)",
                        self.error)
            self.error = None

    def close(self) -> None:
        """Free the models; :meth:`process` returns None from then on."""
        with self._lock:
            self._closed = True
            self._engine.close()
            self.error = "closed"
