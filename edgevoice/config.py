"""The configuration file: schema, parsing, validation and printing.

One INI file (``/etc/edgevoice/edgevoice.conf``). Each section is a frozen dataclass whose
fields are the keys; a field's metadata holds its one-line documentation and, for choices,
the allowed values. :func:`load` reads a file and either returns a :class:`Config` or raises
:class:`ConfigError` listing *every* problem at once, each with section, key, what is wrong
and how to fix it.

Secrets (``kind="secret"``) can be written inline (``api_key = ...``), read from a file
(``api_key_file = PATH``), or come from systemd credentials
(``$CREDENTIALS_DIRECTORY/<section>_<key>``). They are held as :class:`~edgevoice.redact.Secret`
and never printed.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import errno
import json
import math
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevoice.redact import MASK, Secret

DEFAULT_PATH = "/etc/edgevoice/edgevoice.conf"
EX_CONFIG = 78  # sysexits.h: configuration error
MAX_FILE_BYTES = 1 << 20  # the config file
MAX_SECRET_BYTES = 64 * 1024  # an api_key_file or a credential
MAX_VALUE_CHARS = 64 * 1024  # one value (a long prompt fits)


def _key(doc: str, default: Any = "", *, choices: tuple[str, ...] = (), kind: str = "",
         minimum: float | None = None, maximum: float | None = None) -> Any:
    meta = {"doc": doc, "choices": choices, "kind": kind, "min": minimum, "max": maximum}
    return field(default=default, metadata=meta)


PROVIDERS = ("xuna", "voiceapi", "napster", "navtalk")


@dataclass(frozen=True)
class AgentSettings:
    provider: str = _key("Which agent dialect to speak.", "xuna", choices=PROVIDERS)
    history: bool = _key("Keep the conversation's transcript in state_dir (off: keep nothing).",
                         True)
    state_dir: str = _key("Where the transcript is kept (default: $STATE_DIRECTORY, else "
                          "/var/lib/edgevoice).", kind="path")
    history_max_kb: int = _key("Size cap of the transcript file; the oldest turns go first.",
                               256, minimum=4, maximum=102400)
    history_replay_turns: int = _key("Recent user turns sent to agents that take history "
                                     "(navtalk) at session start.", 10, minimum=0, maximum=100)
    tool_timeout: float = _key("Seconds a [tools] program may run before the agent gets an "
                               "error result.", 8.0, minimum=0.5, maximum=60.0)
    mode: str = _key("always-on: a session all the time, the button mutes; push-to-talk: the "
                     "mic is heard only while the button is held; toggle: a press starts a "
                     "session, the next ends it.", "always-on",
                     choices=("always-on", "push-to-talk", "toggle"))
    toggle_idle_s: float = _key("toggle mode: end a session after this many seconds without "
                                "speech either way.", 120.0, minimum=10.0, maximum=86400.0)
    barge_in: bool = _key("Stop the agent's voice on the device the instant the user talks "
                          "over it (see [barge_in]); off: only the server's interruptions.",
                          True)


@dataclass(frozen=True)
class XunaSettings:
    agent_id: str = _key("The agent's id (XUNA dashboard).")
    api_key: Secret | None = _key(
        "API key; when set, a signed URL is fetched for every session (private agents).",
        None, kind="secret")
    url: str = _key("WebSocket endpoint.", "wss://api.xuna.ai/v1/convai/conversation", kind="ws_url")
    api_url: str = _key("REST base URL (signed URLs).", "https://api.xuna.ai", kind="http_url")
    audio_form: str = _key(
        "How mic audio is sent: audio_event (XUNA) or user_audio_chunk (ElevenLabs form).",
        "audio_event", choices=("audio_event", "user_audio_chunk"))
    prompt: str = _key("Override the agent's prompt for this device (empty: agent default).")
    first_message: str = _key("Override the agent's first message (empty: agent default).")
    language: str = _key("Override the conversation language, e.g. en (empty: agent default).")
    voice_id: str = _key("Override the TTS voice id (empty: agent default).")


@dataclass(frozen=True)
class VoiceApiSettings:
    api_url: str = _key("REST base URL; the token is fetched from {api_url}/api/v1/sdk/token.",
                        kind="http_url")
    api_key: Secret | None = _key("API key (Bearer).", None, kind="secret")


@dataclass(frozen=True)
class NapsterSettings:
    api_url: str = _key("REST base URL.", "https://companion-api.napster.com", kind="http_url")
    api_key: Secret | None = _key("API key (X-Api-Key).", None, kind="secret")
    agent_id: str = _key("Omniagent id; when set, sessions open with "
                         "/public/agents/{agent_id}/connections and the per-session settings "
                         "below are not sent.")
    companion_id: str = _key("Companion id (per-session connections).")
    voice_id: str = _key("Voice id (providerConfig.voiceId).")
    provider_settings: dict = _key("JSON object of provider settings, e.g. "
                                   '{"temperature": 0.7}.', None, kind="json")
    functions: tuple = _key("Function ids to attach, comma-separated.", (), kind="list")
    faq_collections: tuple = _key("FAQ collection ids, comma-separated.", (), kind="list")
    knowledge_base_id: str = _key("Knowledge base id.")
    language: str = _key("Conversation language, e.g. English.")
    tags: tuple = _key("Tags for the session, comma-separated.", (), kind="list")
    external_client_id: str = _key("Your id for this device/user (1-32 of A-Z a-z 0-9 _ -).",
                                   kind="client_id")
    external_client_profile: dict = _key("JSON object describing the user/device.", None,
                                         kind="json")
    disable_idle_timeout: bool = _key("Ask the server not to end idle sessions.", False)
    send_audio_key: str = _key("Key of the audio payload sent: data (documented form) or audio.",
                               "data", choices=("data", "audio"))
    agent_name: str = _key("Name given to an Omniagent by `edgevoice napster create-agent`.")


@dataclass(frozen=True)
class NavTalkSettings:
    url: str = _key("WebSocket endpoint.", "wss://transfer.navtalk.ai/wss/v2/realtime-chat",
                    kind="ws_url")
    license: Secret | None = _key("License (API key); it travels in the URL's query, which "
                                  "edgevoice never logs.", None, kind="secret")
    name: str = _key("Digital human's name, e.g. navtalk.Leo.")
    avatar_id: str = _key("Avatar id (wins over name when both are set).")


@dataclass(frozen=True)
class AudioSettings:
    backend: str = _key("alsa: real devices through PyAudio; file: WAV files, paced in real time; "
                        "room: a simulated room (input_file through the room, the speaker's "
                        "echo through room_ir), for tests and tuning.", "alsa",
                        choices=("alsa", "file", "room"))
    input_device: str = _key("alsa: capture device name or a unique part of it "
                             "(see `edgevoice devices`).", "default")
    output_device: str = _key("alsa: playback device name or a unique part of it.", "default")
    input_rate: int = _key("alsa: capture rate in Hz; 0 picks one the device accepts "
                           "(the wire rate if possible).", 0, minimum=0, maximum=192000)
    output_rate: int = _key("alsa: playback rate in Hz; 0 picks one the device accepts.",
                            0, minimum=0, maximum=192000)
    input_file: str = _key("file: WAV (mono PCM16) the microphone hears; silence after its end.",
                           kind="path")
    output_file: str = _key("file: WAV written with everything the speaker plays, silence "
                            "included.", kind="path")
    playback_buffer_s: float = _key("Seconds of agent audio the playback buffer holds.",
                                    60.0, minimum=1.0, maximum=600.0)
    mic_queue_ms: int = _key("Mic audio held while the network stalls; older frames are dropped.",
                             1000, minimum=100, maximum=60000)
    echo_cancel: str = _key("Echo canceller between the mic and everything that hears it "
                            "(barge-in, the agent): speex (libspeexdsp), webrtc (WebRTC AEC3 "
                            "through the livekit package) or off.", "speex",
                            choices=("speex", "webrtc", "off"))
    echo_cancel_tail_ms: int = _key("Longest echo the canceller models (delay + reverberation; "
                                    "the bench: 200 ms leaves rooms with RT60 0.65 s pausing "
                                    "the agent).", 500, minimum=20, maximum=1000)
    room_ir: str = _key("room: speaker-to-mic impulse response (WAV at the input's rate).",
                        kind="path")
    room_user_ir: str = _key("room: impulse response from the user to the mic (empty: direct).",
                             kind="path")
    room_echo_gain_db: float = _key("room: gain applied to the echo after room_ir.", 0.0,
                                    minimum=-80.0, maximum=40.0)
    room_distortion: float = _key("room: speaker soft-clipping drive (0: a clean speaker).",
                                  0.0, minimum=0.0, maximum=20.0)
    room_noise_dbfs: float = _key("room: white noise floor at the mic.", -70.0,
                                  minimum=-120.0, maximum=0.0)
    room_drift_ppm: float = _key("room: how much faster the mic's clock runs than the "
                                 "speaker's.", 0.0, minimum=-1000.0, maximum=1000.0)
    room_latency_ms: int = _key("room: speaker device buffer (written, heard this much later).",
                                40, minimum=0, maximum=500)


@dataclass(frozen=True)
class BargeInSettingsSection:
    onset_frames: int = _key("Consecutive 20 ms speech frames that pause the agent.", 3,
                             minimum=1, maximum=10)
    gate: bool = _key("Compare the mic with what the speaker plays, so the agent's own voice "
                      "coming back is not taken for the user (off: voice detection alone).",
                      True)
    gate_margin_db: float = _key("How much louder than the expected echo the mic must be.",
                                 5.0, minimum=0.0, maximum=40.0)
    warmup_ms: int = _key("After the agent starts speaking, the gate is stricter this long.",
                          400, minimum=0, maximum=5000)
    warmup_extra_db: float = _key("How much stricter during the warm-up.", 6.0, minimum=0.0,
                                  maximum=30.0)
    echo_delay_ms: int = _key("Speaker-to-mic delay; 0 measures it while the agent talks.", 0,
                              minimum=0, maximum=500)
    echo_tail_ms: int = _key("Reverberation after the delay still counted as echo (fading).",
                             250, minimum=0, maximum=1000)
    confirm_ms: int = _key("Speech this long stops the agent for good on dialects without an "
                           "interruption event (voiceapi).", 600, minimum=100, maximum=5000)
    resume_timeout_ms: int = _key("No confirmation this long and the user silent again: the "
                                  "agent resumes where it paused (a cough must not eat its "
                                  "sentence).", 1500, minimum=200, maximum=10000)
    vad_mode: int = _key("webrtcvad aggressiveness, 0 (lenient) to 3 (strict).", 3, minimum=0,
                         maximum=3)


@dataclass(frozen=True)
class GpioSettings:
    enabled: bool = _key("Use a push button and a status LED on the GPIO header.", False)
    button_pin: int = _key("Button's BCM pin number (-1: no button).", 17, minimum=-1,
                           maximum=63)
    button_active_high: bool = _key("no: the button connects the pin to ground (the usual "
                                    "wiring, internal pull-up); yes: to 3.3 V.", False)
    long_press_s: float = _key("Hold this long to end the session and start a fresh one.",
                               3.0, minimum=0.5, maximum=30.0)
    ptt_long_press_s: float = _key("push-to-talk: the same gesture needs a longer hold, so "
                                   "that a long question does not restart the session.",
                                   10.0, minimum=1.0, maximum=120.0)
    led: str = _key("LED kind: pwm (one LED that can dim), onoff, rgb (three pins), none.",
                    "pwm", choices=("pwm", "onoff", "rgb", "none"))
    led_pin: int = _key("LED's BCM pin number (pwm/onoff; -1: none).", 18, minimum=-1,
                        maximum=63)
    red_pin: int = _key("rgb: red BCM pin.", -1, minimum=-1, maximum=63)
    green_pin: int = _key("rgb: green BCM pin.", -1, minimum=-1, maximum=63)
    blue_pin: int = _key("rgb: blue BCM pin.", -1, minimum=-1, maximum=63)
    led_active_high: bool = _key("yes: the pin drives the LED's anode (usual); no: common "
                                 "anode / sinking.", True)


@dataclass(frozen=True)
class SessionSettings:
    connect_timeout: float = _key("Seconds allowed for REST bootstrap and WebSocket connect.",
                                  10.0, minimum=1.0, maximum=120.0)
    reconnect_max_delay: float = _key("Cap of the exponential reconnect backoff, seconds.",
                                      30.0, minimum=1.0, maximum=3600.0)
    auth_retry_delay: float = _key("Seconds to wait after the server rejects the key.",
                                   300.0, minimum=1.0, maximum=86400.0)
    ping_interval: float = _key("Seconds without anything from the server before a WebSocket "
                                "ping is sent (0: off).", 3.0, minimum=0.0, maximum=600.0)
    pong_timeout: float = _key("A ping left this long without anything coming back means the "
                               "link is dead: reconnect (ping_interval + pong_timeout bounds "
                               "how long a silent link goes unnoticed).", 5.0, minimum=1.0,
                               maximum=600.0)
    idle_timeout: float = _key("Reconnect when nothing at all arrives for this many seconds.",
                               45.0, minimum=5.0, maximum=3600.0)
    max_message_bytes: int = _key("Largest server message accepted; a larger one is refused "
                                  "before it is read and the connection closed (1009).",
                                  4_000_000, minimum=65536, maximum=64_000_000)


@dataclass(frozen=True)
class LogSettings:
    level: str = _key("Log level.", "info", choices=("debug", "info", "warning", "error"))


SECTIONS: dict[str, type] = {
    "agent": AgentSettings,
    "xuna": XunaSettings,
    "voiceapi": VoiceApiSettings,
    "napster": NapsterSettings,
    "navtalk": NavTalkSettings,
    "audio": AudioSettings,
    "barge_in": BargeInSettingsSection,
    "gpio": GpioSettings,
    "session": SessionSettings,
    "log": LogSettings,
}


@dataclass(frozen=True)
class Config:
    agent: AgentSettings = AgentSettings()
    xuna: XunaSettings = XunaSettings()
    voiceapi: VoiceApiSettings = VoiceApiSettings()
    napster: NapsterSettings = NapsterSettings()
    navtalk: NavTalkSettings = NavTalkSettings()
    audio: AudioSettings = AudioSettings()
    barge_in: BargeInSettingsSection = BargeInSettingsSection()
    gpio: GpioSettings = GpioSettings()
    session: SessionSettings = SessionSettings()
    log: LogSettings = LogSettings()
    tools: tuple = ()  # ((function name, executable path), ...) from [tools]
    path: str = ""

    def provider_settings(self) -> Any:
        """The settings section of the configured provider."""
        return getattr(self, self.agent.provider)


@dataclass(frozen=True)
class Problem:
    section: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"[{self.section}] {self.key}" if self.key else f"[{self.section}]"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file is invalid; ``problems`` lists everything wrong with it."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the config file:\n{lines}")


_TRUE = frozenset({"yes", "on", "true", "1"})
_FALSE = frozenset({"no", "off", "false", "0"})
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _convert(section: str, name: str, fld: dataclasses.Field, raw: str,
             problems: list[Problem]) -> Any:
    """Turn the raw string into the field's type, or record a problem and return None."""
    meta = fld.metadata
    kind = meta["kind"]
    if "\x00" in raw:
        problems.append(Problem(section, name, "contains a NUL character; retype the value"))
        return None
    if len(raw) > MAX_VALUE_CHARS:
        problems.append(Problem(section, name, f"is {len(raw)} characters long; at most "
                                               f"{MAX_VALUE_CHARS} are accepted"))
        return None
    if meta["choices"]:
        value = raw.strip().lower()
        if value not in meta["choices"]:
            allowed = ", ".join(meta["choices"])
            problems.append(Problem(section, name, f"'{raw}' is not one of: {allowed}"
                                    + _did_you_mean(value, list(meta["choices"]))))
            return None
        return value
    if fld.type == "bool":
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        problems.append(Problem(section, name, f"'{raw}' is not yes/no (also on/off, "
                                               "true/false, 1/0)"))
        return None
    if kind == "list":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind == "json":
        if not raw.strip():
            return None
        try:
            value = json.loads(raw, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            problems.append(Problem(section, name, f"not valid JSON ({exc.msg} at column "
                                                   f"{exc.colno}); expected an object like "
                                                   '{"key": "value"}'))
            return None
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            problems.append(Problem(section, name, f"not usable JSON ({reason}); expected an "
                                                   'object like {"key": "value"}'))
            return None
        if not isinstance(value, dict):
            problems.append(Problem(section, name, "expected a JSON object like "
                                                   '{"key": "value"}'))
            return None
        return value
    if kind == "client_id" and raw and not _CLIENT_ID.fullmatch(raw):
        problems.append(Problem(section, name, f"'{raw}' must be 1-32 characters of A-Z a-z 0-9 "
                                               "_ -"))
        return None
    if fld.type in ("int", "float"):
        try:
            number = int(raw) if fld.type == "int" else float(raw)
        except ValueError:
            what = "a whole number" if fld.type == "int" else "a number"
            problems.append(Problem(section, name, f"'{raw[:40]}' is not {what}"))
            return None
        if not math.isfinite(number):
            problems.append(Problem(section, name, f"'{raw}' is not a finite number; expected "
                                                   f"{meta['min']:g} to {meta['max']:g}"))
            return None
        low, high = meta["min"], meta["max"]
        if (low is not None and number < low) or (high is not None and number > high):
            problems.append(Problem(section, name, f"{raw} is out of range; expected "
                                                   f"{low:g} to {high:g}"))
            return None
        return number
    if kind == "path" and raw:
        try:
            os.stat(raw)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                problems.append(Problem(section, name, f"unusable path: {exc.strerror}"))
                return None
    if kind in ("ws_url", "http_url"):
        schemes = ("ws", "wss") if kind == "ws_url" else ("http", "https")
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            problems.append(Problem(section, name, f"'{raw}' is not a {'/'.join(schemes)} URL; "
                                                   f"expected e.g. {schemes[1]}://host/path"))
            return None
    return raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def read_small_file(path: Path, limit: int) -> str:
    """The text of a regular file of at most ``limit`` bytes, read without blocking: a FIFO
    or a device (``/dev/zero``) is refused rather than waited on or read without end.
    Raises OSError (``strerror`` says why) or UnicodeDecodeError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or folder)")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    finally:
        os.close(fd)
    return data.decode("utf-8")


def _read_secret(section: str, name: str, items: dict[str, str], base: Path,
                 problems: list[Problem]) -> Secret | None:
    inline = items.pop(name, None)
    file_key = f"{name}_file"
    file_path = items.pop(file_key, None)
    if inline and file_path:
        problems.append(Problem(section, name, f"set either {name} or {file_key}, not both"))
        return None
    if inline:
        if "\x00" in inline or len(inline) > MAX_SECRET_BYTES:
            problems.append(Problem(section, name, "contains a NUL character or is too long"))
            return None
        return Secret(inline, "config")
    if file_path:
        if "\x00" in file_path:
            problems.append(Problem(section, file_key, "contains a NUL character"))
            return None
        path = Path(file_path)
        if not path.is_absolute():
            path = base / path
        try:
            value = read_small_file(path, MAX_SECRET_BYTES).strip()
        except OSError as exc:
            problems.append(Problem(section, file_key, f"cannot read {path}: {exc.strerror}; "
                                                       "check the path and its permissions"))
            return None
        except UnicodeDecodeError:
            problems.append(Problem(section, file_key, f"{path} is not UTF-8 text"))
            return None
        if not value:
            problems.append(Problem(section, file_key, f"{path} is empty"))
            return None
        return Secret(value, f"file {path}")
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / f"{section}_{name}"
        if os.path.lexists(cred) and not cred.is_dir():  # a folder is no credential
            try:
                value = read_small_file(cred, MAX_SECRET_BYTES).strip()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                problems.append(Problem(section, name, f"cannot read credential {cred}: "
                                                       f"{why}"))
                return None
            if value:
                return Secret(value, f"credential {cred.name}")
    return None


def _parse_section(section: str, cls: type, items: dict[str, str], base: Path,
                   problems: list[Problem]) -> Any:
    fields = _fields(cls)
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        if fld.metadata["kind"] == "secret":
            values[name] = _read_secret(section, name, items, base, problems)
    for name, raw in items.items():
        if name not in fields:
            known = list(fields) + [f"{n}_file" for n, f in fields.items()
                                    if f.metadata["kind"] == "secret"]
            problems.append(Problem(section, name, "unknown key" + _did_you_mean(name, known)
                                    + f" (known keys: {', '.join(sorted(fields))})"))
            continue
        value = _convert(section, name, fields[name], raw.strip(), problems)
        if value is not None:
            values[name] = value
    return cls(**values)


def _check_combination(cfg: Config, problems: list[Problem]) -> None:
    """Rules that involve more than one key."""
    provider = cfg.agent.provider
    if provider == "xuna" and not cfg.xuna.agent_id:
        problems.append(Problem("xuna", "agent_id", "missing; the xuna provider needs the "
                                "agent's id (agent_id = ...)"))
    if provider == "voiceapi":
        if not cfg.voiceapi.api_url:
            problems.append(Problem("voiceapi", "api_url", "missing; set the Voice API base URL "
                                    "(api_url = https://...)"))
        if not cfg.voiceapi.api_key:
            problems.append(Problem("voiceapi", "api_key", "missing; set api_key or api_key_file"))
    if provider == "napster":
        n = cfg.napster
        if not n.api_key:
            problems.append(Problem("napster", "api_key", "missing; set api_key or api_key_file"))
        if not n.agent_id and not n.companion_id:
            problems.append(Problem("napster", "companion_id", "missing; set companion_id "
                                    "(per-session) or agent_id (Omniagent)"))
    if provider == "navtalk":
        if not cfg.navtalk.license:
            problems.append(Problem("navtalk", "license", "missing; set license or license_file"))
        if not cfg.navtalk.name and not cfg.navtalk.avatar_id:
            problems.append(Problem("navtalk", "name", "missing; set name (e.g. navtalk.Leo) or "
                                    "avatar_id"))
    g = cfg.gpio
    if g.enabled and g.led == "rgb" and min(g.red_pin, g.green_pin, g.blue_pin) < 0:
        problems.append(Problem("gpio", "red_pin", "led = rgb needs red_pin, green_pin and "
                                "blue_pin"))
    if g.enabled:
        pins = [p for p in (g.button_pin, g.led_pin if g.led in ("pwm", "onoff") else -1,
                            *((g.red_pin, g.green_pin, g.blue_pin) if g.led == "rgb" else ()))
                if p >= 0]
        if len(pins) != len(set(pins)):
            problems.append(Problem("gpio", "button_pin", f"pins are used twice ({pins}); "
                                    "give the button and the LED their own pins"))
    for name, program in cfg.tools:
        path = Path(program)
        if "\x00" in program or len(program) > 4096:
            problems.append(Problem("tools", name, "contains a NUL character or is too long"))
        elif not path.is_absolute():
            problems.append(Problem("tools", name, f"'{program}' must be an absolute path to "
                                    "an executable"))
        elif not _is_file(path) or not os.access(path, os.X_OK):
            problems.append(Problem("tools", name, f"{program} is not an executable file; "
                                    f"check it exists and chmod +x it"))
    if cfg.audio.backend == "room":
        for key in ("room_ir", "room_user_ir"):
            value = getattr(cfg.audio, key)
            if value and not _is_file(Path(value)):
                problems.append(Problem("audio", key, f"{value} does not exist; give a WAV "
                                        "impulse response"))
        if not cfg.audio.room_ir:
            problems.append(Problem("audio", "room_ir", "missing; the room backend needs the "
                                    "speaker-to-mic impulse response (a WAV)"))
    if cfg.audio.backend in ("file", "room"):
        if cfg.audio.input_file and not _is_file(Path(cfg.audio.input_file)):
            problems.append(Problem("audio", "input_file", f"{cfg.audio.input_file} does not "
                                    "exist; give a WAV file or leave it empty for silence"))
        if not cfg.audio.output_file:
            problems.append(Problem("audio", "output_file", "missing; the file backend writes "
                                    "what the speaker plays to this WAV"))
        elif not _is_dir(Path(cfg.audio.output_file).parent):
            problems.append(Problem("audio", "output_file", "its folder "
                                    f"{Path(cfg.audio.output_file).parent} does not exist"))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. a name too long
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def parse(text: str, path: str = "<config>") -> Config:
    """Parse config text; raise :class:`ConfigError` with every problem found."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"),
                                       default_section="__defaults_unused__", strict=True)
    parser.optionxform = str  # keys are case-sensitive, as documented
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(path, [Problem(exc.section, exc.option,
                                         f"set twice (line {exc.lineno}); keep one")]) from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(path, [Problem(exc.section, "", f"section appears twice (line "
                                         f"{exc.lineno}); merge them")]) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(path, [Problem("?", "", f"line {exc.lineno}: a key before any "
                                         "[section] header; start with e.g. [agent]")]) from None
    except configparser.ParsingError as exc:
        # the line itself is not shown: it may be a pasted secret
        bad = ", ".join(f"line {lineno}" for lineno, _ in exc.errors)
        raise ConfigError(path, [Problem("?", "", f"cannot parse {bad}; expected "
                                         "'key = value' (or a [section] or a # comment)")]
                          ) from None
    problems: list[Problem] = []
    base = Path(path).parent if path and not path.startswith("<") else Path.cwd()
    sections: dict[str, Any] = {}
    tools: list[tuple[str, str]] = []
    for name in parser.sections():
        if name == "tools":
            tools = [(key, value.strip()) for key, value in parser.items(name)]
            continue
        if name not in SECTIONS:
            problems.append(Problem(name, "", "unknown section" + _did_you_mean(name, list(SECTIONS))
                                    + f" (known sections: {', '.join(SECTIONS)}, tools)"))
            continue
        sections[name] = _parse_section(name, SECTIONS[name], dict(parser.items(name)), base,
                                        problems)
    for name, cls in SECTIONS.items():
        if name not in sections:
            sections[name] = _parse_section(name, cls, {}, base, problems)
    cfg = Config(**sections, tools=tuple(tools), path=path)
    _check_combination(cfg, problems)
    if problems:
        raise ConfigError(path, problems)
    return cfg


