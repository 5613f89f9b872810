"""`edgevoice run` under journald, for real: the installed entry point, python-systemd and
libsystemd's ``sd_journal_sendv`` writing to a journal socket.

The socket is bound at journald's own path, ``/run/systemd/journal/socket``, inside a private
mount namespace (``unshare -m`` with a tmpfs on ``/run``), so nothing on the machine is
touched and nothing above the kernel is faked. Needs root (or user namespaces) and
``unshare``; skipped, saying why, where those are missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import file_audio_config, require_private_mounts

# Runs inside the namespace: binds the journal socket, starts the daemon with stderr on a
# pipe that $JOURNAL_STREAM names (as systemd does), and prints what reached the socket.
COLLECTOR = r'''
import json, os, select, signal, socket, struct, subprocess, sys, time

edgevoice, conf, want, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
os.makedirs("/run/systemd/journal", exist_ok=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")

def parse(data):
    entry, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = nl + 1
        else:  # binary-safe form: KEY\n<le64 size><value>\n
            key = line
            size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            value = data[nl + 9:nl + 9 + size]
            i = nl + 9 + size + 1
        entry[key.decode()] = value.decode("utf-8", "replace")
    return entry

read_end, write_end = os.pipe()
st = os.fstat(write_end)
env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
proc = subprocess.Popen([edgevoice, "run", "--config", conf], stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=write_end, env=env)
os.close(write_end)
entries, stderr, seen, stopped = [], b"", False, False
deadline = time.monotonic() + timeout
while True:
    ready, _, _ = select.select([sock, read_end], [], [], 0.2)
    if sock in ready:
        entry = parse(sock.recv(1 << 20))
        entries.append(entry)
        if want and want in entry:
            seen = True
    if read_end in ready:
        chunk = os.read(read_end, 65536)
        stderr += chunk
        if not chunk and proc.poll() is not None:
            break
    if proc.poll() is not None and not ready:
        break
    if not stopped and (seen or time.monotonic() > deadline):
        stopped = True
        proc.send_signal(signal.SIGTERM)
print(json.dumps({"code": proc.wait(10), "entries": entries,
                  "stderr": stderr.decode("utf-8", "replace")}))
'''


def run_in_journal_namespace(conf: Path, want: str = "", timeout: float = 20.0) -> dict:
    unshare = require_private_mounts()
    edgevoice = Path(sys.executable).parent / "edgevoice"
    assert edgevoice.exists(), "the edgevoice entry point is not installed in this venv"
    result = subprocess.run(
        [unshare, "-m", "sh", "-c", 'mount -t tmpfs tmpfs /run && exec "$0" "$@"',
         sys.executable, "-c", COLLECTOR, str(edgevoice), str(conf), want, str(timeout)],
        capture_output=True, text=True, timeout=timeout + 30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_session_logs_structured_entries_to_the_journal(make_agent, tmp_path):
    agent = make_agent("xuna", private=True)
    api_key = agent.config_values()["xuna"]["api_key"]
    conf = file_audio_config(agent, tmp_path, log={"level": "debug"})
    out = run_in_journal_namespace(conf, want="SESSION_ID")
    entries, stderr = out["entries"], out["stderr"]
    assert out["code"] == 0, stderr
    assert "Logging error" not in stderr and "could not be logged" not in stderr, stderr
    assert entries, "nothing reached the journal socket"
    for entry in entries:
        assert entry["SYSLOG_IDENTIFIER"] == "edgevoice"
        assert int(entry["CODE_LINE"]) > 0 and entry["PRIORITY"] in "234567"
    sessions = [e for e in entries if e.get("SESSION_ID", "").startswith("conv_")]
    assert sessions and all(e["PROVIDER"] == "xuna" for e in sessions)
    assert any(e.get("EVENT") for e in entries)
    token = agent.wait_for("ws_open")[0].data["token"]
    everything = json.dumps(out)
    assert api_key not in everything and token not in everything


def test_a_broken_config_is_one_journal_entry_and_exit_78(tmp_path):
    conf = tmp_path / "edgevoice.conf"
    conf.write_text("[agent]\nprovider = nosuch\n")
    out = run_in_journal_namespace(conf)
    assert out["code"] == 78
    errors = [e for e in out["entries"] if e["PRIORITY"] == "3"]
    assert errors and "provider" in errors[0]["MESSAGE"]
    assert "Traceback" not in out["stderr"]
