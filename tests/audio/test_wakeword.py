"""The wake word detector on espeak-ng speech (made once per module, a few seconds of it):
detection at 16 and 24 kHz, silence in other speech, refractory time, reset, bad models
and bad input that must never raise into the capture thread."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import sys

import numpy as np
import pytest
import soxr

from edgevoice.audio.wakeword import (
    ENGINES, WakeWordDetector, WakeWordUnavailable, builtin_models)
from tests.support import ROOT

FS = 16000
LEVEL = 0.1  # speech RMS (-20 dBFS)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is missing: run ./scripts/bootstrap")


def _corpus_module():
    spec = importlib.util.spec_from_file_location("wakeword_corpus",
                                                  ROOT / "scripts" / "wakeword_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Speech:
    """Float speech at 16 kHz, and helpers to lay it out as PCM16 at any rate."""

    def __init__(self) -> None:
        wc = _corpus_module()
        self.nabu = wc.synth("okay nabu", "en-us", 150, 50)
        self.jarvis = wc.synth("hey jarvis", "en-us", 150, 50)
        self.other = [wc.synth(text, "en-us", 160, 50) for text in (
            "Could you put the kettle on while I find the cups?",
            "Okay, I think we should leave in about ten minutes.",
            "The forecast says it will rain most of the afternoon.",
            "Hey, did anybody see where I left my keys?")]

    @staticmethod
    def pcm(*pieces, rate: int = FS) -> bytes:
        """Concatenate pieces (float speech, or a number: seconds of silence) to PCM16."""
        parts = []
        for piece in pieces:
            if isinstance(piece, (int, float)):
                parts.append(np.zeros(int(piece * FS), np.float32))
            else:
                parts.append(piece * (LEVEL / np.sqrt(np.mean(piece ** 2))))
        x = np.concatenate(parts).astype(np.float32)
        if rate != FS:
            x = soxr.resample(x, FS, rate).astype(np.float32)
        return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def speech() -> Speech:
    return Speech()


def feed(detector, pcm: bytes, frame_bytes: int | None = None) -> list[tuple[float, str]]:
    """Every detection as (audio second at the end of its frame, model)."""
    size = frame_bytes or detector.rate // 50 * 2
    out = []
    for i in range(0, len(pcm), size):
        heard = detector.process(pcm[i:i + size])
        if heard is not None:
            out.append((round((i + size) / (2 * detector.rate), 2), heard))
    return out


@pytest.fixture
def nabu():
    detectors = []

    def make(**kwargs):
        d = WakeWordDetector(["okay_nabu"], **kwargs)
        detectors.append(d)
        return d

    yield make
    for d in detectors:
        d.close()


@pytest.mark.parametrize("rate", [16000, 24000])
def test_phrase_is_detected_once_at_the_wire_rate(speech, nabu, rate):
    detector = nabu(rate=rate)
    found = feed(detector, speech.pcm(1.0, speech.nabu, 1.5, rate=rate))
    end = 1.0 + len(speech.nabu) / FS
    assert [m for _, m in found] == ["okay_nabu"]
    assert 1.0 < found[0][0] < end + 0.6, found  # at the end of the phrase, not before
    assert detector.detections == 1
    assert detector.seconds_processed == pytest.approx(2.5 + len(speech.nabu) / FS, abs=0.03)
    assert 0 < detector.busy_s < detector.seconds_processed


def test_other_speech_is_not_a_wake_word(speech):
    detector = WakeWordDetector(builtin_models(), 16000)
    try:
        assert feed(detector, speech.pcm(*[p for s in speech.other for p in (s, 0.5)])) == []
    finally:
        detector.close()


@pytest.mark.parametrize("gap_s, expected", [(0.5, 1), (3.0, 2)])
def test_refractory_time_makes_one_utterance_one_detection(speech, nabu, gap_s, expected):
    detector = nabu(refractory_s=2.0)
    found = feed(detector, speech.pcm(0.5, speech.nabu, gap_s, speech.nabu, 1.5))
    assert [m for _, m in found] == ["okay_nabu"] * expected


def test_reset_ends_the_refractory_time_and_detection_goes_on(speech, nabu):
    detector = nabu(refractory_s=30.0)
    first = speech.pcm(0.5, speech.nabu, 1.0)
    assert len(feed(detector, first)) == 1
    assert feed(detector, first) == []  # still inside the refractory time
    detector.reset()
    assert len(feed(detector, first)) == 1


def test_odd_frame_sizes_are_carried_over_and_logged_once(speech, nabu, caplog):
    detector = nabu(rate=24000)
    pcm = speech.pcm(1.0, speech.nabu, 1.5, rate=24000)
    sizes = [961, 333, 1, 1000, 7]
    found, at, k = [], 0, 0
    with caplog.at_level(logging.WARNING, logger="edgevoice.audio.wakeword"):
        while at < len(pcm):
            heard = detector.process(pcm[at:at + sizes[k % len(sizes)]])
            at += sizes[k % len(sizes)]
            k += 1
            if heard:
                found.append(heard)
        assert detector.process(b"") is None
        assert detector.process(bytearray(960)) is None
        assert detector.process(None) is None  # not bytes: skipped, never raised
    assert found == ["okay_nabu"]
    odd = [r for r in caplog.records if "not whole 16-bit samples" in r.getMessage()]
    assert len(odd) == 1  # rate-limited: hundreds of odd frames, one line
    assert detector.seconds_processed == pytest.approx((len(pcm) + 960) / 48000, abs=1e-3)


def test_a_model_failing_at_run_time_turns_detection_off_not_the_thread(speech, nabu,
                                                                         caplog):
    detector = nabu()
    _, model = detector._engine.models[0]
    model.close()  # the TFLite interpreter is gone: the next inference fails
    with caplog.at_level(logging.WARNING, logger="edgevoice.audio.wakeword"):
        assert feed(detector, speech.pcm(0.5, speech.nabu, 1.0)) == []
    assert not detector.active and "closed" in detector.error
    off = [r for r in caplog.records if "wake word detection is OFF" in r.getMessage()]
    assert len(off) == 1
    detector.reset()  # reloads the model: detection comes back
    assert detector.active
    assert [m for _, m in feed(detector, speech.pcm(0.5, speech.nabu, 1.0))] == ["okay_nabu"]


@pytest.mark.parametrize("models, engine, words", [
    (["hey_siri"], "micro", ["hey_siri", "okay_nabu", "alexa", ".json"]),
    (["okay_nabu", "computer"], "micro", ["computer", "hey_mycroft"]),
    ([], "micro", ["no wake word model"]),
    (["okay_nabu"], "porcupine", ["porcupine", "micro", "open"]),
    (["/nonexistent/model.json"], "micro", ["/nonexistent/model.json"]),
])
def test_bad_model_names_say_what_exists(models, engine, words):
    with pytest.raises(WakeWordUnavailable) as err:
        WakeWordDetector(models, 16000, engine=engine)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("cutoff", [0, 1, 1.5, -0.2, True, "0.5", float("nan")])
def test_cutoff_must_lie_between_0_and_1(cutoff):
    with pytest.raises(WakeWordUnavailable, match="cutoff"):
        WakeWordDetector(["okay_nabu"], 16000, cutoff=cutoff)


def test_cutoff_applies(speech, nabu):
    assert feed(nabu(cutoff=0.999999), speech.pcm(0.5, speech.nabu, 1.0)) == []
    assert len(feed(nabu(cutoff=0.5), speech.pcm(0.5, speech.nabu, 1.0))) == 1


@pytest.mark.parametrize("rate, refractory", [(0, 2.0), (16000.0, 2.0), (16000, -1)])
def test_rate_and_refractory_are_checked(rate, refractory):
    with pytest.raises(WakeWordUnavailable):
        WakeWordDetector(["okay_nabu"], rate, refractory_s=refractory)


def _bundled(name: str):
    import pymicro_wakeword
    from pathlib import Path
    return Path(pymicro_wakeword.__file__).parent / "models" / name


def test_custom_model_from_a_json_path(speech, tmp_path):
    config = json.loads(_bundled("okay_nabu.json").read_text())
    config["model"] = "my_phrase.tflite"
    (tmp_path / "my_phrase.tflite").write_bytes(_bundled("okay_nabu.tflite").read_bytes())
    path = tmp_path / "my_phrase.json"
    path.write_text(json.dumps(config))
    detector = WakeWordDetector([str(path)], 16000)
    try:
        assert detector.models == (str(path),)
        assert [m for _, m in feed(detector, speech.pcm(0.5, speech.nabu, 1.0))] == [str(path)]
    finally:
        detector.close()


@pytest.mark.parametrize("damage", ["garbage tflite", "empty tflite", "bad json",
                                    "json without micro", "missing tflite"])
def test_a_broken_model_file_is_refused_without_crashing(tmp_path, damage):
    config = json.loads(_bundled("okay_nabu.json").read_text())
    tflite = tmp_path / config["model"]
    path = tmp_path / "okay_nabu.json"
    rng = np.random.default_rng(1)
    tflite.write_bytes({"garbage tflite": rng.bytes(5000),
                        "empty tflite": b""}.get(damage, _bundled(config["model"]).read_bytes()))
    if damage == "json without micro":
        del config["micro"]
    if damage == "missing tflite":
        tflite.unlink()
    path.write_text("{not json" if damage == "bad json" else json.dumps(config))
    with pytest.raises(WakeWordUnavailable) as err:
        WakeWordDetector([str(path)], 16000)
    assert str(tmp_path) in str(err.value)


def test_engines_list_their_models():
    assert set(ENGINES) == {"micro", "open"}
    assert builtin_models() == ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
    with pytest.raises(WakeWordUnavailable, match="micro, open"):
        builtin_models("nope")


open_engine = pytest.mark.skipif(importlib.util.find_spec("pyopen_wakeword") is None,
                                 reason="pyopen-wakeword is not installed (requirements-dev)")


@open_engine
def test_open_engine_detects_its_phrase_and_not_other_speech(speech):
    assert "hey_rhasspy" in builtin_models("open")
    detector = WakeWordDetector(["hey_jarvis"], 24000, engine="open")
    try:
        found = feed(detector, speech.pcm(1.0, speech.jarvis, 1.5, *speech.other[:2], 0.5,
                                          rate=24000))
        assert [m for _, m in found] == ["hey_jarvis"]
        assert found[0][0] < 1.0 + len(speech.jarvis) / FS + 1.0
    finally:
        detector.close()


@open_engine
def test_open_engine_refuses_a_broken_tflite(tmp_path):
    bad = tmp_path / "mine.tflite"
    bad.write_bytes(b"TFL3" + bytes(100))
    with pytest.raises(WakeWordUnavailable, match="not a TensorFlow Lite model"):
        WakeWordDetector([str(bad)], 16000, engine="open")


def test_after_close_process_and_reset_do_nothing(speech):
    detector = WakeWordDetector(["okay_nabu"], 16000)
    detector.close()
    detector.reset()
    assert detector.process(speech.pcm(0.1)) is None
    assert detector.error == "closed" and detector.models == ()
    detector.close()  # twice is fine


def test_reset_from_another_thread_while_frames_flow(speech):
    """reset() reloads the TFLite interpreters process() runs in: the lock keeps them
    apart (without it this crashes the interpreter sooner or later)."""
    import threading
    detector = WakeWordDetector(["okay_nabu", "alexa"], 16000)
    stop = threading.Event()

    def resets():
        while not stop.is_set():
            detector.reset()

    thread = threading.Thread(target=resets)
    thread.start()
    try:
        pcm = speech.pcm(0.5, speech.nabu, 0.5) * 3
        feed(detector, pcm)
    finally:
        stop.set()
        thread.join(10)
        detector.close()
    assert not thread.is_alive()
    assert detector.seconds_processed > 0 and detector.error == "closed"


@open_engine
def test_open_engine_starts_no_threads_of_its_own(speech):
    """pyopen-wakeword's interpreters would each start a TFLite thread pool; ours run on
    the caller's thread (the capture thread pays, and nothing else spins)."""
    import os
    before = len(os.listdir("/proc/self/task"))
    detector = WakeWordDetector(["okay_nabu", "alexa"], 16000, engine="open")
    try:
        feed(detector, speech.pcm(0.5, speech.nabu, 0.5))
        assert len(os.listdir("/proc/self/task")) <= before  # (another test's may end)
    finally:
        detector.close()


