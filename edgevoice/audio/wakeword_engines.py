"""The two wake word engines behind :class:`edgevoice.audio.wakeword.WakeWordDetector`.

Both run TensorFlow Lite models through the ``libtensorflowlite_c`` their wheel bundles and
take 16 kHz 16-bit mono PCM:

- ``micro`` (default): microWakeWord, package ``pymicro-wakeword`` (a runtime dependency).
  A 40-channel spectral frontend every 10 ms (``pymicro-features``, C++), then one small
  streaming network per phrase every 30 ms. Models: ``okay_nabu``, ``hey_jarvis``,
  ``hey_mycroft``, ``alexa``, or a microWakeWord ``.json`` (its ``.tflite`` beside it).
- ``open``: openWakeWord, package ``pyopen-wakeword`` (optional: ``pip install
  edgevoice[open]``). A mel-spectrogram network and a shared speech-embedding network every
  80 ms, then one classifier per phrase. Models: the four above plus ``hey_rhasspy``, or an
  openWakeWord ``.tflite``.

An engine is ``Engine(models, cutoff)``; :meth:`feed` takes any whole number of samples and
returns the first model whose probability crossed its cutoff in them. Errors while loading
are :class:`WakeWordUnavailable` naming what exists; errors while running propagate (the
detector turns detection off).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

MODEL_RATE = 16000
_MICRO_CHUNK = 320  # bytes: the microWakeWord frontend's 10 ms hop at 16 kHz
_OPEN_CUTOFF = 0.5  # openWakeWord's customary threshold


class WakeWordUnavailable(RuntimeError):
    """The engine or a model cannot be loaded (names what exists)."""


def _check_cutoff(cutoff: float | None) -> None:
    if cutoff is None:
        return
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not 0 < cutoff < 1:
        raise WakeWordUnavailable(f"wake word cutoff must be a number between 0 and 1 "
                                  f"(exclusive), not {cutoff!r}")


def _unknown(name: str, engine: str, known: Sequence[str], suffix: str) -> WakeWordUnavailable:
    return WakeWordUnavailable(
        f"unknown wake word model {name!r} for engine {engine!r}; built in: "
        f"{', '.join(known)}, or the path of {suffix} file")


def _verify_tflite(path: str, package: str) -> None:
    """Refuse a model file TensorFlow Lite cannot read, before the engine's own loader
    sees it: given an unreadable file, the TFLite C API returns NULL and both packages
    then pass that NULL on to ``TfLiteInterpreterCreate``, which crashes the process."""
    if not os.path.isfile(path):
        raise WakeWordUnavailable(f"wake word model file {path!r} does not exist")
    module = __import__(package)
    libs = sorted(Path(module.__file__).parent.glob("lib/*tensorflowlite_c.*"))
    if not libs:  # the package finds its library elsewhere: let it check
        return
    lib = ctypes.CDLL(str(libs[0]), mode=os.RTLD_GLOBAL)
    create, delete = lib.TfLiteModelCreateFromFile, lib.TfLiteModelDelete
    create.argtypes, create.restype = [ctypes.c_char_p], ctypes.c_void_p
    delete.argtypes, delete.restype = [ctypes.c_void_p], None
    model = create(os.fsencode(path))
    if not model:
        raise WakeWordUnavailable(
            f"wake word model file {path!r} is not a TensorFlow Lite model")
    delete(model)


def _micro_tflite(config_path: str) -> str:
    """The ``.tflite`` a microWakeWord ``.json`` names (its settings checked)."""
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        micro = config["micro"]
        float(micro["probability_cutoff"])
        int(micro["sliding_window_size"])
        str(config["wake_word"])
        return os.path.join(os.path.dirname(config_path), config["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WakeWordUnavailable(f"cannot load wake word model {config_path!r}: not a "
                                  f"readable microWakeWord .json ({exc!r})") from exc


class MicroEngine:
    """microWakeWord: one shared frontend, one streaming network per model."""

    name = "micro"

    @staticmethod
    def builtin() -> tuple[str, ...]:
        try:
            from pymicro_wakeword import Model
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise WakeWordUnavailable(f"pymicro-wakeword is not installed ({exc})") from exc
        return tuple(m.value for m in Model)

    def __init__(self, models: Sequence[str], cutoff: float | None) -> None:
        from pymicro_features import MicroFrontend
        from pymicro_wakeword import MicroWakeWord, Model

        known = {m.value: m for m in Model}
        self.models: list[tuple[str, object]] = []
        self._runners: list[tuple[str, _MicroRunner]] = []
        try:
            for name in models:
                try:
                    if name in known:
                        model = MicroWakeWord.from_builtin(known[name])
                    elif name.endswith(".json"):
                        _verify_tflite(_micro_tflite(name), "pymicro_wakeword")
                        model = MicroWakeWord.from_config(name)
                    else:
                        raise _unknown(name, self.name, list(known), "a microWakeWord .json")
                except WakeWordUnavailable:
                    raise
                except Exception as exc:  # a missing or broken model file
                    raise WakeWordUnavailable(
                        f"cannot load wake word model {name!r}: {exc}") from exc
                if not model.interpreter or not model.model:
                    raise WakeWordUnavailable(f"cannot load wake word model {name!r}: "
                                              "TensorFlow Lite could not read it")
                if cutoff is not None:
                    model.probability_cutoff = cutoff
                self.models.append((name, model))
                self._runners.append((name, _MicroRunner(model)))
        except BaseException:
            self.close()
            raise
        self._frontend = MicroFrontend()
        self._pending = b""  # less than one 10 ms hop, carried to the next feed

    def feed(self, pcm: bytes) -> str | None:
        if self._pending:
            pcm = self._pending + pcm
        end = len(pcm) - len(pcm) % _MICRO_CHUNK
        heard = None
        frontend = self._frontend
        for start in range(0, end, _MICRO_CHUNK):
            features = frontend.process_samples(pcm[start:start + _MICRO_CHUNK]).features
            if not features:
                continue
            for name, runner in self._runners:
                if runner.push(features) and heard is None:
                    heard = name
        self._pending = pcm[end:] if end < len(pcm) else b""
        return heard

    def reset(self) -> None:
        self._frontend.reset()
        self._pending = b""
        for _, runner in self._runners:
            runner.reset()

    def close(self) -> None:
        for _, model in self.models:
            try:
                model.close()
            except Exception as exc:  # closing must not stop the shutdown
                log.debug("closing wake word model: %s", exc)
        self.models = []
        self._runners = []


class _MicroRunner:
    """Runs one microWakeWord model on the frontend's feature windows, as
    ``MicroWakeWord.process_streaming`` does (quantize ``stride`` windows, invoke, average
    the last ``sliding_window_size`` probabilities, compare with the cutoff) but into
    buffers allocated once: the library's version allocates several arrays per call and
    averages with :func:`statistics.mean` (exact fractions), a third of its CPU time.
    Models whose tensors are not as expected run through the library's own method."""

    def __init__(self, model) -> None:
        self.model = model
        self._probabilities: deque[float] = deque(maxlen=model.sliding_window_size)
        self._bind()

    def _bind(self) -> None:
        self._filled = 0
        self._probabilities.clear()
        try:
            self._bind_tensors()
        except (AttributeError, TypeError, ValueError) as exc:  # another library version
            log.debug("wake word model %s: the library's own inference (%s)", self.model, exc)
            self.fast = False

    def _bind_tensors(self) -> None:
        m = self.model
        lib = m.lib
        channels = lib.TfLiteTensorDim(m.input_tensor, 2)
        in_bytes = m.stride * channels * np.dtype(m.input_dtype).itemsize
        out_bytes = lib.TfLiteTensorByteSize(m.output_tensor)
        self.fast = (lib.TfLiteTensorByteSize(m.input_tensor) == in_bytes
                     and out_bytes == np.dtype(m.output_dtype).itemsize)
        self._windows = np.zeros((m.stride, channels), dtype=np.float64)
        self._quantized = np.zeros((m.stride, channels), dtype=m.input_dtype)
        self._output = np.zeros(1, dtype=m.output_dtype)
        self._in = (m.input_tensor, self._quantized.ctypes.data_as(ctypes.c_void_p), in_bytes)
        self._out = (m.output_tensor, self._output.ctypes.data_as(ctypes.c_void_p), out_bytes)

    def push(self, features: list[float]) -> bool:
        m = self.model
        if not self.fast:
            window = np.array(features, dtype=np.float64).reshape(1, 1, len(features))
            return bool(m.process_streaming(window))
        if not m.interpreter:
            raise RuntimeError(f"wake word model {m.id!r} was closed")
        self._windows[self._filled] = features
        self._filled += 1
        if self._filled < m.stride:
            return False
        self._filled = 0
        w = self._windows
        np.divide(w, m.input_scale, out=w)
        np.add(w, m.input_zero_point, out=w)
        np.round(w, out=w)
        np.copyto(self._quantized, w, casting="unsafe")
        lib = m.lib
        if (lib.TfLiteTensorCopyFromBuffer(*self._in)
                or lib.TfLiteInterpreterInvoke(m.interpreter)
                or lib.TfLiteTensorCopyToBuffer(*self._out)):
            raise RuntimeError(f"TensorFlow Lite failed running wake word model {m.id!r}")
        probabilities = self._probabilities
        probabilities.append((float(self._output[0]) - m.output_zero_point) * m.output_scale)
        if len(probabilities) < probabilities.maxlen:
            return False
        return sum(probabilities) / len(probabilities) > m.probability_cutoff

    def reset(self) -> None:
        self.model.reset()  # reloads the interpreter: its streaming state lives there
        self._bind()


