"""The sections of the hands-free features: [sounds] (the earcons, :mod:`edgevoice.sounds`)
and [wake_word] (:mod:`edgevoice.wake`), with their value types and checks."""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevoice.config.errors import Problem, did_you_mean
from edgevoice.config.registry import dialects, is_file
from edgevoice.config.types import Choice, Float, Invalid, List, ValueType, key
from edgevoice.config.types import Path as PathValue


class SoundFile(ValueType):
    """``default`` (the bundled sound), ``off``, or the path of a WAV file."""

    def parse(self, raw: str) -> str:
        if raw.lower() in ("default", "off"):
            return raw.lower()
        if not raw:
            raise Invalid("empty; write default, off, or the path of a WAV file")
        return PathValue().parse(raw)


def sound_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be an earcon (None: it can): it must be an absolute path to a
    mono or stereo 16-bit PCM WAV of at most :data:`MAX_SOUND_S` seconds."""
    if not os.path.isabs(path):
        return f"'{path}' must be an absolute path to a WAV file (or default, or off)"
    if not is_file(Path(path)):
        return f"{path} does not exist; give a WAV file, or default, or off"
    try:
        with wave.open(path, "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                return (f"{path} is not 16-bit PCM; convert it, e.g. sox in.wav -b 16 "
                        f"{Path(path).name}")
            seconds = wav.getnframes() / wav.getframerate()
    except (OSError, EOFError, wave.Error) as exc:
        return f"{path} is not a readable WAV file ({exc}); give a 16-bit PCM WAV"
    if seconds > MAX_SOUND_S:
        return f"{path} lasts {seconds:.1f} s; a sound may last at most {MAX_SOUND_S:g} s"
    return None


MAX_SOUND_S = 10.0
_SOUND = ("default (the bundled sound), off, or the absolute path of a 16-bit PCM WAV "
          "(mono or stereo, any rate, at most 10 s).")


@dataclass(frozen=True)
class SoundSettings:
    """The earcons (:mod:`edgevoice.sounds`)."""

    listening: str = key("Played when a session starts listening (a toggle press, the wake "
                         "word, unmute, back online): " + _SOUND, "default", SoundFile())
    ended: str = key("Played when a session ends by the button, a timeout or the privacy mute: " + _SOUND,
                     "default", SoundFile())
    error: str = key("Played when the agent cannot be reached (offline; once per outage): "
                     + _SOUND, "default", SoundFile())
    thinking: str = key("Looped quietly while a [tools] program runs or the agent is slow "
                        "to answer: " + _SOUND, "default", SoundFile())
    thinking_after_s: float = key("The agent silent this long after the user's turn was "
                                  "transcribed: the thinking sound starts (0: only while a "
                                  "tool runs).", 2.0, Float(0.0, 60.0))
    level_db: float = key("The sounds' level relative to their WAV, before [audio] volume.",
                          0.0, Float(-40.0, 12.0))
    duck_db: float = key("The agent's voice is this much quieter while a sound plays.",
                         12.0, Float(0.0, 60.0))

    def check(self) -> list[Problem]:
        problems = []
        for name in ("listening", "ended", "error", "thinking"):
            value = getattr(self, name)
            if value not in ("default", "off"):
                problem = sound_file_problem(value)
                if problem:
                    problems.append(Problem("sounds", name, problem))
        return problems


class WakeModels(List):
    """Wake word models, comma-separated: bundled names or paths of model files (a
    microWakeWord ``.json``, an openWakeWord ``.tflite``). Which engine knows a name, and
    whether a file exists, is checked with the section (:meth:`WakeWordSettings.check`)."""

    def parse(self, raw: str) -> tuple[str, ...]:
        names = super().parse(raw)
        if not names:
            raise Invalid("no model given; e.g. okay_nabu")
        if len(set(names)) != len(names):
            raise Invalid(f"'{raw}' names a model twice; list each once")
        return names


class AgentMap(ValueType):
    """``model: provider`` pairs, comma-separated (``okay_nabu: xuna, alexa: gemini``)."""

    EXAMPLE = "e.g. okay_nabu: xuna, alexa: gemini"

    def parse(self, raw: str) -> tuple[tuple[str, str], ...]:
        pairs: list[tuple[str, str]] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            model, sep, provider = (part.strip() for part in item.rpartition(":"))
            if not sep or not model or not provider:
                raise Invalid(f"'{item[:60]}' is not 'model: provider'; {self.EXAMPLE}")
            if provider not in dialects():
                raise Invalid(f"'{provider}' in '{item[:60]}' is not a provider; one of: "
                              f"{', '.join(dialects())}" + did_you_mean(provider, list(dialects())))
            if model in (m for m, _ in pairs):
                raise Invalid(f"'{model}' is given two agents; keep one")
            pairs.append((model, provider))
        return tuple(pairs)

    def render(self, value) -> str:
        return ", ".join(f"{model}: {provider}" for model, provider in value)


@dataclass(frozen=True)
class WakeWordSettings:
    """``[agent] mode = wake-word`` (:mod:`edgevoice.wake`)."""

    models: tuple = key("Wake words listened for, comma-separated: okay_nabu, hey_jarvis, "
                        "hey_mycroft, alexa (bundled), or the path of a model file: a "
                        "microWakeWord .json (its .tflite beside it; engine micro) or an "
                        "openWakeWord .tflite (engine open).", ("okay_nabu",), WakeModels())
    engine: str = key("The detector: micro (microWakeWord, installed with edgevoice: the "
                      "least CPU) or open (openWakeWord, pip install edgevoice[open]: also "
                      "hey_rhasspy and openWakeWord .tflite models). See the README's Wake "
                      "word engine.", "micro", Choice("micro", "open"))
    agents: tuple = key("A different agent per wake word: 'model: provider' pairs, e.g. "
                        "okay_nabu: xuna, alexa: gemini (each provider's own section holds its "
                        "settings); a model not listed talks to [agent] provider.", (),
                        AgentMap())
    follow_up_s: float = key("After each answer the user may speak again without the wake "
                             "word this long; silence ends the session (0: end after the "
                             "answer).", 5.0, Float(0.0, 120.0))
    quiet_s: float = key("A session in which nobody speaks for this long ends (after the "
                         "wake word, or while waiting for an answer; a running [tools] program "
                         "holds it open).", 15.0,
                         Float(2.0, 3600.0))
    cutoff: float = key("Detection threshold 0 to 1 for every model; higher: fewer false "
                        "wakes, more misses (0: each model's own).", 0.0, Float(0.0, 0.99))
    refractory_s: float = key("After a detection, ignore the wake words this long.", 2.0,
                              Float(0.1, 30.0))

    def agent_for(self, model: str, default: str) -> str:
        """The provider (dialect) a session woken by ``model`` talks to."""
        return dict(self.agents).get(model, default)

    def check(self) -> list[Problem]:
        problems = self._model_problems()
        for model, _ in self.agents:
            if model not in self.models:
                problems.append(Problem("wake_word", "agents", f"'{model}' is not in models "
                                        f"({', '.join(self.models)}); add it there or remove "
                                        "its agent"))
        return problems


    def _model_problems(self) -> list[Problem]:
        """Each model against the engine: a name it bundles, or a file of its kind."""
        from edgevoice.audio.wakeword import WakeWordUnavailable, builtin_models
        suffix = ".json" if self.engine == "micro" else ".tflite"
        try:
            known = builtin_models(self.engine)  # the engine is imported when first needed
        except WakeWordUnavailable as exc:
            return [Problem("wake_word", "engine", f"{exc}; or set engine = micro")]
        problems = []
        for model in self.models:
            if model in known:
                continue
            if not model.endswith(suffix):
                problems.append(Problem(
                    "wake_word", "models", f"'{model}' is not a bundled model of engine {self.engine} "
                    f"({', '.join(known)}) nor the path of a {suffix} model file"
                    + did_you_mean(model, list(known))))
            elif not is_file(Path(model)):
                problems.append(Problem("wake_word", "models", f"{model} does not exist; give "
                                        f"the path of a {suffix} model file or a bundled name "
                                        "such as okay_nabu"))
        return problems


def wake_word_problems(cfg: Any) -> list[Problem]:
    """The rules of wake-word mode: [wake_word] itself, the sections of the providers its
    wake words choose, and one microphone rate for all of them (the sound device is
    opened once, at the rate of [agent] provider)."""
    if cfg.agent.mode != "wake-word":
        return []
    settings = cfg.section("wake_word")
    problems = settings.check()
    main = cfg.agent.provider
    rate = dialects()[main].provider.mic_rate
    for model, name in settings.agents:
        if name == main:
            continue
        problems += cfg.section(name).check()
        other = dialects()[name].provider.mic_rate
        if other != rate:
            problems.append(Problem("wake_word", "agents", f"{model}: {name} takes the "
                                    f"microphone at {other} Hz, [agent] provider {main} at "
                                    f"{rate} Hz; the device records at one rate: choose "
                                    "providers of the same rate"))
    return problems
