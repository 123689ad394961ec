"""Save and load models as a directory holding config.json + model.safetensors.

    save_pretrained(model, "runs/x")          # config.json: class + constructor kwargs; model.safetensors
    model = load_pretrained("runs/x")         # rebuilds the class, loads the weights, returns it in eval mode
    save_run_config("runs/x", config)         # run_config.json: the app's whole resolved dataclass config
    p = open_pretrained("runs/x", UNet, config_cls=VisionConfig, device="auto")   # what pipelines call

A model records its own constructor kwargs by subclassing `ConfigurableModule`. Loading only imports classes
under the `omnidiffusion.` namespace (or the `cls` the caller passes); nothing is ever unpickled: tensors are
read with safetensors, everything else is JSON. Every file is written to a temporary name and moved into place
with os.replace, so a kill never leaves a half-written file under the final name.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .checks import resolve_device
from .config import apply_override, from_dict, to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "omnidiffusion-pretrained"
FORMAT_VERSION = 1
TRUSTED_NAMESPACE = "omnidiffusion"


# ----------------------------------------------------------------------------------------------------------------
# Atomic files


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, fsync it, then os.replace it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    text = json.dumps(obj, indent=2) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    _atomic_write(Path(path), write)


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file; FileNotFoundError/ValueError name the file and `what` it should hold."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON (expected {what}): {e}") from None


def save_tensors(path: str | Path, tensors: Mapping[str, Tensor]) -> None:
    """Write a flat {name: tensor} mapping to a safetensors file atomically.

    Tensors are copied to contiguous CPU memory first, so tied (shared) weights are simply stored twice.
    """
    flat = {}
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise ValueError(f"save_tensors: entry {name!r} is a {type(t).__name__}, expected a torch.Tensor")
        flat[name] = t.detach().to("cpu", copy=True).contiguous()
    _atomic_write(Path(path), lambda tmp: save_file(flat, tmp))


def load_tensors(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Read a safetensors file; a missing, truncated or foreign file raises FileNotFoundError/ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a safetensors weights file)")
    try:
        return load_file(path, device=str(map_location))
    except SafetensorError as e:
        with open(path, "rb") as f:
            head = f.read(4)
        hint = ""
        if head[:2] == b"PK" or head[:1] == b"\x80":
            hint = " It looks like a torch.save/pickle file; omnidiffusion never unpickles files."
        raise ValueError(
            f"{path}: not a readable safetensors file (truncated or another format): {e}.{hint}"
        ) from None


def _refusal_reason(e: Exception) -> str:
    """The part of torch's weights-only refusal that names the cause (ANSI styling and advice removed)."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(e).splitlines() if ln.strip())
    m = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if m:
        return f"the file holds a {m[1]} object"
    m = re.search(r"WeightsUnpickler error: (.*)", text)
    return (m[1] if m and m[1].strip() else text or "no message")[:160]


