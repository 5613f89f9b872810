"""The systemd unit (verify, exposure score, device access) and scripts/install --root,
scripts/uninstall --root."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "edgevoice.service"
EXAMPLE = ROOT / "config" / "edgevoice.conf"
INSTALL = ROOT / "scripts" / "install"
UNINSTALL = ROOT / "scripts" / "uninstall"
EXEC_START = "/opt/edgevoice/venv/bin/edgevoice"
EXPOSURE_TARGET = 2.5

analyze = shutil.which("systemd-analyze")

def needs_analyze(test):
    """systemd-analyze comes from Debian's systemd package, which scripts/bootstrap installs:
    a missing one is a broken setup, not a reason to skip."""
    def run(*args, **kwargs):
        assert analyze is not None, "systemd-analyze is missing: run ./scripts/bootstrap"
        return test(*args, **kwargs)
    run.__name__, run.__doc__ = test.__name__, test.__doc__
    import inspect
    run.__signature__ = inspect.signature(test)
    return run


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> every value it is given (systemd keys repeat), comments dropped."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.setdefault(key.strip(), []).append(value.strip())
    return out


# --- the unit -------------------------------------------------------------------------------
@needs_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart's binary exists; /opt/edgevoice is not there on a
    # development machine, so a copy points at this checkout's own edgevoice instead.
    here = Path(sys.executable).with_name("edgevoice")
    binary = here if here.exists() else Path(sys.executable)
    text = UNIT.read_text()
    assert EXEC_START in text
    copy = tmp_path / "edgevoice.service"
    copy.write_text(text.replace(EXEC_START, str(binary)))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr   # not even a warning


@needs_analyze
def test_unit_exposure_score_within_target(capsys):
    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for edgevoice\.service:\s*([0-9.]+)\s*(\w+)",
                      result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match.group(1))
    with capsys.disabled():
        print(f"\n  systemd-analyze security --offline=yes systemd/edgevoice.service: "
              f"exposure {score} {match.group(2)} (target <= {EXPOSURE_TARGET})")
    assert score <= EXPOSURE_TARGET


def test_unit_keeps_its_devices_and_its_contract():
    s = unit_settings(UNIT.read_text())
    one = lambda key: s[key][-1]
    assert one("Type") == "notify" and one("NotifyAccess") == "main"
    assert one("ExecStart") == f"{EXEC_START} run --config /etc/edgevoice/edgevoice.conf"
    # the reload helper waits for the daemon's answer, and needs nothing outside the venv
    assert one("ExecReload") == f"{EXEC_START} reload --pid $MAINPID"
    assert one("WatchdogSec") == "30"
    assert one("Restart") == "on-failure" and one("RestartPreventExitStatus") == "78"
    assert one("User") == "edgevoice" and one("SupplementaryGroups") == "audio gpio"
    assert one("StateDirectory") == "edgevoice" and one("RuntimeDirectory") == "edgevoice"
    # the config directory is read-only for the service: no ConfigurationDirectory= (which
    # mounts it read-write under ProtectSystem=strict), no writable path over /etc
    assert "ConfigurationDirectory" not in s and one("ProtectSystem") == "strict"
    assert one("ReadOnlyPaths") == "-/etc/edgevoice"
    assert not any(p.lstrip("-+").startswith("/etc") for p in s.get("ReadWritePaths", []))
    # what the service still needs to reach
    assert one("DevicePolicy") == "closed"
    allowed = s["DeviceAllow"]
    assert "char-alsa rw" in allowed and "char-gpiochip rw" in allowed
    assert s.get("PrivateDevices", ["no"])[-1] == "no"       # would hide /dev/snd
    families = one("RestrictAddressFamilies").split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    assert "AF_NETLINK" not in families
    assert "ProcSubset" not in s                              # ALSA reads /proc/asound
    assert s.get("PrivateNetwork", ["no"])[-1] == "no"
    assert one("WorkingDirectory") == "/run/edgevoice"       # lgpio writes its FIFOs here
    assert "LoadCredential" in UNIT.read_text()              # documented, commented


# --- scripts/install --root --------------------------------------------------------------------
TRAPPED = ("apt-get", "apt", "useradd", "groupadd", "usermod", "userdel", "systemctl",
           "udevadm", "chown", "runuser")


@pytest.fixture
def staging(tmp_path):
    """A staging root plus a PATH on which every machine-changing command only records that
    it was called (and fails), so the scripts cannot touch this machine."""
    trap = tmp_path / "trap"
    trap.mkdir()
    calls = tmp_path / "trapped-calls"
    for name in TRAPPED:
        script = trap / name
        script.write_text(f"#!/bin/sh\necho \"{name} $*\" >> '{calls}'\nexit 1\n")
        script.chmod(0o755)
    env = dict(os.environ, PATH=f"{trap}:{os.environ['PATH']}")
    return tmp_path / "root", env, calls


def run(script: Path, *args: str, env) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: its type, mode, and content hash or link target."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", oct(st.st_mode & 0o7777))
        else:
            out[rel] = ("file", oct(st.st_mode & 0o7777),
                        hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def venv_dir() -> Path:
    venv = Path(sys.executable).parent.parent
    if not (venv / "bin" / "edgevoice").exists():
        pytest.skip("the test interpreter's venv has no edgevoice script")
    return venv


def test_install_lays_out_the_tree_and_touches_nothing_else(staging):
    root, env, calls = staging
    venv = venv_dir()
    result = run(INSTALL, "--root", str(root), "--venv-from", str(venv), "--no-start", env=env)
    assert not calls.exists(), calls.read_text()         # no apt, useradd, systemctl, chown
    out = result.stdout
    for would in ("apt-get install", "useradd --system", "usermod -a -G audio,gpio edgevoice",
                  "chown root:edgevoice"):
        assert f"would run: {would}" in out, out
    # enabled in the tree itself, as `systemctl enable` would (no systemctl needed)
    wants = root / "etc/systemd/system/multi-user.target.wants/edgevoice.service"
    assert os.readlink(wants) == "/etc/systemd/system/edgevoice.service"
    for step in ("sudo nano /etc/edgevoice/edgevoice.conf", "systemctl reload edgevoice",
                 "journalctl -u edgevoice -f"):
        assert step in out, out                          # the next steps are printed

    unit = root / "etc/systemd/system/edgevoice.service"
    assert unit.read_text() == UNIT.read_text()
    conf = root / "etc/edgevoice/edgevoice.conf"
    assert conf.read_text() == EXAMPLE.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/edgevoice/credentials").stat().st_mode) == 0o700
    state = root / "var/lib/edgevoice"
    assert state.is_dir() and stat.S_IMODE(state.stat().st_mode) == 0o750
    link = root / "opt/edgevoice/venv"
    assert link.is_symlink() and link.resolve() == venv.resolve()
    assert (root / "opt/edgevoice/edgevoice.conf.example").read_text() == EXAMPLE.read_text()
    assert (root / "etc/udev/rules.d/60-edgevoice-gpio.rules").exists()
    # the staged program runs, and checked the staged (unedited) config: not started
    version = subprocess.run([str(link / "bin" / "edgevoice"), "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "edgevoice" in version.stdout
    assert "agent_id" in out                              # what to fix before it can start


def test_install_twice_is_idempotent_and_keeps_an_edited_config(staging):
    root, env, calls = staging
    venv = str(venv_dir())
    run(INSTALL, "--root", str(root), "--venv-from", venv, env=env)
    first = snapshot(root)
    run(INSTALL, "--root", str(root), "--venv-from", venv, env=env)
    assert snapshot(root) == first

    conf = root / "etc/edgevoice/edgevoice.conf"
    edited = conf.read_text().replace("agent_id =", "agent_id = agent_mine", 1)
    conf.write_text(edited)
    conf.chmod(0o600)
    result = run(INSTALL, "--root", str(root), "--venv-from", venv, env=env)
    assert conf.read_text() == edited
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert "kept the existing /etc/edgevoice/edgevoice.conf" in result.stdout
    assert "would run: systemctl restart --no-block edgevoice.service" in result.stdout
    assert not calls.exists(), calls.read_text()


def test_install_without_a_venv_and_bad_options(staging):
    root, env, calls = staging
    result = run(INSTALL, "--root", str(root), "--no-venv", env=env)
    assert "skipped (--no-venv)" in result.stdout
    assert not (root / "opt/edgevoice/venv").exists()
    assert (root / "etc/systemd/system/edgevoice.service").exists()
    bad = subprocess.run(["bash", str(INSTALL), "--root", str(root), "--frobnicate"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode != 0 and "unknown option --frobnicate" in bad.stderr
    helped = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert helped.returncode == 0 and "--root DIR" in helped.stdout
    assert not calls.exists()


def test_uninstall_keeps_config_and_state_unless_purged(staging):
    root, env, calls = staging
    venv = venv_dir()
    run(INSTALL, "--root", str(root), "--venv-from", str(venv), "--no-start", env=env)
    (root / "var/lib/edgevoice/history.jsonl").write_text("{}\n")

    result = run(UNINSTALL, "--root", str(root), env=env)
    assert "would run: systemctl disable --now edgevoice.service" in result.stdout
    assert not (root / "etc/systemd/system/edgevoice.service").exists()
    assert not os.path.lexists(root / "etc/systemd/system/multi-user.target.wants/edgevoice.service")
    assert not (root / "opt/edgevoice").exists()
    assert not (root / "etc/udev/rules.d/60-edgevoice-gpio.rules").exists()
    assert (root / "etc/edgevoice/edgevoice.conf").read_text() == EXAMPLE.read_text()
    assert (root / "var/lib/edgevoice/history.jsonl").exists()
    assert (venv / "bin" / "edgevoice").exists()          # the symlink went, not its target

    run(UNINSTALL, "--root", str(root), "--purge", env=env)
    assert not (root / "etc/edgevoice").exists()
    assert not (root / "var/lib/edgevoice").exists()
    assert not calls.exists(), calls.read_text()
