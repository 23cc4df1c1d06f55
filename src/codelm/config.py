"""The one config layer every pillar uses: YAML -> dataclasses, `--set` overrides, `${VAR}`, strict keys.

A config is a plain dataclass (documented per field, validated in `__post_init__`, litgpt-style);
this module turns parsed YAML into it and back:

* `read_yaml(path)`: a mapping from a file, with YAML 1.2 numbers (`6.0e12` and `3e-4` are floats,
  where PyYAML's YAML 1.1 resolver leaves them strings).
* `expand(raw)`: `${stdlib}`, `${site_packages}`, `${NAME}` from explicit `variables`, else from
  the environment (an unset name is an error, never an empty string; `${NAME:-default}` gives
  the default instead, as in the shell).
* `set_override(raw, "a.b=value")`: the `--set` flag of every verb. The value is YAML; a list entry
  is named by its index or, for lists of named entries (curation steps, recipe stages), its name.
* `build(cls, raw, where)`: the dataclass, with values coerced to each field's annotation
  ("1e-3" -> float, "true" -> bool, nested dataclasses, lists, optionals, Literal choices) and
  unknown keys rejected with a "did you mean".
* `to_dict(obj)` / `dump(obj)`: the resolved config as plain data / YAML (`--print-config`).

Own code rather than pydantic or jsonargparse: the configs stay stdlib dataclasses that import in
microseconds (`codelm --help` loads no config machinery), every error is one line naming the key
path and the close match, and the coercion needed is the ~150 lines below. Field names that are
Python keywords take their YAML key from `field(metadata={"key": "from"})`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sysconfig
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from codelm.errors import CodelmError

T = TypeVar("T")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # ${NAME} or ${NAME:-default}


class ConfigError(CodelmError):
    """A config file, section, key or value is wrong; the message names where and why."""


# -- YAML ------------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats: `1e-3`, `6.0e12`, `.5` are numbers, not strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, origin: str = "<text>") -> Any:
    """YAML text -> data, with YAML 1.2 floats; a syntax error is a one-line ConfigError."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{origin}: invalid YAML{at}: {problem}") from None


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """A YAML file holding a mapping (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {what} is a YAML mapping at the top level, got {type(raw).__name__}")
    return raw


# -- variables and overrides -----------------------------------------------------------------------
def builtin_variables() -> dict[str, str]:
    """Variables every config may use: the running Python's standard library and site-packages."""
    paths = sysconfig.get_paths()
    return {"stdlib": paths["stdlib"], "site_packages": paths["purelib"]}


def expand(value: Any, variables: Mapping[str, str] | None = None, *, lenient: bool = False) -> Any:
    """Replace `${NAME}` in every string of `value`: explicit `variables`, the built-ins, then the
    environment. An unknown name is an error naming it (`lenient`: left as written, for checking a
    config on a machine that will not run it)."""
    known = {**builtin_variables(), **(variables or {})}
    if isinstance(value, dict):
        return {k: expand(v, known, lenient=lenient) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, known, lenient=lenient) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in known:
            return str(known[name])
        if name not in os.environ:
            if m.group(2) is not None:
                return m.group(2)  # ${NAME:-default}, as in the shell
            if lenient:
                return m.group(0)
            raise ConfigError(f"config uses ${{{name}}} but the environment variable {name} is not set")
        return os.environ[name]

    return _VAR.sub(sub, value)


def entry_name(entry: Any) -> str | None:
    """The name of a list entry: `name`, `{name: settings}` or `{name: ..., ...}` (recipe stages)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        if "name" in entry and isinstance(entry["name"], str):
            return entry["name"]
        if len(entry) == 1:
            return str(next(iter(entry)))
    return None


def set_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` (the `--set` flag) to a raw config mapping, in place."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    set_value(raw, key, parse_yaml(text, f"--set {key}") if text.strip() else None)


def set_value(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `dotted.key` to `value` (already parsed) in a raw config mapping, creating sections."""
    node: Any = raw
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            node, part = _list_slot(node, part, ".".join(parts[:i]) or key)
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:i])} is not a section")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]