def read_state_dict(path: str | Path, name: str = "weights") -> dict[str, Tensor]:
    """A flat {name: tensor} state dict from a .safetensors file or a weights-only torch file, never unpickled.

    A torch file may nest the state dict under "state_dict", "model_state_dict" or "model" (common checkpoint
    layouts); a "module." prefix (DataParallel) is dropped. `name` is the setting or flag the path came from.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: {path}: no such file (expected .safetensors, or .pt/.pth weights)")
    if path.suffix == ".safetensors":
        state = load_tensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure of the restricted unpickler is a refusal
            raise ValueError(
                f"{name}: {path}: refused: torch.load(weights_only=True) cannot read it ({type(e).__name__}: "
                f"{_refusal_reason(e)}); weights are never unpickled, save them as safetensors or as a plain state dict"
            ) from None
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{name}: {path}: expected a non-empty {{name: tensor}} state dict, got {type(state).__name__}"
        )
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_matching_state(model: nn.Module, state: Mapping[str, Tensor], where: str) -> nn.Module:
    """Load `state` into `model` in place when every name and shape matches (BatchNorm `num_batches_tracked`
    counters may be absent, as in older checkpoints); otherwise a ValueError lists what differs. `where` names
    the source in the message ("flag: path")."""
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{where}: weights do not match {type(model).__name__}: missing {missing[:6]}"
            f"{' ...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}"
        )
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state.items() if v.shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(f"{where}: tensor shapes differ from {type(model).__name__} (file vs model): {wrong[:4]}")
    model.load_state_dict(dict(state), strict=False)
    return model


# ----------------------------------------------------------------------------------------------------------------
# Recording constructor kwargs


class ConfigurableModule(nn.Module):
    """nn.Module mixin that records the kwargs its constructor was called with (the saved config).

    Subclass it and write __init__ as usual; `self.init_kwargs` then holds every constructor argument by name
    (defaults filled in). Values must be JSON-like (None, bool, int, float, str, lists/tuples, dicts with str
    keys) or dataclasses of those; tuples come back as lists after a save/load round trip.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_init(cls.__init__)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor kwargs of the outermost class, as passed (a shallow copy)."""
        return dict(self.__dict__.get("_init_kwargs", {}))


def _recording_init(init):
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args: Any, **kwargs: Any) -> None:
        # Only the outermost __init__ records: a subclass calling super().__init__(...) must not overwrite it.
        depth = self.__dict__.get("_init_depth", 0)
        object.__setattr__(self, "_init_depth", depth + 1)
        try:
            init(self, *args, **kwargs)
        finally:
            object.__setattr__(self, "_init_depth", depth)
        if depth == 0:
            object.__setattr__(self, "_init_kwargs", _bind_kwargs(signature, type(self), self, args, kwargs))

    return wrapper


def _bind_kwargs(signature: inspect.Signature, cls: type, self, args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = signature.bind(self, *args, **kwargs)
    bound.apply_defaults()
    recorded: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if i == 0:  # self
            continue
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError(f"{cls.__name__}: a ConfigurableModule cannot record *{name} arguments")
        elif kind is inspect.Parameter.VAR_KEYWORD:
            recorded.update(value)
        else:
            recorded[name] = value
    return recorded


# ----------------------------------------------------------------------------------------------------------------
# Config encoding: JSON values, dataclasses as {"__dataclass__": "module:Qualname", "fields": {...}}


def class_path(cls: type) -> str:
    """'module:Qualname' of a class, the form config.json stores."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: dict keys must be str to be saved as JSON, got {type(k).__name__}")
            out[k] = _encode(v, f"{where}.{k}")
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
        return {"__dataclass__": class_path(type(value)), "fields": fields}
    raise ValueError(
        f"{where}: a {type(value).__name__} cannot be saved in config.json; constructor kwargs must be JSON-like "
        "(None, bool, int, float, str, list, dict with str keys) or dataclasses of those"
    )


def _decode(value: Any, trusted_modules: frozenset[str], where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, trusted_modules, where) for v in value]
    if isinstance(value, dict):
        if "__dataclass__" in value:
            cls = resolve_class(value["__dataclass__"], trusted_modules=trusted_modules, where=where)
            if not dataclasses.is_dataclass(cls):
                raise ValueError(f"{where}: {value['__dataclass__']} is not a dataclass")
            return cls(**_decode(value.get("fields", {}), trusted_modules, where))
        return {k: _decode(v, trusted_modules, where) for k, v in value.items()}
    return value


def resolve_class(path: str, *, trusted_modules: frozenset[str] = frozenset(), where: str = "class") -> type:
    """Import the class named by 'module:Qualname', refusing modules outside the omnidiffusion namespace.

    `trusted_modules` lists extra module names that may be used (those of a class the caller passed in).
    """
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"{where}: expected 'module:Qualname', got {path!r}")
    module_name, qualname = path.split(":")
    trusted = module_name == TRUSTED_NAMESPACE or module_name.startswith(TRUSTED_NAMESPACE + ".")
    if not (trusted or module_name in trusted_modules):
        raise ValueError(
            f"{where}: refusing to import {path!r}: only classes under the '{TRUSTED_NAMESPACE}.' namespace are "
            "loaded from a config file; pass cls=... to load any other class"
        )
    parts = qualname.split(".")
    if not all(p.isidentifier() for p in parts) or not all(p.isidentifier() for p in module_name.split(".")):
        raise ValueError(f"{where}: {path!r} is not an importable class path")
    try:
        obj: Any = importlib.import_module(module_name)
        for p in parts:
            obj = getattr(obj, p)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{where}: cannot import {path!r}: {e}") from None
    if not isinstance(obj, type):
        raise ValueError(f"{where}: {path!r} is not a class")
    return obj


