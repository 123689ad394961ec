"""Dataclass configs: read from TOML, overridden with typed `a.b=value` strings.

    @dataclass
    class Train:
        lr: float = 1e-3
        model: ModelConfig = field(default_factory=ModelConfig)

    cfg = load_config(Train, "tiny", ["lr=3e-4", "model.channels=32,64"], package="omnidiffusion.vision")

A bare name is looked up as `configs/<name>.toml` inside the app's package; anything else is a file path.
TOML tables map to nested dataclasses. Every key is checked against the dataclass field types; an unknown key
raises ValueError listing the valid ones. Supported field types: bool, int, float, str, Path, Literal,
Optional/unions, list[X], tuple[X, ...], tuple[X, Y], dict[str, X] and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import tomllib
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _fields(cls: type) -> dict[str, Any]:
    """{name: resolved type} of the init fields of a dataclass type."""
    try:
        hints = get_type_hints(cls)
    except NameError as e:  # string annotations naming a class the module cannot see (e.g. a local class)
        raise ValueError(f"{cls.__name__}: cannot resolve its field types: {e}") from None
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _current_key(cls: type, key: str) -> str:
    """A key's current name: a config class lists keys it renamed in a class attribute
    `RENAMED = {"old": "new"}`, so files and --set values written with the old name still load."""
    return getattr(cls, "RENAMED", {}).get(key, key)


def _unknown_key(where: str, key: str, valid: Sequence[str]) -> ValueError:
    section = f" in [{where.rstrip('.')}]" if where else ""
    return ValueError(f"unknown config key {key!r}{section}; valid keys: {', '.join(sorted(valid))}")


# ----------------------------------------------------------------------------------------------------------------
# Checking values that already have a Python type (from TOML, JSON or after parsing override text)


def _check(value: Any, tp: Any, where: str) -> Any:
    """Return `value` converted to `tp` (int -> float, list -> tuple, dict -> dataclass) or raise ValueError."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except ValueError:
                pass
        raise ValueError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        for lit in args:
            if value == lit and type(value) is type(lit):
                return lit
        raise ValueError(f"{where}: expected one of {list(args)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a table of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where=f"{where}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected bool (true/false), got {value!r}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where}: expected int, got {value!r}")
        return value
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{where}: expected float, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected str, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ValueError(f"{where}: expected a path string, got {value!r}")
        return Path(value)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected {_type_name(tp)} (a list), got {value!r}")
        if (origin or tp) is list:
            elem = args[0] if args else Any
            return [_check(v, elem, f"{where}[{i}]") for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args:
            if len(value) != len(args):
                raise ValueError(f"{where}: expected {len(args)} items ({_type_name(tp)}), got {len(value)}")
            return tuple(_check(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        return tuple(value)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        key_tp, val_tp = args if args else (Any, Any)
        return {_check(k, key_tp, where): _check(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise ValueError(f"{where}: field type {_type_name(tp)} is not supported by the config loader")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build dataclass `cls` from a (nested) mapping, checking every key and value against the field types."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or cls.__name__}: expected a table, got {data!r}")
    fields = _fields(cls)
    kwargs = {}
    for old, value in data.items():
        key = _current_key(cls, old)
        if key not in fields:
            raise _unknown_key(where, old, list(fields))
        if key in kwargs:
            raise ValueError(f"{where}{key}: given twice (as {key!r} and under its old name {old!r})")
        kwargs[key] = _check(value, fields[key], f"{where}{key}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{where or cls.__name__}: {e}") from None


def to_dict(config: Any) -> Any:
    """A dataclass config as JSON-like data (tuples -> lists, Paths -> str), e.g. to print or store it."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, list | tuple):
        return [to_dict(v) for v in config]
    if isinstance(config, Mapping):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


# ----------------------------------------------------------------------------------------------------------------
# Parsing override text by the field's type


def _toml_value(text: str, where: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{where}: cannot parse {text!r} as a TOML value: {e}") from None


def _parse_text(text: str, tp: Any, where: str) -> Any:
    """Turn override text into a Python value of type `tp` (not yet checked)."""
    origin, args = get_origin(tp), get_args(tp)
    stripped = text.strip()
    if tp is Any:
        try:
            return _toml_value(stripped, where)
        except ValueError:
            return text
    if _is_union(tp):
        if stripped.lower() in _NONE and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(_parse_text(text, arg, where), arg, where)
            except ValueError:
                pass
        raise ValueError(f"{where}: expected {_type_name(tp)}, got {text!r}")
    if origin is Literal:
        for lit in args:
            try:
                if _parse_text(text, type(lit), where) == lit:
                    return lit
            except ValueError:
                pass
        raise ValueError(f"{where}: expected one of {list(args)}, got {text!r}")
    if tp is bool:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError(f"{where}: expected bool (true/false), got {text!r}")
    if tp is int:
        try:
            return int(stripped.replace("_", ""))
        except ValueError:
            raise ValueError(f"{where}: expected int, got {text!r}") from None
    if tp is float:
        try:
            return float(stripped)
        except ValueError:
            raise ValueError(f"{where}: expected float, got {text!r}") from None
    if tp is str:
        return text
    if tp is Path:
        return Path(stripped)
    if origin in (list, tuple) or tp in (list, tuple):
        if stripped.startswith("["):
            return _toml_value(stripped, where)
        items = [] if not stripped else [s.strip() for s in stripped.split(",")]
        if len(args) == 2 and args[1] is Ellipsis:
            elems = [args[0]] * len(items)
        elif (origin or tp) is tuple and args:
            if len(items) != len(args):
                raise ValueError(f"{where}: expected {len(args)} comma-separated items, got {text!r}")
            elems = list(args)
        else:
            elems = [args[0] if args else Any] * len(items)
        return [_parse_text(item, elem, where) for item, elem in zip(items, elems, strict=True)]
    if dataclasses.is_dataclass(tp) or origin is dict or tp is dict:
        if not stripped.startswith("{"):
            raise ValueError(f"{where}: is a table; set one of its keys ({where}.key=value) or give {{...}}")
        return _toml_value(stripped, where)
    return _toml_value(stripped, where)


def apply_override(config: T, override: str) -> T:
    """Return a copy of dataclass `config` with one 'a.b.c=value' override applied (type-checked)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {override!r}: expected key=value, e.g. train.lr=1e-4")
    return _set(config, key.strip().split("."), text, "")


def _set(obj: Any, keys: list[str], text: str, where: str) -> Any:
    fields = _fields(type(obj))
    name = _current_key(type(obj), keys[0])
    if name not in fields:
        raise _unknown_key(where, keys[0], list(fields))
    path = f"{where}{name}"
    if len(keys) == 1:
        value = _check(_parse_text(text, fields[name], path), fields[name], path)
    else:
        sub = getattr(obj, name)
        if not dataclasses.is_dataclass(sub):
            raise ValueError(f"{path}: is a {_type_name(fields[name])}, not a table; it has no key {keys[1]!r}")
        value = _set(sub, keys[1:], text, f"{path}.")
    return dataclasses.replace(obj, **{name: value})


# ----------------------------------------------------------------------------------------------------------------
# Loading


def config_names(package: str) -> list[str]:
    """Names of the TOML configs bundled in `package`/configs/ (without .toml)."""
    folder = importlib.resources.files(package).joinpath("configs")
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(name_or_path: str | Path, package: str | None) -> tuple[dict[str, Any], str]:
    path = Path(name_or_path)
    if path.is_file():
        source, text = str(path), path.read_bytes()
    elif path.suffix == ".toml" or len(path.parts) > 1 or package is None:
        where = "" if package is None else f" (and {str(name_or_path)!r} is not a bundled config name)"
        raise FileNotFoundError(f"config {str(name_or_path)!r}: no such file{where}")
    else:
        resource = importlib.resources.files(package).joinpath("configs", f"{name_or_path}.toml")
        if not resource.is_file():
            names = ", ".join(config_names(package)) or "none"
            raise FileNotFoundError(
                f"config {name_or_path!r}: no file of that name and no bundled config {package}/configs/"
                f"{name_or_path}.toml; bundled configs: {names}"
            )
        source, text = f"{package}/configs/{name_or_path}.toml", resource.read_bytes()
    try:
        return tomllib.loads(text.decode("utf-8")), source
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{source}: not valid TOML: {e}") from None


def load_config(
    cls: type[T],
    name_or_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    package: str | None = None,
) -> T:
    """Build dataclass `cls` from defaults, then a TOML file or bundled config name, then overrides.

    `name_or_path`: None (defaults only), a TOML file path, or a bare name found as `configs/<name>.toml` in
    `package` (e.g. "omnidiffusion.vision"). `overrides`: strings 'a.b=value', applied in order; values are
    parsed by the field type (bool: true/false, lists: 1,2,3 or [1, 2, 3], Optional: none).
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"load_config: cls must be a dataclass type, got {cls!r}")
    if isinstance(overrides, str):
        raise ValueError("load_config: overrides must be a sequence of 'key=value' strings, not one string")
    data, source = ({}, "defaults") if name_or_path is None else _read_toml(name_or_path, package)
    try:
        config = from_dict(cls, data)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    for override in overrides:
        config = apply_override(config, override)
    return config