@pytest.mark.parametrize("engine", [
    "micro", pytest.param("open", marks=open_engine)])
def test_after_reset_a_detector_hears_exactly_as_a_fresh_one(speech, engine):
    pcm = speech.pcm(speech.jarvis, 0.5, speech.nabu, 1.0)  # no lead: stale state shows
    fresh = WakeWordDetector(["okay_nabu", "hey_jarvis"], 16000, engine=engine,
                             refractory_s=0, cutoff=0.3)
    used = WakeWordDetector(["okay_nabu", "hey_jarvis"], 16000, engine=engine,
                            refractory_s=0, cutoff=0.3)
    try:
        expected = feed(fresh, pcm)
        assert expected  # the low cutoff makes several detections to compare
        feed(used, speech.pcm(speech.other[0], speech.nabu, speech.other[1]))
        used.reset()
        assert feed(used, pcm) == expected
    finally:
        fresh.close()
        used.close()


def test_library_inference_path_hears_the_same(speech, nabu):
    """A model whose tensors the fast runner does not recognise (another pymicro-wakeword
    version) runs through the library's own ``process_streaming``: same detections."""
    fast, library = nabu(), nabu()
    for _, runner in library._engine._runners:
        runner.fast = False
    pcm = speech.pcm(0.5, speech.nabu, 1.0, speech.other[1], 0.3)
    assert feed(fast, pcm) == feed(library, pcm) != []
