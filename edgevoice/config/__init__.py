"""The configuration file: one INI file (``/etc/edgevoice/edgevoice.conf``).

- :mod:`~edgevoice.config.types`: value types that parse, check and render one key
  (``Integer(minimum, maximum)``, ``Boolean``, ``Choice``, ``Secret``, ...) and :func:`key`,
  which declares a section's key with its documentation.
- :mod:`~edgevoice.config.sections`: the sections every configuration has; each dialect
  declares its own in ``edgevoice/providers/<name>.py``.
- :mod:`~edgevoice.config.loader`: :func:`load` / :func:`parse` return a :class:`Config` or
  raise :class:`ConfigError` listing *every* problem at once, each with section, key, what
  is wrong and how to fix it.
- :mod:`~edgevoice.config.render`: the effective configuration as text, secrets masked.
"""

from edgevoice.config.errors import EX_CONFIG, ConfigError, Problem
from edgevoice.config.loader import (DEFAULT_PATH, MAX_FILE_BYTES, MAX_VALUE_CHARS, Config,
                                     load, parse, read_small_file, state_dir)
from edgevoice.config.render import documented_keys, ini_text, render
from edgevoice.config.sections import (AgentSettings, AudioSettings, BargeInSettings,
                                       GpioSettings, LogSettings, SessionSettings, sections)
from edgevoice.config.types import MAX_SECRET_BYTES

__all__ = ["DEFAULT_PATH", "EX_CONFIG", "MAX_FILE_BYTES", "MAX_SECRET_BYTES", "MAX_VALUE_CHARS",
           "AgentSettings", "AudioSettings", "BargeInSettings", "Config", "ConfigError",
           "GpioSettings", "LogSettings", "Problem", "SessionSettings", "documented_keys",
           "ini_text", "load", "parse", "read_small_file", "render", "sections", "state_dir"]