# ----------------------------------------------------------------------------------------------------------------
# Pretrained directories


def save_pretrained(
    model: nn.Module,
    directory: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write `directory`/config.json (class path + constructor kwargs) and `directory`/model.safetensors.

    `config` gives the constructor kwargs explicitly; by default a ConfigurableModule's recorded kwargs are
    used, or else a `model.config` dict. A module with none of these is saved with "kwargs": null (its
    weights can then be read back with `load_weights`). `metadata` is any JSON-like extra (schedule,
    prediction type, data stats ...) that `read_pretrained_config` returns. Returns the directory.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"save_pretrained: model must be an nn.Module, got {type(model).__name__}")
    directory = Path(directory)
    if config is None and isinstance(model, ConfigurableModule):
        config = model.init_kwargs
    elif config is None and isinstance(getattr(model, "config", None), Mapping):
        config = model.config  # the convention of modules that keep their kwargs in a `config` dict (core.nn.UNet)
    kwargs = None if config is None else _encode(dict(config), "config")
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": class_path(type(model)),
        "kwargs": kwargs,
        "metadata": _encode(dict(metadata or {}), "metadata"),
    }
    # Weights first, config last: a directory with a config.json always has its weights beside it.
    save_tensors(directory / WEIGHTS_NAME, model.state_dict())
    write_json(directory / CONFIG_NAME, record)
    return directory


def read_pretrained_config(directory: str | Path) -> dict[str, Any]:
    """Read and validate `directory`/config.json; returns its dict (class, kwargs, metadata)."""
    path = Path(directory) / CONFIG_NAME
    record = read_json(path, "an omnidiffusion config.json written by save_pretrained")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not an omnidiffusion config (expected a JSON object with \"format\": \"{FORMAT}\")"
        )
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {record.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    if not isinstance(record.get("class"), str):
        raise ValueError(f"{path}: missing \"class\" entry (expected 'module:Qualname')")
    if record.get("kwargs") is not None and not isinstance(record["kwargs"], dict):
        raise ValueError(f"{path}: \"kwargs\" must be a JSON object or null, got {type(record['kwargs']).__name__}")
    return record


def load_weights(
    model: nn.Module, directory: str | Path, *, map_location: str | torch.device = "cpu", strict: bool = True
) -> nn.Module:
    """Load `directory`/model.safetensors (or the given .safetensors file) into an existing model in place."""
    path = Path(directory)
    if path.is_dir() or path.suffix != ".safetensors":
        path = path / WEIGHTS_NAME
    state = load_tensors(path, map_location=map_location)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path}: weights do not match {type(model).__name__}: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}"
        )
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit {type(model).__name__}: {e}") from None
    return model


