"""Command line for the local agent: ``python -m edgevoice.localagent --dialect xuna``.

The daemon's own CLI mounts this as a sub-command through :func:`add_arguments` and
:func:`run`. It prints the INI lines a daemon needs, logs agent events at INFO and runs
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from .arguments import add_arguments
from .events import Event, redacted
from .options import AgentOptions
from .server import LocalAgent

log = logging.getLogger(__name__)


def config_text(values: dict[str, dict[str, str]]) -> str:
    """INI text for config_values()."""
    lines: list[str] = []
    for section, keys in values.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in keys.items())
        lines.append("")
    return "\n".join(lines)


def _log_event(event: Event) -> None:
    """Log one agent event at INFO, secrets masked, client messages by their type only."""
    data: dict[str, Any] = redacted(event.data)
    if "message" in data:  # client messages can be large; their type is enough here
        message = data["message"]
        data["message"] = message.get("type") if isinstance(message, dict) else "..."
    log.info("%s %s", event.kind, " ".join(f"{k}={v}" for k, v in data.items()))


def run(args: argparse.Namespace) -> int:
    """Start the agent, print its config and serve until SIGINT/SIGTERM. Returns 0."""
    http_port = args.http_port
    if http_port is None:
        http_port = args.port + 1 if args.port else 0
    options = AgentOptions(output_rate=args.output_rate, private=args.private,
                           omniagent=args.omniagent)
    agent = LocalAgent(args.dialect, options, host=args.host, ws_port=args.port,
                       http_port=http_port)
    agent.add_listener(_log_event)
    agent.start()

    done = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        done.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, on_signal)
        except ValueError:  # not the main thread: rely on KeyboardInterrupt / caller
            pass
    try:
        print("# Local agent running. Daemon config:", flush=True)
        print(config_text(agent.config_values()), flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m edgevoice.localagent``: parse ``argv``, log at ``--log-level``, :func:`run`."""
    parser = argparse.ArgumentParser(prog="python -m edgevoice.localagent",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=(args.log_level or "info").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
