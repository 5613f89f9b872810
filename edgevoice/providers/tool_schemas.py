"""Function declarations for the dialects that tell the model which functions exist
(``openai``, ``gemini``): the ``tool_schemas`` key names a JSON file with one entry per
``[tools]`` program::

    {"get_temperature": {"description": "Temperature in a room, in degrees Celsius",
                         "parameters": {"type": "object",
                                        "properties": {"room": {"type": "string"}},
                                        "required": ["room"]}}}

``parameters`` is a JSON Schema of the call's arguments (default: an object without
properties). OpenAI's own list form, ``[{"type": "function", "name": ..., "description":
..., "parameters": ...}]``, is read too. The file is read once, when the config is loaded
(a reload reads it again).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevoice.config.types import Invalid, ValueType

MAX_FILE_BYTES = 256 * 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")  # what both vendors accept


@dataclass(frozen=True)
class Function:
    name: str
    description: str
    parameters: dict = field(hash=False)


class Declarations(tuple):
    """The functions of one file (a tuple of :class:`Function`), remembering its path."""

    path = ""

    def __new__(cls, functions: tuple = (), path: str = "") -> "Declarations":
        self = super().__new__(cls, functions)
        self.path = path
        return self


NONE = Declarations()


class ToolSchemas(ValueType):
    """An absolute path to a JSON file of function declarations (see the module)."""

    def parse(self, raw: str) -> Declarations:
        if not raw:
            return NONE
        path = Path(raw)
        if not path.is_absolute():
            raise Invalid(f"'{raw}' must be an absolute path to a JSON file")
        try:
            if not path.is_file():
                raise Invalid(f"{raw} is not a file")
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise Invalid(f"cannot read {raw}: {exc.strerror}") from None
        if len(data) > MAX_FILE_BYTES:
            raise Invalid(f"{raw} is over {MAX_FILE_BYTES // 1024} KiB")
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            reason = "nested too deeply" if isinstance(exc, RecursionError) else \
                str(exc).split(":")[0]
            raise Invalid(f"{raw} is not valid JSON ({reason})") from None
        return Declarations(declarations(value, raw), raw)

    def render(self, value: Any) -> str:
        return getattr(value, "path", "") or ""


def declarations(value: Any, where: str) -> tuple[Function, ...]:
    """The functions of a parsed file: an object by name, or a list of named objects."""
    if isinstance(value, dict):
        items = [(name, spec) for name, spec in value.items()]
    elif isinstance(value, list):
        items = [(spec.get("name") if isinstance(spec, dict) else None, spec) for spec in value]
    else:
        raise Invalid(f"{where}: expected a JSON object of functions by name")
    functions = []
    for name, spec in items:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise Invalid(f"{where}: {str(name)[:40]!r} is not a usable function name (letters, "
                          "digits, _ . -, at most 64)")
        if not isinstance(spec, dict):
            raise Invalid(f"{where}: {name}: expected an object with description and "
                          "parameters")
        description = spec.get("description", "")
        parameters = spec.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(description, str):
            raise Invalid(f"{where}: {name}: description must be text")
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise Invalid(f"{where}: {name}: parameters must be a JSON Schema of type object")
        functions.append(Function(name, description, parameters))
    if len({f.name for f in functions}) != len(functions):
        raise Invalid(f"{where}: a function is declared twice")
    return tuple(functions)