def load_pretrained(
    directory: str | Path,
    *,
    cls: type[nn.Module] | None = None,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
) -> nn.Module:
    """Rebuild the model saved by `save_pretrained` in `directory` and return it in eval mode.

    The class comes from config.json and must live under `omnidiffusion.`; pass `cls` to use another class
    (it is trusted because the caller already imported it).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory (expected a save_pretrained directory)")
    record = read_pretrained_config(directory)
    trusted = frozenset() if cls is None else frozenset({cls.__module__})
    if cls is None:
        cls = resolve_class(record["class"], where=str(directory / CONFIG_NAME))
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{directory / CONFIG_NAME}: {record['class']!r} is not an nn.Module class")
    if record["kwargs"] is None:
        raise ValueError(
            f"{directory / CONFIG_NAME}: records no constructor kwargs (the model was not a ConfigurableModule); "
            "build the model yourself and call load_weights(model, directory)"
        )
    kwargs = _decode(record["kwargs"], trusted, str(directory / CONFIG_NAME))
    model = cls(**kwargs)
    load_weights(model, directory, strict=strict)
    return model.to(map_location).eval()


# ----------------------------------------------------------------------------------------------------------------
# The run config: the whole resolved app config, stored beside the weights


RUN_CONFIG_NAME = "run_config.json"
RUN_CONFIG_FORMAT = "omnidiffusion-run-config"


def save_run_config(directory: str | Path, config: Any) -> Path:
    """Write the resolved dataclass `config` of a run to `directory`/run_config.json (atomically).

    Every app's `train` stores its whole config this way; inference commands start from it (`load_run_config`)
    and apply the user's `--set` overrides, so a checkpoint samples the way it was trained unless told otherwise.
    """
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise ValueError(f"save_run_config: config must be a dataclass instance, got {type(config).__name__}")
    path = Path(directory) / RUN_CONFIG_NAME
    record = {"format": RUN_CONFIG_FORMAT, "class": class_path(type(config)), "config": to_dict(config)}
    write_json(path, record)
    return path


def has_run_config(directory: str | Path) -> bool:
    """Whether `directory` holds a run_config.json (a checkpoint written by an app's `train`)."""
    return (Path(directory) / RUN_CONFIG_NAME).is_file()


def load_run_config(directory: str | Path, config_cls: type, overrides: Sequence[str] = ()) -> Any:
    """The config stored by `save_run_config`, rebuilt as `config_cls` (every key checked) with `overrides` applied.

    The stored class name is not imported: the caller names the class, so a checkpoint of another app is refused
    by its keys, not trusted by its name.
    """
    path = Path(directory) / RUN_CONFIG_NAME
    record = read_json(path, "the run config an omnidiffusion `train` stores beside its weights")
    if not isinstance(record, dict) or record.get("format") != RUN_CONFIG_FORMAT or "config" not in record:
        raise ValueError(f"{path}: not an omnidiffusion run config (expected \"format\": \"{RUN_CONFIG_FORMAT}\")")
    stored = record.get("class", "")
    if isinstance(stored, str) and stored.rpartition(":")[2] not in ("", config_cls.__qualname__):
        raise ValueError(f"{path}: holds a {stored.rpartition(':')[2]}, expected a {config_cls.__qualname__}")
    try:
        config = from_dict(config_cls, record["config"])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    for override in overrides:
        config = apply_override(config, override)
    return config


@dataclasses.dataclass
class Pretrained:
    """What `open_pretrained` read: the model (eval mode, on `device`), its metadata and the run config."""

    directory: Path
    model: nn.Module
    metadata: dict[str, Any]
    config: Any
    device: torch.device


def open_pretrained(
    directory: str | Path,
    model_cls: type[nn.Module] | tuple[type[nn.Module], ...] = nn.Module,
    *,
    config_cls: type | None = None,
    device: str | torch.device = "cpu",
    subfolder: str = "",
    what: str = "a checkpoint written by `train`",
) -> Pretrained:
    """The one loading path of every app pipeline's `from_pretrained`.

    Checks `device` first (auto | cpu | cuda | cuda:N; a missing GPU is a ValueError naming `device`), then that
    `directory` is a folder, loads the model saved in `directory`/`subfolder` onto the device and checks it is a
    `model_cls`, and, with `config_cls`, reads the run config (`load_run_config`). Errors name the directory and
    `what` it should have been.
    """
    device = resolve_device(device)
    directory = Path(directory)
    if not directory.is_dir():
        state = "is a file" if directory.exists() else "no such directory"
        raise FileNotFoundError(f"{directory}: {state} (expected {what})")
    folder = directory / subfolder if subfolder else directory
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{folder}: holds no {CONFIG_NAME} (expected {what})")
    record = read_pretrained_config(folder)
    classes = model_cls if isinstance(model_cls, tuple) else (model_cls,)
    cls = resolve_class(record["class"], trusted_modules=frozenset(c.__module__ for c in classes),
                        where=str(folder / CONFIG_NAME))
    if not (isinstance(cls, type) and issubclass(cls, classes)):
        names = " or ".join(c.__name__ for c in classes)
        raise ValueError(f"{folder}: holds a {cls.__name__}, expected a {names} ({what})")
    model = load_pretrained(folder, cls=cls, map_location=device)
    config = None if config_cls is None else load_run_config(directory, config_cls)
    return Pretrained(directory, model, dict(record.get("metadata") or {}), config, device)
