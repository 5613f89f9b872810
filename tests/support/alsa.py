"""An ALSA configuration of `file` PCMs for the tests (capture reads a raw file, playback
writes one), in place before PortAudio first initialises: importing this module sets
``ALSA_CONFIG_PATH``. ``tests/conftest.py`` imports it first."""

from __future__ import annotations

import os
import pathlib
import tempfile

ALSA_DIR = pathlib.Path(tempfile.mkdtemp(prefix="edgevoice-alsa-"))
ALSA_CONF = ALSA_DIR / "asoundrc"


def _file_pcm(name: str, description: str, infile: str | None, outfile: str) -> str:
    infile_line = f'  infile "{infile}"\n' if infile else ""
    return (f"pcm.{name} {{\n  type file\n  slave.pcm null\n  file \"{outfile}\"\n"
            f"{infile_line}  format \"raw\"\n  hint {{ show on description \"{description}\" }}\n}}\n")


ALSA_CONF.write_text(
    "</usr/share/alsa/alsa.conf>\n"
    + _file_pcm("edgevoice_test_mic", "Test USB Microphone", str(ALSA_DIR / "mic.raw"), "/dev/null")
    + _file_pcm("edgevoice_test_speaker", "Test Speaker", None, str(ALSA_DIR / "speaker.raw"))
    + _file_pcm("edgevoice_mic48", "Test 48k-only Microphone", str(ALSA_DIR / "mic48.raw"),
                "/dev/null")
    + _file_pcm("edgevoice_speaker48", "Test 48k-only Speaker", None,
                str(ALSA_DIR / "speaker48.raw"))
)
for _raw in ("mic.raw", "mic48.raw"):  # capture appears only if its infile exists at enumeration
    (ALSA_DIR / _raw).write_bytes(bytes(640))
os.environ["ALSA_CONFIG_PATH"] = str(ALSA_CONF)
