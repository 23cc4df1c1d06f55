"""Typed parsing for stage configs: YAML values into dataclass fields, and `--set` overrides.

Kept apart from the dataclasses in config.py so those stay a plain list of documented fields. Values
are coerced to the field's annotation ("1e-3" -> float, which plain YAML 1.1 would leave a string;
"true" -> bool; "[a, b]" -> list), anything else is an error naming the field, and unknown keys get a
"did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

import yaml

from codelm.errors import CodelmError


def unknown(what: str, name: str, choices: list[str]) -> CodelmError:
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return CodelmError(f"bad train config: unknown {what} {name!r}{hint} (choices: {', '.join(choices)})")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none")):
            return None
        return _coerce(value, args[0], where)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return str(value).lower() in ("true", "1", "yes")
        if hint is float and not isinstance(value, bool):
            return float(value)
        if hint is int and not isinstance(value, bool):
            if not float(value).is_integer():
                raise ValueError(value)
            return int(float(value))
        if origin is dict and not isinstance(value, dict):
            raise TypeError(value)
        if hint is str:
            if isinstance(value, dict | list):
                raise TypeError(value)
            return str(value)
        if origin is list:
            value = yaml.safe_load(value) if isinstance(value, str) else value
            value = value if isinstance(value, list) else [value]
            return [_coerce(v, typing.get_args(hint)[0], where) for v in value]
    except (TypeError, ValueError):
        raise CodelmError(
            f"bad train config: {where} = {value!r}, expected {getattr(hint, '__name__', hint)}"
        ) from None
    return value


def build_section(cls: type, raw: Any, section: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CodelmError(f"bad train config: section {section!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            raise unknown(f"key in {section}:", key, names)
    return cls(**{k: _coerce(v, hints[k], f"{section}.{k}") for k, v in raw.items()})


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `section.key=value` (`--set`) to the raw config dict; the value is YAML."""
    if "=" not in assignment:
        raise CodelmError(f"--set expects section.key=value, got {assignment!r}")
    path, value = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise CodelmError(f"--set {path}: {k} is not a section")
    node[keys[-1]] = yaml.safe_load(value) if value.strip() else None
