"""Reading the config file: text → :class:`Config` (or every problem at once), and back.

Secrets can be written inline (``api_key = ...``), read from a file (``api_key_file =
PATH``), or come from systemd credentials (``$CREDENTIALS_DIRECTORY/<section>_<key>``). They
are held as :class:`~edgevoice.redact.Secret` and never printed.
"""

from __future__ import annotations

import configparser
import dataclasses
import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Mapping, TypeVar

from edgevoice.config.errors import ConfigError, Problem, did_you_mean
from edgevoice.config.handsfree import SoundSettings, wake_word_problems
from edgevoice.config.registry import is_file
from edgevoice.config.sections import (AgentSettings, AudioSettings, BargeInSettings,
                                       GpioSettings, LogSettings, MetricsSettings,
                                       SessionSettings, sections)
from edgevoice.config.types import MAX_SECRET_BYTES, Invalid, keys, value_type
from edgevoice.redact import Secret

DEFAULT_PATH = "/etc/edgevoice/edgevoice.conf"
MAX_FILE_BYTES = 1 << 20  # the config file
MAX_VALUE_CHARS = 64 * 1024  # one value (a long prompt fits)
T = TypeVar("T")


class _Section(Generic[T]):
    """``Config.agent`` and the like: the section of that name, typed for the reader."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, cfg: Any, owner: type | None = None) -> T:
        if cfg is None:  # looked up on the class
            return self  # type: ignore[return-value]
        return cfg.sections[self.name]


def _defaults() -> dict[str, Any]:
    return {name: cls() for name, cls in sections().items()}


@dataclass(frozen=True)
class Config:
    """The whole configuration: ``sections`` maps each section's name to its settings
    (every section, defaults where the file has none). A section is reached by its name:
    ``cfg.agent``, ``cfg.xuna``, or ``cfg.section(name)``."""

    sections: Mapping[str, Any] = field(default_factory=_defaults)
    tools: tuple = ()  # ((function name, executable path), ...) from [tools]
    path: str = ""

    agent = _Section[AgentSettings]()
    audio = _Section[AudioSettings]()
    sounds = _Section[SoundSettings]()
    barge_in = _Section[BargeInSettings]()
    gpio = _Section[GpioSettings]()
    session = _Section[SessionSettings]()
    metrics = _Section[MetricsSettings]()
    log = _Section[LogSettings]()

    def __getattr__(self, name: str) -> Any:  # a dialect's section: cfg.xuna
        try:
            return self.__dict__["sections"][name]
        except KeyError:
            raise AttributeError(name) from None

    def section(self, name: str) -> Any:
        """The settings of section ``name`` ([agent], [xuna], [audio], ...)."""
        return self.sections[name]

    def provider_settings(self) -> Any:
        """The settings section of the configured provider."""
        return self.sections[self.agent.provider]


def read_small_file(path: Path, limit: int) -> str:
    """The text of a regular file of at most ``limit`` bytes, read without blocking: a FIFO
    or a device (``/dev/zero``) is refused rather than waited on or read without end.
    Raises OSError (``strerror`` says why) or UnicodeDecodeError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or folder)")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    finally:
        os.close(fd)
    return data.decode("utf-8")


def _convert(section: str, fld: dataclasses.Field, raw: str, problems: list[Problem]) -> Any:
    """The value of ``raw`` for the key ``fld``, or None with a problem recorded."""
    if "\x00" in raw:
        problems.append(Problem(section, fld.name, "contains a NUL character; retype the value"))
        return None
    if len(raw) > MAX_VALUE_CHARS:
        problems.append(Problem(section, fld.name, f"is {len(raw)} characters long; at most "
                                                   f"{MAX_VALUE_CHARS} are accepted"))
        return None
    try:
        return value_type(fld).parse(raw)
    except Invalid as exc:
        problems.append(Problem(section, fld.name, str(exc)))
        return None


def _read_secret(section: str, fld: dataclasses.Field, items: dict[str, str], base: Path,
                 problems: list[Problem]) -> Secret | None:
    """A secret key's value: inline, from ``KEY_file``, or from a systemd credential."""
    name = fld.name
    inline = items.pop(name, None)
    file_key = f"{name}_file"
    file_path = items.pop(file_key, None)
    if inline and file_path:
        problems.append(Problem(section, name, f"set either {name} or {file_key}, not both"))
        return None
    if inline:
        try:
            return value_type(fld).parse(inline)
        except Invalid as exc:
            problems.append(Problem(section, name, str(exc)))
            return None
    if file_path:
        if "\x00" in file_path:
            problems.append(Problem(section, file_key, "contains a NUL character"))
            return None
        path = Path(file_path)
        if not path.is_absolute():
            path = base / path
        try:
            value = read_small_file(path, MAX_SECRET_BYTES).strip()
        except OSError as exc:
            problems.append(Problem(section, file_key, f"cannot read {path}: {exc.strerror}; "
                                                       "check the path and its permissions"))
            return None
        except UnicodeDecodeError:
            problems.append(Problem(section, file_key, f"{path} is not UTF-8 text"))
            return None
        if not value:
            problems.append(Problem(section, file_key, f"{path} is empty"))
            return None
        return Secret(value, f"file {path}")
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / f"{section}_{name}"
        if os.path.lexists(cred) and not cred.is_dir():  # a folder is no credential
            try:
                value = read_small_file(cred, MAX_SECRET_BYTES).strip()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                problems.append(Problem(section, name, f"cannot read credential {cred}: "
                                                       f"{why}"))
                return None
            if value:
                return Secret(value, f"credential {cred.name}")
    return None


