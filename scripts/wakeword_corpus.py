"""The wake word bench's corpus, spoken by espeak-ng at bench time (nothing downloaded).

Two 16 kHz mono int16 tracks, deterministic (fixed seed) and cached (``--cache``, default
``$TMPDIR/edgevoice-bench-cache``; the key covers every setting and espeak-ng's version):

- **wake**: for each bundled model, ``trials`` repetitions of [an ordinary sentence, a
  pause, the wake phrase, a pause], each in a voice/speed/pitch from :data:`VOICES`,
  :data:`SPEEDS`, :data:`PITCHES` (every combination, in a seeded shuffled order) with
  sox pink noise mixed in at a signal-to-noise ratio from :data:`SNRS_DB`. The phrase's
  position is recorded: a detection of that model between its start and 1 s after its
  end is a hit; anything else is a false accept.
- **negative**: ``negative_minutes`` of ordinary sentences (:data:`SENTENCES`, some with
  "okay", "hey", "next" and the like, as people speak) in the same voices and noise, and
  no wake phrase: every detection is a false accept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass, field

import numpy as np
import soxr

FS = 16000
VERSION = 3  # bump when the generator changes: the cache key includes it

PHRASES = {"okay_nabu": "okay nabu", "hey_jarvis": "hey jarvis",
           "hey_mycroft": "hey mycroft", "alexa": "alexa"}
VOICES = ("en-us", "en-gb", "en+f3", "en+m3", "en-us+f2", "en-gb-x-rp", "en-029",
          "en-gb-scotland")
SPEEDS = (130, 160, 190)  # words per minute
PITCHES = (35, 65)        # espeak-ng's 0-99 scale (50 is the voice's own)
SNRS_DB = (30, 20, 10)    # speech level over the pink noise
SENTENCES = (
    "Could you put the kettle on while I find the cups?",
    "The train to the city leaves at a quarter past eight.",
    "Okay, I think we should leave in about ten minutes.",
    "Hey, did anybody see where I left my keys?",
    "Remind me to water the plants on Saturday morning.",
    "The forecast says it will rain most of the afternoon.",
    "I read that the museum is closed on Mondays.",
    "Let's order pizza tonight, the pasta can wait.",
    "My brother moved to a small town near the coast.",
    "Please turn the music down a little, it is late.",
    "We need milk, eggs, bread and some apples.",
    "Next week the school holidays begin again.",
    "Alex said the meeting was moved to Thursday.",
    "Hey there, how was your trip to the mountains?",
    "The battery in the smoke alarm needs replacing.",
    "Okay, okay, I will call the plumber tomorrow.",
    "Can you believe how quickly this year has gone?",
    "The garden looks lovely after all that sunshine.",
    "I could not find a parking space near the station.",
    "Jars of jam are on the top shelf in the pantry.",
    "The kids are playing football in the park.",
    "Maybe we can visit grandma on Sunday afternoon.",
    "This recipe needs two cups of flour and a pinch of salt.",
    "My laptop keeps crashing when I open too many tabs.",
    "Nobody knows where the old map of the harbour went.",
    "Turn left at the bakery and then keep going straight.",
    "The concert starts at seven, so we should eat early.",
    "I am not sure the printer has any paper left.",
    "A lexicon of old words sits on the shelf in the hall.",
    "Hey, that was a brilliant goal in the second half.",
    "Microwave the soup for two minutes and stir it.",
    "The neighbours are having a party on Friday night.",
)


@dataclass
class Corpus:
    wake: np.ndarray                  # int16 at FS
    negative: np.ndarray              # int16 at FS
    events: list[dict] = field(default_factory=list)  # model, start_s, end_s, voice, ...
    settings: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "generator": "espeak-ng (scripts/wakeword_corpus.py), pink noise from sox",
            "wake_minutes": round(len(self.wake) / FS / 60, 2),
            "negative_minutes": round(len(self.negative) / FS / 60, 2),
            "phrases_per_model": self.settings["trials"],
            "voices": list(VOICES), "speeds_wpm": list(SPEEDS), "pitches": list(PITCHES),
            "snr_db": list(SNRS_DB), "seed": self.settings["seed"],
        }


@dataclass(frozen=True)
class Settings:
    trials: int = 8             # phrases per model (of the 48 voice x speed x pitch)
    negative_minutes: float = 3.0
    seed: int = 14


def _espeak_version() -> str:
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def synth(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng speech at FS, float32 in [-1, 1], leading/trailing silence trimmed."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                          "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    y = soxr.resample(x, rate, FS).astype(np.float32)
    loud = np.flatnonzero(np.abs(y) > 0.01)
    return y[loud[0]:loud[-1] + 1] if len(loud) else y


def pink_noise(seconds: float, seed: int) -> np.ndarray:
    """sox's pink noise (repeatable mode), float32 at unit RMS."""
    raw = subprocess.run(["sox", "-R", "-n", "-r", str(FS), "-b", "16", "-e", "signed",
                          "-t", "raw", "-", "synth", str(seconds), "pinknoise",
                          "vol", "0.5"], capture_output=True, check=True,
                         env={**os.environ, "SOX_OPTS": ""}).stdout
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    rng = np.random.default_rng(seed)  # start each track at a different place in it
    x = np.roll(x, int(rng.integers(len(x))))
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-9)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


