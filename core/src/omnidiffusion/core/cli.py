"""A small argparse base for the app commands `omnidiffusion-<app> train | sample | evaluate ...`.

    cli = AppCLI("omnidiffusion-vision", "Image diffusion models.", package="omnidiffusion.vision")
    train = cli.add_command("train", run_train, TrainSettings, help="train a model", default_config="tiny")
    train.add_argument("--out", default="runs/vision")          # command-specific flags, if any

    def main() -> None:                                         # the console script
        raise SystemExit(cli.main())

Every command gets --help, --config NAME_OR_FILE, repeated --set key=value and --print-config. The handler
receives the parsed argparse namespace and the resolved dataclass config; it holds the app's wiring.
`print_json` prints the one JSON object an `evaluate` command reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .config import config_names, load_config, to_dict

Handler = Callable[[argparse.Namespace, Any], "int | None"]


class AppCLI:
    """One `prog COMMAND [--config ...] [--set ...]` parser; commands are added with `add_command`."""

    def __init__(self, prog: str, description: str, *, package: str | None = None) -> None:
        self.package = package
        self.parser = argparse.ArgumentParser(
            prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        self._subparsers = self.parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        self._commands: dict[str, tuple[Handler, type, argparse.ArgumentParser]] = {}

    def add_command(
        self,
        name: str,
        handler: Handler,
        config_cls: type,
        *,
        help: str,
        default_config: str | None = None,
    ) -> argparse.ArgumentParser:
        """Register `name`; `handler(args, config)` runs it. Returns the sub-parser for extra flags."""
        if not dataclasses.is_dataclass(config_cls):
            raise ValueError(f"add_command({name!r}): config_cls must be a dataclass type, got {config_cls!r}")
        if name in self._commands:
            raise ValueError(f"add_command: command {name!r} is already registered")
        sub = self._subparsers.add_parser(
            name, help=help, description=help, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        bundled = config_names(self.package) if self.package else []
        sub.add_argument(
            "--config",
            metavar="NAME_OR_FILE",
            default=default_config,
            help="a bundled config name" + (f" ({', '.join(bundled)})" if bundled else "") + " or a TOML file",
        )
        sub.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one config value, repeatable (e.g. --set lr=1e-4 --set model.channels=32,64)",
        )
        sub.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
        self._commands[name] = (handler, config_cls, sub)
        return sub

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse `argv` (default sys.argv[1:]), load the config, run the command; returns its exit code."""
        args = self.parser.parse_args(argv)
        handler, config_cls, sub = self._commands[args.command]
        try:
            config = load_config(config_cls, args.config, args.overrides, package=self.package)
        except (ValueError, FileNotFoundError) as e:
            sub.error(str(e))  # prints usage + message, exits with status 2
        if args.print_config:
            print_json(to_dict(config))
            return 0
        code = handler(args, config)
        return 0 if code is None else int(code)


def _jsonable(obj: Any) -> Any:
    """Plain JSON data: dataclasses, Paths, numpy/torch scalars and arrays converted; NaN/inf become null."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(to_dict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=str) if isinstance(obj, set | frozenset) else obj
        return [_jsonable(v) for v in items]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays/scalars, torch tensors
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise ValueError(f"print_json: cannot write a {type(obj).__name__} as JSON")


def print_json(obj: Any, *, file: TextIO | None = None) -> None:
    """Print `obj` as one indented JSON document (non-finite floats as null) to stdout or `file`."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    print(text, file=file if file is not None else sys.stdout, flush=True)
