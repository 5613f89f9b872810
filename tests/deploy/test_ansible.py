"""The Ansible role in deploy/ansible, run for real with ``ansible-playbook``.

The target is this machine seen through a private mount namespace (``unshare -m``):
``/etc``, ``/opt`` and ``/var/lib`` are copy-on-write overlays and ``/run`` an empty tmpfs,
so the role runs the project's scripts/install for real (``useradd``, ``chown``, the unit,
the credentials folder) over the local connection, and nothing is left on the machine.
``/run/systemd/system`` exists, as on a running system, and ``systemctl`` is
tests/deploy/fake_systemctl.py, which records its calls (there is no PID-1 systemd here).

One namespace runs the scenario, a playbook run after another, and the tests read what
each run left: its output, exit status, the config file, the systemctl calls.

Needs root, ``unshare`` and overlayfs; skipped, saying why, without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_private_mounts

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "ansible"
FAKE_SYSTEMCTL = Path(__file__).with_name("fake_systemctl.py")
VENV_BIN = Path(sys.executable).parent
SECRET = "sk-test-0123456789-very-secret"
NEW_SECRET = "sk-test-rotated-9876543210"

SCENARIO = r'''
set -u
work="$1"; site="$2"
mount -t tmpfs tmpfs /run
for dir in /etc /opt /var/lib; do
  name=$(echo "$dir" | tr / _)
  mkdir -p "$work/up$name" "$work/wk$name"
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$work/up$name,workdir=$work/wk$name" "$dir"
done
mkdir -p /run/systemd/system "$work/bin"
export FAKE_SYSTEMCTL_LOG="$work/systemctl.log"
play() {  # name inventory vars-file
  echo "== $1" >> "$FAKE_SYSTEMCTL_LOG"
  TIMEFORMAT="$1: %R s, cpu %U s user + %S s sys"
  { time ansible-playbook -i "$work/$2" "$site" -e "@$work/$3" > "$work/$1.out" 2>&1
    echo $? > "$work/$1.rc"; } 2>> "$work/times"
  cp /etc/edgevoice/edgevoice.conf "$work/$1.conf"
  stat -c '%a %U:%G' /etc/edgevoice/edgevoice.conf /etc/edgevoice/credentials \
    /etc/edgevoice/credentials/* > "$work/$1.modes" 2>&1
}
play first one-host.yml vars-valid.json
play again one-host.yml vars-valid.json
cp /etc/systemd/system/edgevoice.service.d/ansible.conf "$work/dropin.conf"
cp /etc/edgevoice/credentials/xuna_api_key "$work/credential"
echo "an old key" > /etc/edgevoice/credentials/napster_api_key  # no longer in the inventory
play invalid one-host.yml vars-invalid.json
ls /etc/edgevoice/credentials > "$work/invalid.credentials"
cp /etc/edgevoice/credentials/xuna_api_key "$work/invalid.credential"
# from now on the daemon dies whenever it is started or reloaded
touch /run/fake-systemctl/dies
play roll fleet.yml vars-roll.json
'''


def ansible_env(work: Path) -> dict[str, str]:
    """This process's environment without the user's Ansible settings, and with Ansible's
    files (collections, caches, temporary files) in ``work``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    (work / "none.cfg").write_text("")
    env.update(PATH=f"{work / 'bin'}:{VENV_BIN}:{env['PATH']}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOME=str(work / "ansible-home"), ANSIBLE_CONFIG=str(work / "none.cfg"),
               ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
               ANSIBLE_REMOTE_TMP=str(work / "ansible-remote-tmp"), ANSIBLE_PIPELINING="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", XDG_CACHE_HOME=str(work / "cache"),
               NO_COLOR="1")
    return env


