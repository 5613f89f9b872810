"""The sections every configuration has ([agent], [audio], [barge_in], [gpio], [session],
[metrics], [log]; [sounds] and [wake_word] live in :mod:`edgevoice.config.handsfree`);
each dialect declares its own section in its provider module
(``edgevoice/providers/<name>.py``), found through the registry by :func:`dialects`.

A section is a frozen dataclass of keys (:func:`~edgevoice.config.types.key`). A section
whose keys must agree with each other has ``check() -> list[Problem]``, run after every
key parsed; a dialect's section is checked only when it is the dialect in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgevoice.config.errors import Problem
from edgevoice.config.handsfree import SoundSettings, WakeWordSettings
from edgevoice.config.registry import DialectName, dialects, is_dir, is_file
from edgevoice.config.types import Boolean, Choice, Float, HostPort, Integer, key
from edgevoice.config.types import Path as PathValue


@dataclass(frozen=True)
class AgentSettings:
    provider: str = key("Which agent dialect to speak.", "xuna", DialectName())
    history: bool = key("Keep the conversation's transcript in state_dir (off: keep nothing).",
                        True, Boolean())
    state_dir: str = key("Where the transcript is kept (default: $STATE_DIRECTORY, else "
                         "/var/lib/edgevoice).", "", PathValue())
    history_max_kb: int = key("Size cap of the transcript file; the oldest turns go first.",
                              256, Integer(4, 102400))
    history_replay_turns: int = key("Recent user turns sent to agents that take history "
                                    "(navtalk) at session start.", 10, Integer(0, 100))
    tool_timeout: float = key("Seconds a [tools] program may run before the agent gets an "
                              "error result.", 8.0, Float(0.5, 60.0))
    mode: str = key("always-on: a session all the time, the button mutes; push-to-talk: the "
                    "mic is heard only while the button is held; toggle: a press starts a "
                    "session, the next ends it; wake-word: a spoken wake word ([wake_word]) "
                    "starts a session, which ends after the answer and a follow-up window.",
                    "always-on", Choice("always-on", "push-to-talk", "toggle", "wake-word"))
    toggle_idle_s: float = key("toggle mode: end a session after this many seconds without "
                               "speech either way.", 120.0, Float(10.0, 86400.0))
    barge_in: bool = key("Stop the agent's voice on the device the instant the user talks "
                         "over it (see [barge_in]); off: only the server's interruptions.",
                         True, Boolean())


@dataclass(frozen=True)
class AudioSettings:
    backend: str = key("alsa: real devices through PyAudio; file: WAV files, paced in real time; "
                       "room: a simulated room (input_file through the room, the speaker's "
                       "echo through room_ir), for tests and tuning.", "alsa",
                       Choice("alsa", "file", "room"))
    input_device: str = key("alsa: capture device name or a unique part of it "
                            "(see `edgevoice devices`).", "default")
    output_device: str = key("alsa: playback device name or a unique part of it.", "default")
    input_rate: int = key("alsa: capture rate in Hz; 0 picks one the device accepts "
                          "(the wire rate if possible).", 0, Integer(0, 192000))
    output_rate: int = key("alsa: playback rate in Hz; 0 picks one the device accepts.",
                           0, Integer(0, 192000))
    input_file: str = key("file: WAV (mono PCM16) the microphone hears; silence after its end.",
                          "", PathValue())
    output_file: str = key("file: WAV written with everything the speaker plays, silence "
                           "included.", "", PathValue())
    playback_buffer_s: float = key("Seconds of agent audio the playback buffer holds.",
                                   60.0, Float(1.0, 600.0))
    mic_queue_ms: int = key("Mic audio held while the network stalls; older frames are dropped.",
                            1000, Integer(100, 60000))
    echo_cancel: str = key("Echo canceller between the mic and everything that hears it "
                           "(barge-in, the agent): speex (libspeexdsp), webrtc (WebRTC AEC3 "
                           "through the livekit package) or off.", "speex",
                           Choice("speex", "webrtc", "off"))
    echo_cancel_tail_ms: int = key("Longest echo the canceller models (delay + reverberation; "
                                   "the bench: 200 ms leaves rooms with RT60 0.65 s pausing "
                                   "the agent).", 500, Integer(20, 1000))
    volume: int = key("Output volume, 0 (silent) to 100 (full scale), applied in software to "
                      "the agent's voice and the sounds: 40 dB from 1 to 100, evenly in dB "
                      "(50 is -20 dB). The button and SIGHUP change it at run time; the "
                      "level set last is kept in state_dir (see Volume).", 100,
                      Integer(0, 100))
    mixer: str = key("alsa: the card's playback control that carries the volume instead "
                     "(CONTROL or CONTROL@DEVICE, e.g. PCM or Speaker@hw:1; `amixer -D "
                     "hw:1 scontrols` lists them), through the optional pyalsaaudio package; "
                     "off: software only.", "off")
    room_ir: str = key("room: speaker-to-mic impulse response (WAV at the input's rate).",
                       "", PathValue())
    room_user_ir: str = key("room: impulse response from the user to the mic (empty: direct).",
                            "", PathValue())
    room_echo_gain_db: float = key("room: gain applied to the echo after room_ir.", 0.0,
                                   Float(-80.0, 40.0))
    room_distortion: float = key("room: speaker soft-clipping drive (0: a clean speaker).",
                                 0.0, Float(0.0, 20.0))
    room_noise_dbfs: float = key("room: white noise floor at the mic.", -70.0,
                                 Float(-120.0, 0.0))
    room_drift_ppm: float = key("room: how much faster the mic's clock runs than the "
                                "speaker's.", 0.0, Float(-1000.0, 1000.0))
    room_latency_ms: int = key("room: speaker device buffer (written, heard this much later).",
                               40, Integer(0, 500))
    file_speed: float = 1.0  # tests: the file backend's clock runs this much faster

    def check(self) -> list[Problem]:
        problems = []
        if self.backend == "room":
            for name in ("room_ir", "room_user_ir"):
                value = getattr(self, name)
                if value and not is_file(Path(value)):
                    problems.append(Problem("audio", name, f"{value} does not exist; give a "
                                            "WAV impulse response"))
            if not self.room_ir:
                problems.append(Problem("audio", "room_ir", "missing; the room backend needs "
                                        "the speaker-to-mic impulse response (a WAV)"))
        if self.backend in ("file", "room"):
            if self.input_file and not is_file(Path(self.input_file)):
                problems.append(Problem("audio", "input_file", f"{self.input_file} does not "
                                        "exist; give a WAV file or leave it empty for silence"))
            if not self.output_file:
                problems.append(Problem("audio", "output_file", "missing; the file backend "
                                        "writes what the speaker plays to this WAV"))
            elif not is_dir(Path(self.output_file).parent):
                problems.append(Problem("audio", "output_file", "its folder "
                                        f"{Path(self.output_file).parent} does not exist"))
        return problems


@dataclass(frozen=True)
class BargeInSettings:
    """The [barge_in] section and the barge-in detector's settings, one class for both
    (:class:`edgevoice.audio.bargein.BargeInDetector`). The fields after the keys are
    tunables the detector and the bench set; the config file does not."""

    onset_frames: int = key("Consecutive 20 ms speech frames that pause the agent.", 3,
                            Integer(1, 10))
    gate: bool = key("Compare the mic with what the speaker plays, so the agent's own voice "
                     "coming back is not taken for the user (off: voice detection alone).",
                     True, Boolean())
    gate_margin_db: float = key("How much louder than the expected echo the mic must be.",
                                5.0, Float(0.0, 40.0))
    warmup_ms: int = key("After the agent starts speaking, the gate is stricter this long.",
                         400, Integer(0, 5000))
    warmup_extra_db: float = key("How much stricter during the warm-up.", 6.0,
                                 Float(0.0, 30.0))
    echo_delay_ms: int = key("Speaker-to-mic delay; 0 measures it while the agent talks.", 0,
                             Integer(0, 500))
    echo_tail_ms: int = key("Reverberation after the delay still counted as echo (fading).",
                            250, Integer(0, 1000))
    confirm_ms: int = key("Speech this long stops the agent for good on dialects without an "
                          "interruption event (voiceapi).", 600, Integer(100, 5000))
    resume_timeout_ms: int = key("No confirmation this long and the user silent again: the "
                                 "agent resumes where it paused (a cough must not eat its "
                                 "sentence).", 1500, Integer(200, 10000))
    vad_mode: int = key("webrtcvad aggressiveness, 0 (lenient) to 3 (strict).", 3,
                        Integer(0, 3))
    initial_coupling_db: float = 0.0  # echo coupling assumed before it is learned
    silence_to_resume_ms: int = 300
    # with an echo canceller in front: pause at once on a frame far louder than the echo
    # could leave, and resume unless voice detection confirms it within provisional_ms
    fast_onset: bool = True
    fast_margin_db: float = 6.0    # above the gate's own threshold
    fast_frames: int = 1
    provisional_ms: int = 240
    confirm_frames: int = 2        # speech frames passing the gate that confirm it


@dataclass(frozen=True)
class GpioSettings:
    enabled: bool = key("Use a push button and a status LED on the GPIO header.", False,
                        Boolean())
    button_pin: int = key("Button's BCM pin number (-1: no button).", 17, Integer(-1, 63))
    button_active_high: bool = key("no: the button connects the pin to ground (the usual "
                                   "wiring, internal pull-up); yes: to 3.3 V.", False,
                                   Boolean())
    long_press_s: float = key("Hold this long to end the session and start a fresh one.",
                              3.0, Float(0.5, 30.0))
    ptt_long_press_s: float = key("push-to-talk: the same gesture needs a longer hold, so "
                                  "that a long question does not restart the session.",
                                  10.0, Float(1.0, 120.0))
    multi_press_s: float = key("Presses this close together make one gesture (two: volume "
                               "up, three: down, four: privacy mute); one-press actions "
                               "wait this long after the release (push-to-talk's do not).",
                               0.4, Float(0.15, 1.5))
    volume_step: int = key("How much one volume gesture changes the volume (0-100 scale).",
                           10, Integer(1, 50))
    mute_pin: int = key("BCM pin of a latching privacy-mute switch between the pin and ground "
                        "(closed: muted; while it is, nothing else can unmute; -1: none).",
                        -1, Integer(-1, 63))
    led: str = key("LED kind: pwm (one LED that can dim), onoff, rgb (three pins), none.",
                   "pwm", Choice("pwm", "onoff", "rgb", "none"))
    led_pin: int = key("LED's BCM pin number (pwm/onoff; -1: none).", 18, Integer(-1, 63))
    red_pin: int = key("rgb: red BCM pin.", -1, Integer(-1, 63))
    green_pin: int = key("rgb: green BCM pin.", -1, Integer(-1, 63))
    blue_pin: int = key("rgb: blue BCM pin.", -1, Integer(-1, 63))
    led_active_high: bool = key("yes: the pin drives the LED's anode (usual); no: common "
                                "anode / sinking.", True, Boolean())

    def check(self) -> list[Problem]:
        if not self.enabled:
            return []
        problems = []
        rgb = (self.red_pin, self.green_pin, self.blue_pin)
        if self.led == "rgb" and min(rgb) < 0:
            problems.append(Problem("gpio", "red_pin", "led = rgb needs red_pin, green_pin "
                                    "and blue_pin"))
        pins = [p for p in (self.button_pin, self.mute_pin,
                            self.led_pin if self.led in ("pwm", "onoff") else -1,
                            *(rgb if self.led == "rgb" else ()))
                if p >= 0]
        if len(pins) != len(set(pins)):
            problems.append(Problem("gpio", "button_pin", f"pins are used twice ({pins}); give "
                                    "the button, the mute switch and the LED their own pins"))
        return problems


@dataclass(frozen=True)
class SessionSettings:
    connect_timeout: float = key("Seconds allowed for REST bootstrap and WebSocket connect.",
                                 10.0, Float(1.0, 120.0))
    reconnect_max_delay: float = key("Cap of the exponential reconnect backoff, seconds.",
                                     30.0, Float(1.0, 3600.0))
    auth_retry_delay: float = key("Seconds to wait after the server rejects the key.",
                                  300.0, Float(1.0, 86400.0))
    ping_interval: float = key("Seconds without anything from the server before a WebSocket "
                               "ping is sent (0: off).", 3.0, Float(0.0, 600.0))
    pong_timeout: float = key("A ping left this long without anything coming back means the "
                              "link is dead: reconnect (ping_interval + pong_timeout bounds "
                              "how long a silent link goes unnoticed).", 5.0,
                              Float(1.0, 600.0))
    idle_timeout: float = key("Reconnect when nothing at all arrives for this many seconds.",
                              45.0, Float(5.0, 3600.0))
    max_message_bytes: int = key("Largest server message accepted; a larger one is refused "
                                 "before it is read and the connection closed (1009).",
                                 4_000_000, Integer(65536, 64_000_000))


@dataclass(frozen=True)
class MetricsSettings:
    """The Prometheus exporter (docs/metrics.md); off unless a key is set."""

    listen: str = key("HOST:PORT of the HTTP endpoint Prometheus scrapes (GET /metrics), e.g. "
                      "127.0.0.1:9464; empty: off. No authentication: keep it on loopback "
                      "or a network you trust.", "", HostPort())
    textfile: str = key("Absolute path of a .prom file for node_exporter's textfile "
                        "collector, rewritten atomically every 15 s; empty: off.", "",
                        PathValue())

    @property
    def enabled(self) -> bool:
        return bool(self.listen or self.textfile)

    def check(self) -> list[Problem]:
        if not self.textfile:
            return []
        path = Path(self.textfile)
        if not path.is_absolute():
            return [Problem("metrics", "textfile", f"'{self.textfile}' must be an absolute "
                            "path, e.g. /var/lib/node_exporter/textfile_collector/"
                            "edgevoice.prom")]
        if path.suffix != ".prom":
            return [Problem("metrics", "textfile", f"'{path.name}' must end in .prom "
                            "(node_exporter reads only *.prom files)")]
        if not is_dir(path.parent):
            return [Problem("metrics", "textfile", f"its folder {path.parent} does not exist; "
                            "create it (node_exporter's --collector.textfile.directory)")]
        return []


@dataclass(frozen=True)
class LogSettings:
    level: str = key("Log level.", "info", Choice("debug", "info", "warning", "error"))


#: The sections every configuration has, after [agent] and the dialects' sections.
CORE_SECTIONS: dict[str, type] = {
    "audio": AudioSettings,
    "sounds": SoundSettings,
    "barge_in": BargeInSettings,
    "gpio": GpioSettings,
    "session": SessionSettings,
    "wake_word": WakeWordSettings,
    "metrics": MetricsSettings,
    "log": LogSettings,
}


def sections() -> dict[str, type]:
    """Every section, in the order the file documents them: [agent], each dialect's, then
    the rest."""
    return {"agent": AgentSettings,
            **{name: dialect.settings for name, dialect in dialects().items()},
            **CORE_SECTIONS}
