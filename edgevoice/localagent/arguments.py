"""The local agent's command-line options, declared once.

Both ``python -m edgevoice.localagent`` and ``edgevoice localagent`` use
:func:`add_arguments`. This module imports nothing but argparse and the dialect names, so the
daemon's CLI can declare the sub-command without loading the agent's server libraries.
"""

from __future__ import annotations

import argparse

# the dialects the local agent speaks (``registry.DIALECTS`` maps each to its class); the
# names are the one thing the local agent shares with the daemon's registry
from edgevoice.dialect_names import DIALECT_NAMES

DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the local agent's options to ``parser``."""
    parser.add_argument("--dialect", required=True, choices=DIALECT_NAMES,
                        help="agent protocol to speak")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="WebSocket port (default %(default)s; 0 picks a free port)")
    parser.add_argument("--http-port", type=int, default=None,
                        help="REST port (default: --port + 1, or a free port with --port 0)")
    parser.add_argument("--output-rate", type=int, default=16000,
                        help="xuna, elevenlabs: reply audio rate in Hz (default %(default)s)")
    parser.add_argument("--private", action="store_true",
                        help="xuna, elevenlabs: require a signed URL (private agent)")
    parser.add_argument("--omniagent", action="store_true",
                        help="napster: print agent_id so the daemon uses Omniagent connections")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        help="log level (default info)")
