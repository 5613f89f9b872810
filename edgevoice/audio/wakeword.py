"""On-device wake word detection: 20 ms mic frames in, the name of the phrase heard out.

The engine is microWakeWord (``pymicro-wakeword``: TensorFlow Lite through its own
``libtensorflowlite_c``, models bundled in the wheel: ``okay_nabu``, ``hey_jarvis``,
``hey_mycroft``, ``alexa``). Every model runs on the same features, so listening for
several phrases costs one feature extractor plus one small network per phrase.

Frames arrive at the session's wire rate (16 kHz for most dialects, 24 kHz for openai) and
are resampled to the 16 kHz the models want. Nothing here keeps audio: the features are
computed and the samples dropped, so the audio before the wake word never leaves the
device (it never reaches a session's mic queue either: see :mod:`edgevoice.daemon`).

::

    detector = WakeWordDetector(["okay_nabu"], rate=16000)
    for frame in frames:                 # 640 bytes each at 16 kHz
        heard = detector.process(frame)  # "okay_nabu" once, then None for refractory_s
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from edgevoice.audio.resample import StreamResampler

log = logging.getLogger(__name__)

MODEL_RATE = 16000
DEFAULT_REFRACTORY_S = 2.0  # one utterance of the phrase is one detection


class WakeWordUnavailable(RuntimeError):
    """The engine or a model cannot be loaded (names what exists)."""


def builtin_models() -> tuple[str, ...]:
    """The phrases the bundled engine knows, by model name."""
    try:
        from pymicro_wakeword import Model
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise WakeWordUnavailable(f"pymicro-wakeword is not installed ({exc})") from exc
    return tuple(m.value for m in Model)


class WakeWordDetector:
    """Listens for one or more wake phrases in a stream of mic frames.

    :param models: built-in model names (:func:`builtin_models`) or paths to a model's
        ``.json`` (microWakeWord's format, its ``.tflite`` beside it).
    :param rate: the sample rate of the frames given to :meth:`process`.
    :param cutoff: probability above which a phrase counts; None: each model's own.
    :param refractory_s: after a detection, ignore every phrase this long (audio seconds).
    """

    def __init__(self, models: Sequence[str], rate: int = MODEL_RATE, *,
                 cutoff: float | None = None,
                 refractory_s: float = DEFAULT_REFRACTORY_S) -> None:
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise WakeWordUnavailable(f"pymicro-wakeword is not installed ({exc})") from exc
        if not models:
            raise WakeWordUnavailable("no wake word model given")
        known = {m.value: m for m in Model}
        self._models = []
        for name in models:
            try:
                if name in known:
                    model = MicroWakeWord.from_builtin(known[name])
                elif name.endswith(".json"):
                    model = MicroWakeWord.from_config(name)
                else:
                    raise WakeWordUnavailable(
                        f"unknown wake word model {name!r}; built in: {', '.join(known)}, "
                        "or the path of a microWakeWord .json")
            except WakeWordUnavailable:
                raise
            except Exception as exc:  # a broken model file
                raise WakeWordUnavailable(f"cannot load wake word model {name!r}: {exc}") from exc
            if cutoff is not None:
                model.probability_cutoff = cutoff
            self._models.append((name, model))
        self._features = MicroWakeWordFeatures()
        self._resampler = StreamResampler(rate, MODEL_RATE) if rate != MODEL_RATE else None
        self.rate = rate
        self.refractory_s = refractory_s
        self._frame_s = 0.02
        self._quiet_left = 0.0  # audio seconds still ignored after a detection
        self.detections = 0
        self.seconds_processed = 0.0  # audio seconds seen (the bench's CPU per audio second)
        self.busy_s = 0.0             # thread CPU time spent in process()

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._models)

    def process(self, frame: bytes) -> str | None:
        """Feed one frame (16-bit mono at :attr:`rate`); returns the model name whose
        phrase just ended in it, or None."""
        started = time.thread_time()
        seconds = len(frame) / (2 * self.rate)
        self.seconds_processed += seconds
        pcm = self._resampler.process(frame) if self._resampler is not None else frame
        heard = None
        for features in self._features.process_streaming(pcm):
            for name, model in self._models:
                if model.process_streaming(features) and heard is None:
                    heard = name
        if self._quiet_left > 0:
            self._quiet_left -= seconds
            heard = None
        if heard is not None:
            self.detections += 1
            self._quiet_left = self.refractory_s
        self.busy_s += time.thread_time() - started
        return heard

    def reset(self) -> None:
        """Forget what was heard (a fresh wait for the phrase)."""
        self._features.reset()
        for _, model in self._models:
            model.reset()
        self._quiet_left = 0.0

    def close(self) -> None:
        for _, model in self._models:
            try:
                model.close()
            except Exception as exc:  # closing must not stop the shutdown
                log.debug("closing wake word model: %s", exc)
        self._models = []