class OpenEngine:
    """openWakeWord: mel spectrogram + speech embedding (shared), a classifier per model."""

    name = "open"

    @staticmethod
    def builtin() -> tuple[str, ...]:
        try:
            from pyopen_wakeword import Model
        except ImportError as exc:
            raise WakeWordUnavailable(
                "engine 'open' needs pyopen-wakeword (pip install pyopen-wakeword)") from exc
        return tuple(m.value for m in Model)

    def __init__(self, models: Sequence[str], cutoff: float | None) -> None:
        known = self.builtin()
        from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

        self.cutoff = _OPEN_CUTOFF if cutoff is None else cutoff
        self.models: list[tuple[str, object]] = []
        self._features = None
        try:
            for name in models:
                try:
                    if name in known:
                        model = OpenWakeWord.from_builtin(Model(name))
                    elif name.endswith(".tflite"):
                        _verify_tflite(name, "pyopen_wakeword")
                        model = OpenWakeWord.from_model(name)
                    else:
                        raise _unknown(name, self.name, known, "an openWakeWord .tflite")
                except WakeWordUnavailable:
                    raise
                except Exception as exc:
                    raise WakeWordUnavailable(
                        f"cannot load wake word model {name!r}: {exc}") from exc
                if not model.interpreter or not model.model:
                    raise WakeWordUnavailable(f"cannot load wake word model {name!r}: "
                                              "TensorFlow Lite could not read it")
                _one_thread(model, "interpreter", "model", "input_tensor", "output_tensor")
                self.models.append((name, model))
            self._features = features = OpenWakeWordFeatures.from_builtin()
            from pyopen_wakeword.openwakeword import EMB_SHAPE, MEL_SHAPE
            _one_thread(features, "mel_interpreter", "mel_model", "mel_input_tensor",
                        "mel_output_tensor", MEL_SHAPE)
            _one_thread(features, "emb_interpreter", "emb_model", "emb_input_tensor",
                        "emb_output_tensor", EMB_SHAPE)
            self._prime()
        except BaseException:
            self.close()
            raise

    def _prime(self) -> None:
        """openWakeWord starts from 8 s of silence it has not yet run its networks on; run
        them now (0.1-0.6 s of CPU), not on the first mic frame, and keep the state they
        leave: :meth:`reset` puts it back (a copy) instead of running them again."""
        for embedding in self._features.process_streaming(bytes(2)):
            for _, model in self.models:
                for _ in model.process_streaming(embedding):
                    pass
        f = self._features
        self._primed = ((f.audio.copy(), f.new_audio_samples, f.mels.copy(), f.new_mels),
                        [(m.embeddings.copy(), m.new_embeddings) for _, m in self.models])

    def feed(self, pcm: bytes) -> str | None:
        heard = None
        for embedding in self._features.process_streaming(pcm):
            for name, model in self.models:
                for probability in model.process_streaming(embedding):
                    if probability > self.cutoff and heard is None:
                        heard = name
        return heard

    def reset(self) -> None:
        (audio, new_audio, mels, new_mels), models = self._primed
        f = self._features
        np.copyto(f.audio, audio)
        np.copyto(f.mels, mels)
        f.new_audio_samples, f.new_mels = new_audio, new_mels
        for (_, model), (embeddings, new_embeddings) in zip(self.models, models):
            np.copyto(model.embeddings, embeddings)
            model.new_embeddings = new_embeddings

    def close(self) -> None:
        for part in [m for _, m in self.models] + [self._features]:
            if part is None:
                continue
            try:
                part.close()
            except Exception as exc:  # closing must not stop the shutdown
                log.debug("closing wake word model: %s", exc)
        self.models = []
        self._features = None


