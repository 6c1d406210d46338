"""Typed TOML sections: turn a TOML table into a frozen dataclass, refusing bad keys by name.

Every trainer config (training, dataset building) is a set of frozen dataclasses, one per TOML
section; this module converts and checks the values against the dataclass field types and raises
:class:`~trainer.errors.ConfigError` messages of the form ``section.key: expected ..., found ...``.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any

from trainer.errors import ConfigError


def require(ok: bool, key: str, expected: str, found: object) -> None:
    """Raise ``ConfigError("key: expected ..., found ...")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, found {found!r}")


def convert(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the type ``hint`` (bool, int, float, str, optional, fixed or
    variadic tuples); TOML lists become tuples, ints become floats where a float is expected."""
    origin = typing.get_origin(hint)
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
    if hint is bool:
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
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown key; valid keys of [{section}]: {', '.join(names)}")
    try:
        return cls(**{k: convert(f"{section}.{k}", v, hints[k]) for k, v in table.items()})
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"[{section}]: {exc}") from exc
