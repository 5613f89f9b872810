#!/usr/bin/env python3
"""A stand-in for ``systemctl`` in the Ansible tests: there is no PID-1 systemd here.

It keeps the unit states in ``/run/fake-systemctl/`` (a tmpfs in the tests' private mount
namespace), records every call in ``$FAKE_SYSTEMCTL_LOG``, and answers the few commands
scripts/install and Ansible's systemd_service module use the way systemctl does
(``show`` properties, ``is-enabled``/``is-active`` exit codes, ``enable`` making the
``WantedBy=`` symlink). If ``/run/fake-systemctl/dies`` exists, a started unit is
``failed`` by the time anyone looks: a daemon that crashes right after its start (or
right after a reload: the new config kills it).
"""

import os
import sys
from pathlib import Path

STATE = Path("/run/fake-systemctl")
UNITS = Path("/etc/systemd/system")


def unit_name(arg: str) -> str:
    return arg if "." in arg else arg + ".service"


def wants(unit: str) -> Path:
    return UNITS / "multi-user.target.wants" / unit


def active_state(unit: str) -> str:
    path = STATE / unit
    return path.read_text() if path.exists() else "inactive"


def main(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(os.environ["FAKE_SYSTEMCTL_LOG"], "a") as log:
        log.write(" ".join(argv) + "\n")
    args = [a for a in argv if not a.startswith("-")]
    if not args:
        return 0
    command, units = args[0], [unit_name(a) for a in args[1:]]
    if command == "daemon-reload":
        return 0
    unit = units[0]
    known = (UNITS / unit).exists()
    if command == "show":
        print(f"Id={unit}")
        print(f"LoadState={'loaded' if known else 'not-found'}")
        print(f"ActiveState={active_state(unit)}")
        return 0
    if not known:
        print(f"Unit {unit} not found.", file=sys.stderr)
        return 5
    if command == "enable":
        wants(unit).parent.mkdir(parents=True, exist_ok=True)
        if not wants(unit).is_symlink():
            wants(unit).symlink_to(UNITS / unit)
        return 0
    if command == "is-enabled":
        enabled = wants(unit).is_symlink()
        print("enabled" if enabled else "disabled")
        return 0 if enabled else 1
    if command == "is-active":
        print(active_state(unit))
        return 0 if active_state(unit) == "active" else 3
    if command in ("start", "restart"):
        (STATE / unit).write_text("failed" if (STATE / "dies").exists() else "active")
        return 0
    if command == "reload":
        if active_state(unit) != "active":
            print(f"{unit} is not active, cannot reload.", file=sys.stderr)
            return 1
        if (STATE / "dies").exists():
            (STATE / unit).write_text("failed")
        return 0
    if command == "stop":
        (STATE / unit).write_text("inactive")
        return 0
    print(f"fake systemctl: {command} is not emulated", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
