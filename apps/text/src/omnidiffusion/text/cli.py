"""`omnidiffusion-text train | generate | infill | evaluate` (parse, load config, wire; the logic lives elsewhere).

omnidiffusion-text train --out runs/text [--config default] [--set train.steps=500]
omnidiffusion-text generate --checkpoint runs/text --n 8 [--control food=Italian] [--control length=12]
omnidiffusion-text infill --checkpoint runs/text --template "The Eagle is a _ _ near Burger King ."
omnidiffusion-text evaluate --checkpoint runs/text --data valid.txt --n 200 --steps 200

Bad input (`--n 0`, `--device cuda` without a GPU, a template without blanks, a missing --checkpoint or --data)
ends with one line `omnidiffusion-text CMD: error: ...` and exit code 2 (core.cli.AppCLI); --device is auto.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from omnidiffusion.core import METHODS
from omnidiffusion.core.cli import AppCLI, add_device_argument, count_arg, print_json

from .config import SEED_MAX, TextConfig
from .data import named, read_e2e

cli = AppCLI(
    "omnidiffusion-text",
    "Diffusion-LM (continuous) and masked discrete diffusion for controllable text generation.",
    package="omnidiffusion.text",
)


def _sample_config(args: argparse.Namespace, config: TextConfig):
    """config.sample with the command-line --steps/--method/--seed applied (and checked, by SampleConfig)."""
    changes = {k: getattr(args, k) for k in ("steps", "method", "seed") if getattr(args, k, None) is not None}
    return dataclasses.replace(config.sample, **changes)


def _load(args: argparse.Namespace):
    """The --checkpoint's DiffusionLM or MaskedDiffusionLM on --device; a missing or incomplete directory names
    the flag. The masked model has one sampler (core.discrete's ancestral steps): an explicit --method is refused."""
    from .pipeline import load_lm

    try:
        lm = load_lm(args.checkpoint, device=args.device)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--checkpoint: {e}") from None
    if _is_masked(lm) and getattr(args, "method", None) not in (None, "ddpm"):
        raise ValueError(
            f"--method: a masked checkpoint samples with core.discrete's ancestral steps only (omit --method or "
            f"pass ddpm), got {args.method!r}"
        )
    return lm


def _is_masked(lm) -> bool:
    return hasattr(lm, "process")


def _check_out(out: str | None) -> None:
    """Refuse an --out that cannot be written before any sampling time is spent."""
    if not out:
        return
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out: expected a file path, got the directory {out!r}")
    if not path.parent.is_dir():
        raise ValueError(f"--out: expected a file in an existing directory, got {out!r} ({path.parent} does not exist)")


def run_train(args: argparse.Namespace, config: TextConfig) -> int:
    from .train import train_text

    paths = train_text(config, args.out)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 reports
        name = "masked diffusion LM" if config.model.kind == "masked" else "Diffusion-LM"
        print(f"{name}: {paths.model}\nclassifier: {paths.classifier}\nteacher LM: {paths.teacher}")
    return 0


def _parse_controls(items: list[str]) -> dict[str, object]:
    control: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--control: expected FIELD=VALUE or length=N, got {item!r}")
        if key.strip() == "length":
            try:
                control["length"] = int(value)
            except ValueError:
                raise ValueError(f"--control length: expected an integer, got {value!r}") from None
        else:
            control[key.strip()] = value.strip()
    return control


def run_generate(args: argparse.Namespace, config: TextConfig) -> int:
    s = _sample_config(args, config)
    control = _parse_controls(args.control) or None
    _check_out(args.out)
    lm = _load(args)
    if _is_masked(lm):
        texts = lm.generate(
            args.n,
            steps=s.steps,
            control=control,
            seed=s.seed,
            guidance_scale=s.guidance_scale,
            batch_size=s.batch_size,
        )
        _emit(texts, args.out)
        return 0
    fluency = s.length_fluency if control and set(control) == {"length"} else s.semantic_fluency
    texts = lm.generate(
        args.n,
        steps=s.steps,
        method=s.method,
        control=control,
        seed=s.seed,
        guidance_steps=s.guidance_steps,
        guidance_lr=s.guidance_lr,
        fluency=fluency,
        batch_size=s.batch_size,
        progress=True,
    )
    _emit(texts, args.out)
    return 0


def run_infill(args: argparse.Namespace, config: TextConfig) -> int:
    s = _sample_config(args, config)
    _check_out(args.out)
    lm = _load(args)
    if _is_masked(lm):
        texts = lm.infill(args.template, args.n, steps=s.steps, seed=s.seed)
    else:
        texts = lm.infill(args.template, args.n, steps=s.steps, resample=s.infill_resample, seed=s.seed)
    _emit(texts, args.out)
    return 0


def run_evaluate(args: argparse.Namespace, config: TextConfig) -> int:
    from .evaluation import evaluate, load_teacher, load_train_texts

    s = _sample_config(args, config)
    try:
        data = read_e2e(args.data)
    except (OSError, ValueError) as e:
        raise named(e, "--data") from None
    lm = _load(args)
    try:
        teacher, train_texts = load_teacher(args.checkpoint), load_train_texts(args.checkpoint)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--checkpoint: {e}") from None
    result = evaluate(lm, teacher, train_texts, data, args.n, s)
    result["protocol"]["data"] = str(args.data)
    print_json(result)
    return 0


def _emit(texts: list[str], out: str | None) -> None:
    if out:
        Path(out).write_text("\n".join(texts) + "\n", encoding="utf-8")
    for t in texts:
        print(t)


def _sampling_flags(p: argparse.ArgumentParser, *, method: bool = True) -> None:
    p.add_argument("--checkpoint", required=True, help="directory written by `train`")
    p.add_argument("--steps", type=count_arg(), default=None, help="sampling steps (default: sample.steps)")
    if method:  # infilling always runs core.repaint's ancestral steps
        p.add_argument(
            "--method",
            default=None,
            choices=list(METHODS),
            metavar="METHOD",
            help=f"core sampler: ddpm (the paper's) or dpm++2m (few steps); one of {', '.join(METHODS)}",
        )
    p.add_argument(
        "--seed", type=count_arg(minimum=0, maximum=SEED_MAX), default=None, help="sampling seed (default: sample.seed)"
    )
    add_device_argument(p)


train = cli.add_command(
    "train", run_train, TextConfig, help="train Diffusion-LM, its classifier and teacher LM", default_config="default"
)
train.add_argument("--out", default="runs/text", help="checkpoint directory (resumed when it holds a checkpoint)")

generate = cli.add_command(
    "generate", run_generate, TextConfig, help="sample sentences, optionally controlled", default_config="default"
)
_sampling_flags(generate)
generate.add_argument("--n", type=count_arg(), default=8, help="number of sentences")
generate.add_argument(
    "--control",
    action="append",
    default=[],
    metavar="FIELD=VALUE",
    help="a semantic-content target (e.g. food=Italian) or length=N; repeatable",
)
generate.add_argument("--out", default=None, help="also write the sentences to this file, one per line")

infill = cli.add_command(
    "infill", run_infill, TextConfig, help="fill the `_` blanks of a template", default_config="default"
)
_sampling_flags(infill, method=False)
infill.add_argument("--template", required=True, help='words with `_` blanks, e.g. "The Eagle is a _ _ ."')
infill.add_argument("--n", type=count_arg(), default=4, help="number of fillings")
infill.add_argument("--out", default=None, help="also write the fillings to this file, one per line")

evaluate_cmd = cli.add_command(
    "evaluate",
    run_evaluate,
    TextConfig,
    help="control success and fluency vs baselines on E2E-format data (prints JSON)",
    default_config="default",
)
_sampling_flags(evaluate_cmd)
evaluate_cmd.add_argument("--data", required=True, help="held-out E2E file (MR||text lines): the control targets")
evaluate_cmd.add_argument("--n", type=count_arg(), default=200, help="samples per setting")


def main() -> None:
    """Console script entry point (AppCLI prints bad input as one error line and exits 2)."""
    cli.run()