def _list_slot(items: list[Any], part: str, where: str) -> tuple[dict[str, Any], str]:
    """A list entry as (mapping, key) so that the next part sets inside it."""
    if part.isdigit() and int(part) < len(items):
        idx = int(part)
    else:
        names = [entry_name(e) for e in items]
        if names.count(part) != 1:
            what = "no" if part not in names else "more than one"
            raise ConfigError(f"--set: {where} has {what} entry {part!r} (entries: {names}); use its index")
        idx = names.index(part)
    entry = items[idx]
    if isinstance(entry, dict) and "name" in entry:  # {name: x, key: value, ...}: set inside it
        return {"_": entry}, "_"
    name = entry_name(entry)
    if name is None:
        raise ConfigError(f"--set: entry {idx} of {where} is not a mapping")
    settings = entry.get(name) if isinstance(entry, dict) else None
    items[idx] = {name: dict(settings or {})}
    return items[idx], name


# -- dataclasses -----------------------------------------------------------------------------------
def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(raw: Mapping[str, Any], allowed: list[str], where: str) -> None:
    """Unknown keys are errors, with the closest known one and the full list."""
    for key in raw:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed)
            raise ConfigError(f"unknown key {key!r} in {where}{hint} (known: {', '.join(allowed)})")


def yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def build(cls: type[T], raw: Any, where: str) -> T:
    """The dataclass `cls` from a mapping: keys checked, values coerced, `__post_init__` run."""
    if isinstance(raw, cls):
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {raw!r}")
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    keys = {yaml_key(f): f for f in fields}
    check_keys(raw, list(keys), where)
    hints = typing.get_type_hints(cls)
    kwargs = {keys[k].name: coerce(v, hints[keys[k].name], f"{where}.{k}") for k, v in raw.items()}
    missing = [
        yaml_key(f)
        for f in fields
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as the annotation `hint` asks, or a ConfigError naming `where`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if len(options) < len(args):
                return None
        errors = []
        for option in options:
            try:
                return coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where} = {value!r} fits none of {hint}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} = {value!r}: one of {', '.join(map(repr, args))}")
        return value
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(value)
            return text in ("true", "1", "yes", "on")
        if hint is int:
            if isinstance(value, bool) or not float(value).is_integer():
                raise ValueError(value)
            return int(float(value))
        if hint is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if hint is str:
            if isinstance(value, dict | list | bool) or value is None:
                raise TypeError(value)
            return str(value)
        if hint is Path:
            if not isinstance(value, str | Path):
                raise TypeError(value)
            return Path(value)
        if origin in (list, tuple) or hint in (list, tuple):
            if isinstance(value, str):
                value = parse_yaml(value, where)
            items = value if isinstance(value, list | tuple) else [value]
            item = args[0] if args else Any
            out = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(items)]
            return tuple(out) if origin is tuple or hint is tuple else out
        if origin is dict or hint is dict:
            if not isinstance(value, dict):
                raise TypeError(value)
            vt = args[1] if len(args) == 2 else Any
            return {k: coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{where} = {value!r}: expected {name}") from None
    return value


def to_dict(obj: Any) -> Any:
    """A config as plain YAML-ready data (dataclasses by their YAML keys, paths as strings); a config
    with its own layout (``to_dict``: a training stage's section under the stage's name) keeps it, so
    what is dumped loads back."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and hasattr(obj, "to_dict"):
        return to_dict(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {yaml_key(f): to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump(obj: Any) -> str:
    """The resolved config as YAML (what `--print-config` prints)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True)


def load(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    values: Mapping[str, Any] | None = None,
    variables: Mapping[str, str] | None = None,
    what: str = "config",
) -> T:
    """`cls` from the YAML file (if any), then `values` (dotted key -> value: the CLI flags the user
    gave), then the `--set` overrides, with `${VAR}` expanded; every key checked."""
    raw = read_yaml(path, what) if path is not None else {}
    for key, value in (values or {}).items():
        if value is not None:
            set_value(raw, key, value)
    for assignment in overrides or []:
        set_override(raw, assignment)
    return build(cls, expand(raw, variables), what)


# -- command-line wiring ---------------------------------------------------------------------------
def add_config_args(p: Any, what: str, *, file: bool = True) -> None:
    """`--config FILE`, `--set KEY=VALUE` and `--print-config`, the same on every verb."""
    if file:
        p.add_argument("--config", metavar="FILE", help=f"{what} YAML; flags given on the command line win")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable; the value is YAML)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def config_from_args(cls: type[T], args: Any, flags: Mapping[str, Any], what: str) -> T:
    """`cls` from `--config`, then the flags the user gave (`None` = not given), then `--set`."""
    return load(
        cls,
        getattr(args, "config", None),
        list(getattr(args, "overrides", None) or []),
        values=flags,
        what=what,
    )