class _Track:
    """Speech pieces at a common level plus pauses, noise added per piece at an SNR."""

    def __init__(self, noise: np.ndarray) -> None:
        self.parts: list[np.ndarray] = []
        self.length = 0
        self._noise = noise
        self._noise_at = 0

    def _noise_for(self, n: int) -> np.ndarray:
        if self._noise_at + n > len(self._noise):
            self._noise_at = 0
        out = self._noise[self._noise_at:self._noise_at + n]
        self._noise_at += n
        return out

    def add(self, speech: np.ndarray | None, pause_s: float, snr_db: float,
            level: float = 0.1) -> tuple[float, float]:
        """Append ``speech`` (scaled to RMS ``level``) then ``pause_s`` of silence, all
        under noise ``snr_db`` below the speech; returns the speech's (start, end) s."""
        speech = np.zeros(0, np.float32) if speech is None else speech
        speech = speech * (level / max(_rms(speech), 1e-9))
        pause = np.zeros(int(pause_s * FS), np.float32)
        piece = np.concatenate([speech, pause])
        piece = piece + self._noise_for(len(piece)) * level * 10 ** (-snr_db / 20)
        start = self.length / FS
        self.parts.append(piece)
        self.length += len(piece)
        return start, start + len(speech) / FS

    def pcm(self) -> np.ndarray:
        x = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def generate(settings: Settings) -> Corpus:
    rng = np.random.default_rng(settings.seed)
    cache: dict[tuple, np.ndarray] = {}

    def say(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        key = (text, voice, speed, pitch)
        if key not in cache:
            cache[key] = synth(*key)
        return cache[key]

    combos = [(v, s, p) for v in VOICES for s in SPEEDS for p in PITCHES]
    wake = _Track(pink_noise(60, settings.seed))
    wake.add(None, 1.0, 30)
    events = []
    order = []
    for model in PHRASES:
        picks = rng.permutation(len(combos))[:settings.trials]
        order += [(model, combos[i]) for i in picks]
    rng.shuffle(order)
    for model, (voice, speed, pitch) in order:
        snr = float(rng.choice(SNRS_DB))
        sentence = SENTENCES[int(rng.integers(len(SENTENCES)))]
        wake.add(say(sentence, voice, speed, 50), float(rng.uniform(0.4, 1.2)), snr)
        start, end = wake.add(say(PHRASES[model], voice, speed, pitch),
                              float(rng.uniform(2.2, 3.0)), snr)
        events.append({"model": model, "start_s": round(start, 3), "end_s": round(end, 3),
                       "voice": voice, "speed": speed, "pitch": pitch, "snr_db": snr})
    negative = _Track(pink_noise(60, settings.seed + 1))
    while negative.length < settings.negative_minutes * 60 * FS:
        voice, speed, pitch = combos[int(rng.integers(len(combos)))]
        sentence = SENTENCES[int(rng.integers(len(SENTENCES)))]
        negative.add(say(sentence, voice, speed, pitch), float(rng.uniform(0.2, 1.5)),
                     float(rng.choice(SNRS_DB)))
    return Corpus(wake.pcm(), negative.pcm(), events, asdict(settings))


def load(settings: Settings, cache_dir: str | None = None) -> tuple[Corpus, bool]:
    """The corpus for ``settings``, from the cache when it is there; (corpus, cached)."""
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "edgevoice-bench-cache")
    key = hashlib.sha256(json.dumps([VERSION, asdict(settings), _espeak_version(),
                                     PHRASES, VOICES, SPEEDS, PITCHES, SNRS_DB, SENTENCES])
                         .encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"wakeword-{key}.npz")
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return Corpus(data["wake"], data["negative"], meta["events"], meta["settings"]), True
    corpus = generate(settings)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, wake=corpus.wake, negative=corpus.negative,
             meta=json.dumps({"events": corpus.events, "settings": corpus.settings}))
    os.replace(tmp, path)
    return corpus, False
