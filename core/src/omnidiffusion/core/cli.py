"""A small argparse base for the app commands `omnidiffusion-<app> train | sample | evaluate ...`.

    cli = AppCLI("omnidiffusion-vision", "Image diffusion models.", package="omnidiffusion.vision")
    cli.add_command("train", run_train, VisionConfig, help="train a model", default_config="ddpm-digits",
                    out=("runs/vision", "checkpoint directory"), resume=True)
    cli.add_command("sample", run_sample, VisionConfig, help="draw images", checkpoint="required",
                    out=("samples.png", "image grid to write"))

    main = cli.run                                              # the console script

Every command gets --help, --config NAME_OR_FILE, repeated --set key=value, --print-config, and (unless
device=False) --device (default auto) and --threads; `checkpoint=`, `out=` and `resume=` add --checkpoint,
--out and --resume with one name, type and help in every app. The handler receives the parsed argparse
namespace and the resolved dataclass config; it holds the app's wiring.

The run-config contract: a command with --checkpoint starts from the config `train` stored in that directory
(io.save_run_config) and applies --set on top; --config is refused beside it, and no command-specific flag
may stand for a config key (use --set sampler.steps=50, not --steps). A --checkpoint folder without a stored
config (a diffusers folder) starts from --config / the command's default like any other command.
`print_json` prints the one JSON object an `evaluate` command reports.

Errors: bad usage (an unknown flag, `--n -3`, `--device cuda` without a GPU, a bad `--set`) and the ValueError /
OSError a handler raises for bad input end the command with ONE line on stderr, `prog: error: <message>`, and
exit code 2; no traceback. Typed flags share the checks of `omnidiffusion.core.checks`:

    sub.add_argument("--n", type=count_arg(), default=16)            # an integer >= 1
    sub.add_argument("--limit", type=count_arg(minimum=0), default=0)
    add_device_argument(sub)                                          # --device, default auto, checked
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import torch

from .checks import positive_int, real_number, resolve_device
from .config import config_names, load_config, to_dict
from .io import has_run_config, load_run_config

Handler = Callable[[argparse.Namespace, Any], "int | None"]


@dataclasses.dataclass(frozen=True)
class _Command:
    handler: Handler
    config_cls: type
    parser: argparse.ArgumentParser
    default_config: str | None
    takes_checkpoint: bool


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (`prog: error: message`) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _print_error(self.prog, message)
        raise SystemExit(2)


def _print_error(prog: str, message: Any) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


def count_arg(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """argparse `type=` for an integer flag in [minimum, maximum] (argparse names the flag in the error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = text
        try:
            return positive_int(value, "value", minimum=minimum, maximum=maximum)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None

    parse.__name__ = "integer"
    return parse


def number_arg(
    low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """argparse `type=` for a finite float flag inside [low, high] (`*_open` excludes that end)."""

    def parse(text: str) -> float:
        try:
            value: Any = float(text)
        except ValueError:
            value = text
        try:
            return real_number(value, "value", low=low, high=high, low_open=low_open, high_open=high_open)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None

    parse.__name__ = "number"
    return parse


def device_arg(text: str) -> torch.device:
    """argparse `type=` for --device: auto | cpu | cuda | cuda:N, refused when that GPU is not there."""
    try:
        return resolve_device(text, name="value")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None


def add_device_argument(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """The common --device flag; the parsed value is a checked torch.device."""
    parser.add_argument(
        "--device", type=device_arg, default=default, help="auto (cuda when available, else cpu) | cpu | cuda | cuda:N"
    )


@contextlib.contextmanager
def as_flags(**names: str) -> Iterator[None]:
    """Inside a command: re-raise the API's ValueError "<param>: ..." as "<flag>: ..." for each param=flag given.

    The Python API names its parameters, the command line names its flags; messages that start with anything
    else pass through unchanged.

        with as_flags(image="--input", n_samples="--n"):
            out = pipeline.run(image, n_samples=args.n)
    """
    try:
        yield
    except ValueError as e:
        head, sep, rest = str(e).partition(": ")
        if sep and head in names:
            raise ValueError(f"{names[head]}: {rest}") from None
        raise


def output_file(path: str | Path | None, flag: str) -> Path | None:
    """Check, before any work is spent, that `path` can be written as a file: not a folder, parent folder exists."""
    if path is None or path == "":
        return None
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{flag}: {out} is a directory, expected a file path")
    if not out.parent.is_dir():
        raise ValueError(
            f"{flag}: expected a file in an existing folder, got {str(out)!r} ({out.parent} does not exist)"
        )
    return out


class AppCLI:
    """One `prog COMMAND [--config ...] [--set ...]` parser; commands are added with `add_command`."""

    def __init__(self, prog: str, description: str, *, package: str | None = None) -> None:
        self.package = package
        self.prog = prog
        self.parser = _Parser(
            prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        self._subparsers = self.parser.add_subparsers(
            dest="command", metavar="COMMAND", required=True, parser_class=_Parser
        )
        self._commands: dict[str, _Command] = {}

    def add_command(
        self,
        name: str,
        handler: Handler,
        config_cls: type,
        *,
        help: str,
        default_config: str | None = None,
        checkpoint: Literal["required", "optional"] | None = None,
        out: tuple[str | None, str] | None = None,
        resume: bool = False,
        device: bool = True,
    ) -> argparse.ArgumentParser:
        """Register `name`; `handler(args, config)` runs it. Returns the sub-parser for extra flags.

        The common flags, named and typed the same in every app:
          --config, --set, --print-config   always
          --device (default auto), --threads   unless device=False (commands that only convert files)
          --checkpoint DIR   with checkpoint="required" | "optional": the run starts from the config stored in
                             DIR (run_config.json) and applies --set; --config is then refused
          --out PATH         with out=(default, help)
          --resume           with resume=True (train: continue from the checkpoint in --out)
        """
        if not dataclasses.is_dataclass(config_cls):
            raise ValueError(f"add_command({name!r}): config_cls must be a dataclass type, got {config_cls!r}")
        if name in self._commands:
            raise ValueError(f"add_command: command {name!r} is already registered")
        if checkpoint not in (None, "required", "optional"):
            raise ValueError(f"add_command({name!r}): checkpoint must be None, 'required' or 'optional'")
        sub = self._subparsers.add_parser(
            name, help=help, description=help, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        bundled = config_names(self.package) if self.package else []
        sub.add_argument(
            "--config",
            metavar="NAME_OR_FILE",
            default=None,
            help="a bundled config name" + (f" ({', '.join(bundled)})" if bundled else "") + " or a TOML file"
            + (f"; default {default_config}" if default_config else "")
            + ("; not with --checkpoint, which brings its own" if checkpoint else ""),
        )
        sub.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one config value, repeatable (e.g. --set sampler.steps=50 --set model.channels=32,64)",
        )
        sub.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
        if checkpoint is not None:
            sub.add_argument(
                "--checkpoint",
                metavar="DIR",
                required=checkpoint == "required",
                default=None,
                help="a directory written by `train`; its stored config is the starting point of --set",
            )
        if out is not None:
            out_default, out_help = out
            sub.add_argument("--out", metavar="PATH", default=out_default, help=out_help)
        if resume:
            sub.add_argument(
                "--resume",
                action=argparse.BooleanOptionalAction,
                default=None,
                help="continue from the checkpoint in --out (default: when there is one); --no-resume refuses one",
            )
        if device:
            add_device_argument(sub)
            sub.add_argument(
                "--threads", type=count_arg(), default=None, metavar="N",
                help="CPU threads for torch (default: torch's own choice)",
            )
        self._commands[name] = _Command(handler, config_cls, sub, default_config, checkpoint is not None)
        return sub

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse `argv` (default sys.argv[1:]), load the config, run the command; returns its exit code.

        Bad usage and bad input (ValueError, OSError such as a missing or unreadable file, an out-of-memory
        error, the FloatingPointError of a sampler that produced non-finite values) print one line
        `prog: error: ...` and return 2; other exceptions are bugs and propagate.
        """
        try:
            args = self.parser.parse_args(argv)
        except SystemExit as e:  # --help (0) or a usage error (2, already printed)
            return 0 if e.code is None else int(e.code) if isinstance(e.code, int) else 2
        command = self._commands[args.command]
        prog = command.parser.prog
        try:
            config = self._resolve_config(command, args)
        except (ValueError, FileNotFoundError) as e:
            _print_error(prog, e)
            return 2
        if args.print_config:
            print_json(to_dict(config))
            return 0
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        try:
            code = command.handler(args, config)
        except torch.OutOfMemoryError as e:
            first = str(e).split(".")[0]
            _print_error(prog, f"out of memory: {first}; use a smaller input, batch or --device cpu")
            return 2
        except FloatingPointError as e:  # core.sample's non-finite output: a model or input problem, reported
            _print_error(prog, e)
            return 2
        except (ValueError, OSError) as e:
            if isinstance(e, OSError) and e.filename is not None and e.strerror:
                e = f"{e.filename}: {e.strerror}"
            _print_error(prog, e)
            return 2
        return 0 if code is None else int(code)

    @property
    def commands(self) -> dict[str, tuple[type, argparse.ArgumentParser]]:
        """{command name: (its config class, its sub-parser)}, for tests and documentation tools."""
        return {name: (c.config_cls, c.parser) for name, c in self._commands.items()}

    def _resolve_config(self, command: _Command, args: argparse.Namespace) -> Any:
        """The run config: the checkpoint's stored one (when the command takes --checkpoint and it holds one),
        else the --config file or the command's default; then every --set in order."""
        ckpt = getattr(args, "checkpoint", None) if command.takes_checkpoint else None
        if ckpt is not None and has_run_config(ckpt):
            if args.config is not None:
                raise ValueError(
                    "--config: not used with --checkpoint, which stores the config it was trained with; "
                    "change single values with --set"
                )
            return load_run_config(ckpt, command.config_cls, args.overrides)
        if ckpt is not None and not Path(ckpt).is_dir():
            state = "is a file" if Path(ckpt).exists() else "no such directory"
            raise FileNotFoundError(f"--checkpoint: {ckpt}: {state} (expected a directory written by `train`)")
        name = args.config if args.config is not None else command.default_config
        return load_config(command.config_cls, name, args.overrides, package=self.package)

    def run(self, argv: Sequence[str] | None = None) -> None:
        """Console-script entry: `raise SystemExit(self.main(argv))`."""
        raise SystemExit(self.main(argv))


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
