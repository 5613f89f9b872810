"""The ``edgevoice`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgevoice import __version__
from edgevoice.config import DEFAULT_PATH, EX_CONFIG, Config, ConfigError, load, render
from edgevoice.dialect_names import DIALECT_NAMES
from edgevoice.localagent.arguments import add_arguments as add_localagent_arguments
from edgevoice.logsetup import setup_logging

log = logging.getLogger(__name__)


def _cmd_run(args) -> int:
    try:
        config = load(args.config)
    except ConfigError as exc:
        setup_logging("info")
        log.error("%s", exc)
        return EX_CONFIG
    setup_logging(args.log_level or config.log.level)
    from edgevoice.service import Service

    log.info("edgevoice %s starting: %s agent, %s audio, %s mode, config %s", __version__,
             config.agent.provider, config.audio.backend, config.agent.mode, args.config)
    return Service(args.config, config).run()


def _load_or_explain(path: str) -> Config | None:
    """The config at ``path``, or None after printing every problem to stderr."""
    try:
        return load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _cmd_check_config(args) -> int:
    if _load_or_explain(args.config) is None:
        return EX_CONFIG
    print(f"{args.config}: OK")
    return 0


def _cmd_config(args) -> int:
    config = _load_or_explain(args.config)
    if config is None:
        return EX_CONFIG
    sys.stdout.write(render(config))
    return 0


def _cmd_devices(args) -> int:
    from edgevoice.audio.alsa_backend import list_devices, supported_rates

    devices = list_devices()
    if not devices:
        print("no sound devices found (is the user in the 'audio' group? is a card present?)")
        return 1
    print(f"{'name':40} {'in':>3} {'out':>3}  rates (Hz, mono PCM16)")
    for d in devices:
        rates = sorted(set(supported_rates(d, "input") if d.max_input_channels else []) |
                       set(supported_rates(d, "output") if d.max_output_channels else []))
        print(f"{d.name[:40]:40} {d.max_input_channels:>3} {d.max_output_channels:>3}  "
              f"{', '.join(map(str, rates)) or '-'}")
    return 0


def _cmd_napster(args) -> int:
    from edgevoice import napster_admin

    config = _load_or_explain(args.config)
    if config is None:
        return EX_CONFIG
    action = napster_admin.create_agent if args.action == "create-agent" else \
        napster_admin.update_agent
    return action(config, args.name, args.dry_run)


def _cmd_reload(args) -> int:
    from edgevoice.device.reload import request_reload, runtime_dir

    directory = args.runtime_dir or runtime_dir()
    return request_reload(args.pid, directory and Path(directory), args.timeout)


def _cmd_mute(args) -> int:
    from edgevoice.device.mute import DEFAULT_RUNTIME_DIR, request_mute
    from edgevoice.device.reload import runtime_dir

    directory = Path(args.runtime_dir) if args.runtime_dir else \
        (runtime_dir() or DEFAULT_RUNTIME_DIR)
    return request_mute(args.action, args.pid, directory, args.timeout)


def _cmd_demo(args) -> int:
    from edgevoice.demo import run_demo

    return run_demo(args)


def _cmd_localagent(args) -> int:
    from edgevoice.localagent import cli as agent_cli

    setup_logging(args.log_level or "info")
    return agent_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgevoice",
        description="Voice terminal daemon: streams the microphone to a cloud conversational "
                    "agent and plays its answers.")
    parser.add_argument("--version", action="version", version=f"edgevoice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func, help_text: str, config: bool = False):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if config:
            p.add_argument("--config", default=DEFAULT_PATH,
                           help=f"config file (default {DEFAULT_PATH})")
        return p

    p = add("run", _cmd_run, "Run the daemon in the foreground (systemd runs this).", True)
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="override [log] level")
    add("check-config", _cmd_check_config,
        "Validate the config file; print every problem; exit 0 when valid, 78 when not.", True)
    add("config", _cmd_config, "Print the effective configuration, secrets masked.", True)
    add("devices", _cmd_devices, "List ALSA sound devices: name, channels, rates.")
    p = add("demo", _cmd_demo, "Talk to the built-in local agent: a spoken question goes in, "
                               "the answer comes out (no cloud account needed).")
    p.add_argument("--dialect", choices=DIALECT_NAMES, default="xuna",
                   help="which dialect the local agent speaks (default xuna)")
    p.add_argument("--audio", choices=("file", "alsa"), default="file",
                   help="file: a shipped question WAV in, answer WAV out (default); "
                        "alsa: the real microphone and speaker")
    p.add_argument("--input", help="WAV to use as the question (file audio)")
    p.add_argument("--output", default="edgevoice-demo-answer.wav",
                   help="where the speaker's WAV goes (file audio)")
    p.add_argument("--input-device", default="default", help="alsa: capture device name")
    p.add_argument("--output-device", default="default", help="alsa: playback device name")
    p.add_argument("--timeout", type=float, default=30.0, help="give up after this many s")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="warning")
    p = add("napster", _cmd_napster,
            "Napster Omniagent management: create-agent builds an agent from the [napster] "
            "per-session settings and prints the agent_id line to set; update-agent PATCHes "
            "the agent with the settings in the config.", True)
    p.add_argument("action", choices=("create-agent", "update-agent"))
    p.add_argument("--name", help="the agent's name (default [napster] agent_name)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the request body instead of sending it")
    p = add("reload", _cmd_reload,
            "Ask the running daemon to re-read its config and wait for the answer: exit 0 "
            "when applied, 1 (with the problems) when rejected. The unit's ExecReload= runs "
            "this; type `sudo systemctl reload edgevoice`.")
    p.add_argument("--pid", type=int, required=True, help="the daemon's process id ($MAINPID)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the answer (default %(default)s)")
    p.add_argument("--runtime-dir", help="where the daemon writes its answer (default "
                                         "$RUNTIME_DIRECTORY, /run/edgevoice under systemd)")
    p = add("mute", _cmd_mute,
            "Privacy mute of the running daemon: on closes the microphone (no session, "
            "nothing sent or listened for, kept across restarts), off opens it again; "
            "toggle; status prints it. Exit 0 when the microphone is as asked, 1 when not "
            "(a closed mute switch refuses to unmute).")
    p.add_argument("action", choices=("on", "off", "toggle", "status"))
    p.add_argument("--pid", type=int, help="the daemon's process id (default: the one that "
                                           "wrote mute-status.json in the runtime directory)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the answer (default %(default)s)")
    p.add_argument("--runtime-dir", help="where the daemon publishes its state (default "
                                         "$RUNTIME_DIRECTORY, else /run/edgevoice)")
    p = add("localagent", _cmd_localagent,
            "Run the local stand-in agent alone (for trying the daemon without a cloud).")
    add_localagent_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