def require(tool: str) -> Path:
    path = VENV_BIN / tool
    if not path.exists():
        pytest.skip(f"{tool} is not in the venv: run scripts/bootstrap")
    return path


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP lines: host -> {ok: n, changed: n, failed: n, ...}."""
    hosts = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match:
            hosts[match[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match[2])}
    return hosts


def calls_of(log: str, run: str) -> list[str]:
    """The systemctl calls made during one run."""
    sections = re.split(r"^== (\S+)\n", log, flags=re.M)  # ["", name, calls, name, ...]
    return dict(zip(sections[1::2], sections[2::2]))[run].splitlines()


def inventory(*hosts: str) -> str:
    host = {"ansible_connection": "local", "ansible_become": False,
            "ansible_python_interpreter": "/usr/bin/python3"}
    return json.dumps({"edgevoice": {"hosts": {name: host for name in hosts}}})

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the role installs for real (useradd, chown): needs root")
    require("ansible-playbook")
    unshare = require_private_mounts()
    work = tmp_path_factory.mktemp("ansible")
    (work / "bin").mkdir()
    shutil.copy(FAKE_SYSTEMCTL, work / "bin" / "systemctl")
    (work / "bin" / "systemctl").chmod(0o755)
    (work / "one-host.yml").write_text(inventory("pi1"))
    (work / "fleet.yml").write_text(inventory("pi1", "pi2", "pi3"))
    valid = {
        "edgevoice_install_args": ["--venv-from", str(VENV_BIN.parent)],
        "edgevoice_provider": "xuna",
        "edgevoice_provider_settings": {"agent_id": "agent_lobby", "language": "en"},
        "edgevoice_credentials": {"xuna_api_key": SECRET},
        "edgevoice_input_device": "USB PnP Sound Device",
        "edgevoice_tools": {"open_door": "/bin/true"},
        "edgevoice_health_retries": 1, "edgevoice_health_delay": 0,
    }
    variants = {
        "valid": valid,
        # a rotated key, and the button on the LED's pin: check-config refuses that
        "invalid": {**valid, "edgevoice_provider_settings": {"agent_id": "agent_broken"},
                    "edgevoice_button_pin": 18,
                    "edgevoice_credentials": {"xuna_api_key": NEW_SECRET}},
        # only the config changes (and kills the daemon)
        "roll": {**valid, "edgevoice_provider_settings": {"agent_id": "agent_meeting"},
                 "edgevoice_credentials": {"xuna_api_key": NEW_SECRET}, "edgevoice_serial": 1},
    }
    for name, values in variants.items():
        (work / f"vars-{name}.json").write_text(json.dumps(values))
    env = ansible_env(work)
    result = subprocess.run([unshare, "-m", "bash", "-c", SCENARIO, "scenario", str(work),
                             str(DEPLOY / "site.yml")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return work


def read(work: Path, name: str) -> str:
    return (work / name).read_text()


def test_first_run_installs_renders_and_starts(runs):
    out = read(runs, "first.out")
    assert read(runs, "first.rc").strip() == "0", out
    conf = read(runs, "first.conf")
    assert "provider = xuna" in conf and "agent_id = agent_lobby" in conf
    assert "input_device = USB PnP Sound Device" in conf
    assert "[tools]\nopen_door = /bin/true" in conf
    assert "[metrics]" not in conf  # off unless asked for
    modes = read(runs, "first.modes").splitlines()
    assert modes == ["640 root:edgevoice", "700 root:root", "600 root:root"]
    assert read(runs, "credential") == SECRET
    assert "LoadCredential=xuna_api_key:/etc/edgevoice/credentials/xuna_api_key" in \
        read(runs, "dropin.conf")
    calls = calls_of(read(runs, "systemctl.log"), "first")
    assert "enable edgevoice.service" in calls  # by scripts/install
    # started once (the restart handler starts a unit that is not running), never reloaded
    assert [c for c in calls if c.split()[0] in ("start", "restart", "reload")] == \
        ["start edgevoice.service"]
    assert calls[-1] == "show edgevoice.service"  # the health check asked


def test_secrets_stay_out_of_the_config_and_the_output(runs):
    for run in ("first", "again", "invalid", "roll"):
        assert SECRET not in read(runs, f"{run}.out")
        assert NEW_SECRET not in read(runs, f"{run}.out")
    for run in ("first", "again", "invalid", "roll"):
        assert SECRET not in read(runs, f"{run}.conf")
        assert NEW_SECRET not in read(runs, f"{run}.conf")
    assert "api_key" not in read(runs, "first.conf")


def test_a_second_run_changes_nothing(runs):
    out = read(runs, "again.out")
    assert read(runs, "again.rc").strip() == "0", out
    assert recap(out)["pi1"]["changed"] == 0, out
    calls = calls_of(read(runs, "systemctl.log"), "again")
    assert not [c for c in calls if c.split()[0] in ("restart", "reload", "start")]


def test_an_invalid_config_is_refused_and_the_old_one_stays(runs):
    out = read(runs, "invalid.out")
    assert read(runs, "invalid.rc").strip() != "0", out
    assert "failed to validate" in out
    assert '"exit_status": 78' in out  # check-config's EX_CONFIG
    assert "pins are used twice" in out  # its problem list, shown to the operator
    assert read(runs, "invalid.conf") == read(runs, "first.conf")
    # The rotated key was written before the config was refused: the restart it needs
    # still happens (force_handlers), with the old config; no reload of the refused one.
    assert read(runs, "invalid.credential") == NEW_SECRET
    calls = calls_of(read(runs, "systemctl.log"), "invalid")
    assert [c for c in calls if c.split()[0] in ("restart", "reload", "start")] == \
        ["restart edgevoice.service"]
    # and a key the inventory no longer has is gone
    assert read(runs, "invalid.credentials").split() == ["xuna_api_key"]


def test_a_config_change_reloads_and_a_failed_health_check_stops_the_roll(runs):
    """Three hosts, one at a time, and a config change (only) that kills the daemon: the
    first host gets a reload, not a restart; its health check fails; the play stops
    there and the other two are never touched."""
    out = read(runs, "roll.out")
    assert read(runs, "roll.rc").strip() != "0", out
    assert "agent_id = agent_meeting" in read(runs, "roll.conf")
    calls = calls_of(read(runs, "systemctl.log"), "roll")
    assert "reload edgevoice.service" in calls and "restart edgevoice.service" not in calls
    assert "FAILED - RETRYING: [pi1]: Health check: the unit is active" in out
    hosts = recap(out)
    assert hosts["pi1"]["failed"] == 1, out
    assert "pi2" not in hosts and "pi3" not in hosts, out

def test_the_playbook_passes_the_syntax_check(tmp_path):
    result = subprocess.run(
        [require("ansible-playbook"), "--syntax-check", "-i", "inventory.example.yml",
         "site.yml"], cwd=DEPLOY, env=ansible_env(tmp_path), capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_passes_on_the_role_and_playbook(tmp_path):
    """The strictest profile (production), offline: nothing is fetched from Galaxy."""
    result = subprocess.run(
        [require("ansible-lint"), "--offline", "--profile", "production", "--nocolor",
         "site.yml", "inventory.example.yml", "roles/edgevoice"], cwd=DEPLOY,
        env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s), 0 warning(s)" in result.stdout + result.stderr