def load(path: str) -> Config:
    """Read and validate the config file at ``path``."""
    try:
        text = read_small_file(Path(path), MAX_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigError(path, [Problem("file", "", f"{path} does not exist; copy the example "
                                         "config/edgevoice.conf there")]) from None
    except OSError as exc:
        raise ConfigError(path, [Problem("file", "", f"cannot read {path}: "
                                                     f"{exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [Problem("file", "", f"{path} is not UTF-8 text")]) from None
    return parse(text, path)


def render(cfg: Config) -> str:
    """The effective configuration as INI text, every secret masked."""
    out = [f"# effective configuration of {cfg.path or '<defaults>'}"]
    for name in SECTIONS:
        out.append(f"\n[{name}]")
        settings = getattr(cfg, name)
        for fld in dataclasses.fields(settings):
            value = getattr(settings, fld.name)
            out.append(f"{fld.name} = {_show(value)}")
    out.append("\n[tools]")
    out += [f"{name} = {program}" for name, program in cfg.tools]
    return "\n".join(out) + "\n"


def _show(value: Any) -> str:
    if isinstance(value, Secret):
        return f"{MASK}    # from {value.source}"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def ini_text(sections: dict[str, dict[str, str]]) -> str:
    """Write ``{section: {key: value}}`` as INI text (for the demo, tests and the bench)."""
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in keys.items()]
        lines.append("")
    return "\n".join(lines)


def documented_keys() -> dict[str, list[str]]:
    """Every section and key the schema knows (for docs and tests)."""
    return {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}


def state_dir(cfg: Config) -> Path:
    """Where edgevoice keeps state: [agent] state_dir, else systemd's $STATE_DIRECTORY, else
    /var/lib/edgevoice."""
    if cfg.agent.state_dir:
        return Path(cfg.agent.state_dir)
    env = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(env or "/var/lib/edgevoice")