def _one_thread(owner, interpreter: str, model: str, input_tensor: str, output_tensor: str,
                input_shape: Sequence[int] | None = None) -> None:
    """Rebuild ``owner``'s TFLite interpreter to run on the calling thread only.

    pyopen-wakeword creates its interpreters without options, and TensorFlow Lite then
    gives each one a thread pool of its own (8 threads for one model and the two feature
    networks on the 2-core development VM), which took 1.8 times the CPU of running them
    on one thread. One thread per interpreter: the work happens in the caller's thread and
    nothing else wakes."""
    lib = owner.lib
    create = lib.TfLiteInterpreterOptionsCreate
    create.argtypes, create.restype = [], ctypes.c_void_p
    threads = lib.TfLiteInterpreterOptionsSetNumThreads
    threads.argtypes, threads.restype = [ctypes.c_void_p, ctypes.c_int32], None
    delete = lib.TfLiteInterpreterOptionsDelete
    delete.argtypes, delete.restype = [ctypes.c_void_p], None
    options = create()
    if not options:
        raise WakeWordUnavailable("TensorFlow Lite could not create interpreter options")
    try:
        threads(options, 1)
        new = lib.TfLiteInterpreterCreate(getattr(owner, model), options)
    finally:
        delete(options)
    if not new:
        raise WakeWordUnavailable("TensorFlow Lite could not create an interpreter")
    if input_shape is not None:
        dims = (ctypes.c_int32 * len(input_shape))(*input_shape)
        lib.TfLiteInterpreterResizeInputTensor(new, 0, dims, len(input_shape))
    if lib.TfLiteInterpreterAllocateTensors(new):
        lib.TfLiteInterpreterDelete(new)
        raise WakeWordUnavailable("TensorFlow Lite could not allocate a model's tensors")
    lib.TfLiteInterpreterDelete(getattr(owner, interpreter))
    setattr(owner, interpreter, new)
    setattr(owner, input_tensor, lib.TfLiteInterpreterGetInputTensor(new, 0))
    setattr(owner, output_tensor, lib.TfLiteInterpreterGetOutputTensor(new, 0))


ENGINES = {"micro": MicroEngine, "open": OpenEngine}


def engine_class(engine: str):
    try:
        return ENGINES[engine]
    except KeyError:
        raise WakeWordUnavailable(f"unknown wake word engine {engine!r}; "
                                  f"choose one of: {', '.join(ENGINES)}") from None