def _parse_section(section: str, cls: type, items: dict[str, str], base: Path,
                   problems: list[Problem]) -> Any:
    fields = {f.name: f for f in keys(cls)}
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        if value_type(fld).secret:
            values[name] = _read_secret(section, fld, items, base, problems)
    for name, raw in items.items():
        if name not in fields:
            known = list(fields) + [f"{n}_file" for n, f in fields.items()
                                    if value_type(f).secret]
            problems.append(Problem(section, name, "unknown key" + did_you_mean(name, known)
                                    + f" (known keys: {', '.join(sorted(fields))})"))
            continue
        value = _convert(section, fields[name], raw.strip(), problems)
        if value is not None:
            values[name] = value
    return cls(**values)


def _check_combination(cfg: Config, problems: list[Problem]) -> None:
    """Rules that involve more than one key: each section's own ``check`` (a dialect's only
    when it is the one in use), and [tools]."""
    problems += cfg.provider_settings().check()
    problems += cfg.gpio.check()
    for name, program in cfg.tools:
        path = Path(program)
        if "\x00" in program or len(program) > 4096:
            problems.append(Problem("tools", name, "contains a NUL character or is too long"))
        elif not path.is_absolute():
            problems.append(Problem("tools", name, f"'{program}' must be an absolute path to "
                                    "an executable"))
        elif not is_file(path) or not os.access(path, os.X_OK):
            problems.append(Problem("tools", name, f"{program} is not an executable file; "
                                    f"check it exists and chmod +x it"))
    problems += cfg.audio.check()
    problems += cfg.sounds.check()
    problems += cfg.metrics.check()
    problems += wake_word_problems(cfg)


def _read_ini(text: str, path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"),
                                       default_section="__defaults_unused__", strict=True)
    parser.optionxform = str  # keys are case-sensitive, as documented
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(path, [Problem(exc.section, exc.option,
                                         f"set twice (line {exc.lineno}); keep one")]) from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(path, [Problem(exc.section, "", f"section appears twice (line "
                                         f"{exc.lineno}); merge them")]) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(path, [Problem("?", "", f"line {exc.lineno}: a key before any "
                                         "[section] header; start with e.g. [agent]")]) from None
    except configparser.ParsingError as exc:
        # the line itself is not shown: it may be a pasted secret
        bad = ", ".join(f"line {lineno}" for lineno, _ in exc.errors)
        raise ConfigError(path, [Problem("?", "", f"cannot parse {bad}; expected "
                                         "'key = value' (or a [section] or a # comment)")]
                          ) from None
    return parser


def parse(text: str, path: str = "<config>") -> Config:
    """Parse config text; raise :class:`ConfigError` with every problem found."""
    parser = _read_ini(text, path)
    known = sections()
    problems: list[Problem] = []
    base = Path(path).parent if path and not path.startswith("<") else Path.cwd()
    found: dict[str, Any] = {}
    tools: list[tuple[str, str]] = []
    for name in parser.sections():
        if name == "tools":
            tools = [(key, value.strip()) for key, value in parser.items(name)]
            continue
        if name not in known:
            problems.append(Problem(name, "", "unknown section" + did_you_mean(name, list(known))
                                    + f" (known sections: {', '.join(known)}, tools)"))
            continue
        found[name] = _parse_section(name, known[name], dict(parser.items(name)), base,
                                     problems)
    for name, cls in known.items():
        if name not in found:
            found[name] = _parse_section(name, cls, {}, base, problems)
    cfg = Config({name: found[name] for name in known}, tuple(tools), path)
    _check_combination(cfg, problems)
    if problems:
        raise ConfigError(path, problems)
    return cfg


def load(path: str) -> Config:
    """Read and validate the config file at ``path``."""
    try:
        text = read_small_file(Path(path), MAX_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigError(path, [Problem("file", "", f"{path} does not exist; copy the example "
                                         "config/edgevoice.conf there")]) from None
    except OSError as exc:
        raise ConfigError(path, [Problem("file", "", f"cannot read {path}: "
                                                     f"{exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [Problem("file", "", f"{path} is not UTF-8 text")]) from None
    return parse(text, path)


def state_dir(cfg: Config) -> Path:
    """Where edgevoice keeps state: [agent] state_dir, else systemd's $STATE_DIRECTORY, else
    /var/lib/edgevoice."""
    if cfg.agent.state_dir:
        return Path(cfg.agent.state_dir)
    env = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(env or "/var/lib/edgevoice")
