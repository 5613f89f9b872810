"""``sudo scripts/install`` on a real root file system, without touching this machine.

The script runs for real as root (real ``useradd``, ``groupadd``, ``chown``, ``dpkg-query``),
inside a private mount namespace where ``/etc``, ``/opt`` and ``/var/lib`` are copy-on-write
overlays of this machine's and ``/run`` is an empty tmpfs. Two situations:

- ``offline``: no systemd as PID 1 and no udevd (``/run/systemd/system`` and
  ``/run/udev/control`` absent), as in an image build (pi-gen), a chroot or a container;
- ``live``: ``/run/systemd/system`` and a udev control socket present, with ``systemctl``
  and ``udevadm`` recording their calls (the only stand-ins: there is no PID-1 systemd
  here to talk to).

Needs root, ``unshare`` and overlayfs; skipped, saying why, without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_private_mounts

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install"
UNINSTALL = ROOT / "scripts" / "uninstall"

HARNESS = r'''
set -eu
work="$1"; mode="$2"; shift 2
mount -t tmpfs tmpfs /run
for dir in /etc /opt /var/lib; do
  name=$(echo "$dir" | tr / _)
  if [ -d "$dir" ]; then
    mkdir -p "$work/up$name" "$work/wk$name"
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$work/up$name,workdir=$work/wk$name" "$dir"
  else
    mount -t tmpfs tmpfs "$dir"   # (not made on the host: mount needs it to exist)
  fi
done
export PATH="$work/bin:$PATH"
mkdir -p "$work/bin"
if [ "$mode" = live ]; then
  mkdir -p /run/systemd/system /run/udev
  python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(sys.argv[1])' /run/udev/control
  for tool in systemctl udevadm; do
    printf '#!/bin/sh\necho "%s $*" >> "%s/calls"\n' "$tool" "$work" > "$work/bin/$tool"
    chmod +x "$work/bin/$tool"
  done
fi
rc=0
bash "$@" > "$work/install.out" 2>&1 || rc=$?
echo "rc=$rc"
echo "wants=$(readlink /etc/systemd/system/multi-user.target.wants/edgevoice.service || true)"
echo "unit=$(test -f /etc/systemd/system/edgevoice.service && echo yes || echo no)"
echo "user=$(getent passwd edgevoice | cut -d: -f1,6,7 || true)"
echo "groups=$(id -nG edgevoice 2>/dev/null || true)"
echo "conf=$(stat -c %U:%G:%a /etc/edgevoice/edgevoice.conf 2>/dev/null || true)"
echo "state=$(stat -c %U:%G:%a /var/lib/edgevoice 2>/dev/null || true)"
echo "venv=$(test -x /opt/edgevoice/venv/bin/edgevoice && echo yes || echo no)"
echo "udev_rule=$(test -f /etc/udev/rules.d/60-edgevoice-gpio.rules && echo yes || echo no)"
if [ -n "${UNINSTALL_TOO:-}" ]; then
  bash "$UNINSTALL_TOO" --purge >> "$work/install.out" 2>&1 && echo "uninstalled=yes"
  echo "after_wants=$(ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | grep -c edgevoice || true)"
  echo "after_user=$(getent passwd edgevoice || true)"
fi
'''


def in_namespace(tmp_path: Path, mode: str, *install_args: str, uninstall: bool = False) -> dict:
    if os.geteuid() != 0:
        pytest.skip("installing for real needs root")
    unshare = require_private_mounts()
    venv = Path(sys.executable).parent.parent
    env = dict(os.environ)
    if uninstall:
        env["UNINSTALL_TOO"] = str(UNINSTALL)
    result = subprocess.run(
        [unshare, "-m", "bash", "-c", HARNESS, "harness", str(tmp_path), mode, str(INSTALL),
         "--venv-from", str(venv), *install_args],
        capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    facts = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    facts["out"] = (tmp_path / "install.out").read_text()
    calls = tmp_path / "calls"
    facts["calls"] = calls.read_text() if calls.exists() else ""
    return facts


def assert_installed(facts: dict) -> None:
    assert facts["rc"] == "0", facts["out"]
    assert facts["unit"] == "yes" and facts["venv"] == "yes" and facts["udev_rule"] == "yes"
    assert facts["user"] == "edgevoice:/var/lib/edgevoice:/usr/sbin/nologin"
    assert {"edgevoice", "audio", "gpio"} <= set(facts["groups"].split())
    assert facts["conf"] == "root:edgevoice:640"
    assert facts["state"] == "edgevoice:edgevoice:750"


def test_install_into_an_image_without_systemd_or_udev_running(tmp_path):
    facts = in_namespace(tmp_path, "offline", "--no-start", uninstall=True)
    assert_installed(facts)
    assert facts["wants"] == "/etc/systemd/system/edgevoice.service"  # enabled offline
    out = facts["out"]
    assert "udev is not running here" in out and "systemd is not running here" in out
    assert "Failed" not in out and "command not found" not in out
    # and the uninstaller undoes it there too
    assert facts["uninstalled"] == "yes", out
    assert facts["after_wants"] == "0" and facts["after_user"] == ""


def test_install_on_a_running_system(tmp_path):
    facts = in_namespace(tmp_path, "live", "--no-start")
    assert_installed(facts)
    calls = facts["calls"].splitlines()
    assert calls[:2] == ["udevadm control --reload", "udevadm trigger --subsystem-match=gpio"]
    assert "systemctl daemon-reload" in calls and "systemctl enable edgevoice.service" in calls
    assert not any("restart" in c for c in calls)  # --no-start
    assert "not started (--no-start)" in facts["out"]


def test_this_machine_is_untouched():
    """The namespace tests above leave nothing behind on the host."""
    if os.geteuid() != 0:
        pytest.skip("the namespace tests need root")
    assert subprocess.run(["getent", "passwd", "edgevoice"]).returncode != 0 or \
        Path("/opt/edgevoice").exists()  # a real install on this machine predates the tests
    assert not Path("/etc/systemd/system/multi-user.target.wants/edgevoice.service").exists() \
        or Path("/opt/edgevoice").exists()
