"""Typed TOML configs: one frozen dataclass per section, checked by name (torch-free, imports nothing of ours).

Every config of the project (the daemon, training, dataset building, the simulator, export) is a
set of frozen dataclasses, one per TOML section. :func:`build_section` turns a TOML table into one,
converting each value to its field's type — ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``,
``X | None`` and fixed or variadic tuples (TOML lists) — and every error names the key, the value
found and what was expected: ``batching.max_batch: expected an integer, found '8'``. Range checks
in ``__post_init__`` use :func:`require` (or :func:`check`) for the same form.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A config is unreadable, or a key is unknown, missing, of the wrong type or out of range."""


def require(ok: bool, key: str, expected: str, found: object) -> None:
    """Raise ``ConfigError("key: expected ..., found ...")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, found {found!r}")


def check(section: str, obj: object, **conditions: bool | tuple[bool, str]) -> None:
    """:func:`require` for several keys of one section object; the value found is ``obj.<key>``
    (a condition named after something that is not a field reports the whole object)."""
    for key, cond in conditions.items():
        ok, expected = cond if isinstance(cond, tuple) else (cond, "a valid value")
        require(ok, f"{section}.{key}", expected, getattr(obj, key, obj))


def convert(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the type ``hint``; TOML lists become tuples, ints become floats
    where a float is expected."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        valid = list(typing.get_args(hint))
        require(value in valid and type(value) is type(valid[0]), key, f"one of {valid}", value)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return convert(key, value, next(a for a in typing.get_args(hint) if a is not type(None)))
    if origin is tuple:
        args = typing.get_args(hint)
        variadic = len(args) == 2 and args[1] is Ellipsis
        require(isinstance(value, list | tuple) and (variadic or len(value) == len(args)), key,
                "a list" if variadic else f"a list of {len(args)} values", value)
        kinds = [args[0]] * len(value) if variadic else list(args)
        return tuple(convert(key, v, a) for v, a in zip(value, kinds, strict=True))
    if origin is dict or hint is dict:
        require(isinstance(value, dict), key, "a table", value)
    elif hint is bool:
        require(isinstance(value, bool), key, "true or false", value)
    elif hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
    elif hint is float:
        require(isinstance(value, int | float) and not isinstance(value, bool), key, "a number", value)
        return float(value)
    elif hint is str:
        require(isinstance(value, str), key, "a string", value)
    return value


def build_section(cls: type, table: Any, section: str) -> Any:
    """An instance of dataclass ``cls`` from the TOML table of ``[section]``."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}]: expected a table, found {table!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown key; valid keys of [{section}]: {', '.join(names)}")
    values = {k: convert(f"{section}.{k}", v, hints[k]) for k, v in table.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"[{section}]: {exc}") from exc


def build_sections(data: Mapping[str, Any], sections: Mapping[str, type]) -> dict[str, Any]:
    """Every ``[section]`` of ``data`` built as its dataclass in ``sections``; unknown sections are refused.
    A section missing from ``data`` is left out (the caller's dataclass default applies)."""
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; valid sections: {', '.join(sections)}")
    return {name: build_section(sections[name], table, name) for name, table in data.items()}


def read_toml(path: Path | str) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; a missing or malformed file is a :class:`ConfigError` naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
