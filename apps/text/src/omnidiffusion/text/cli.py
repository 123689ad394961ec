"""`omnidiffusion-text train | generate | infill | evaluate` (parse, load config, wire; the logic lives elsewhere).

omnidiffusion-text train --out runs/text [--config default] [--set train.steps=500]
omnidiffusion-text generate --checkpoint runs/text --n 8 [--control food=Italian] [--control length=12]
omnidiffusion-text infill --checkpoint runs/text --template "The Eagle is a _ _ near Burger King ."
omnidiffusion-text evaluate --checkpoint runs/text --data valid.txt --n 200 --steps 200
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, print_json

from .config import TextConfig
from .data import read_e2e

cli = AppCLI(
    "omnidiffusion-text",
    "Diffusion-LM: controllable text generation by continuous diffusion.",
    package="omnidiffusion.text",
)


def _sample_config(args: argparse.Namespace, config: TextConfig):
    """config.sample with the command-line --steps/--method/--seed applied."""
    changes = {k: getattr(args, k) for k in ("steps", "method", "seed") if getattr(args, k, None) is not None}
    return dataclasses.replace(config.sample, **changes)


def run_train(args: argparse.Namespace, config: TextConfig) -> int:
    from .train import train_text

    paths = train_text(config, args.out)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 reports
        print(f"Diffusion-LM: {paths.model}\nclassifier: {paths.classifier}\nteacher LM: {paths.teacher}")
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
    from .pipeline import DiffusionLM

    s = _sample_config(args, config)
    lm = DiffusionLM.from_pretrained(args.checkpoint, device=args.device)
    control = _parse_controls(args.control) or None
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
    from .pipeline import DiffusionLM

    s = _sample_config(args, config)
    lm = DiffusionLM.from_pretrained(args.checkpoint, device=args.device)
    texts = lm.infill(args.template, args.n, steps=s.steps, resample=s.infill_resample, seed=s.seed)
    _emit(texts, args.out)
    return 0


def run_evaluate(args: argparse.Namespace, config: TextConfig) -> int:
    from .evaluation import evaluate, load_teacher, load_train_texts
    from .pipeline import DiffusionLM

    s = _sample_config(args, config)
    lm = DiffusionLM.from_pretrained(args.checkpoint, device=args.device)
    result = evaluate(
        lm, load_teacher(args.checkpoint), load_train_texts(args.checkpoint), read_e2e(args.data), args.n, s
    )
    result["protocol"]["data"] = str(args.data)
    print_json(result)
    return 0


def _emit(texts: list[str], out: str | None) -> None:
    if out:
        Path(out).write_text("\n".join(texts) + "\n", encoding="utf-8")
    for t in texts:
        print(t)


def _sampling_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="directory written by `train`")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: sample.steps of the config)")
    p.add_argument("--method", default=None, help="core sampler: ddpm (the paper's) or dpm++2m (few steps)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: sample.seed)")
    p.add_argument("--device", default="cpu", help="torch device")


train = cli.add_command(
    "train", run_train, TextConfig, help="train Diffusion-LM, its classifier and teacher LM", default_config="default"
)
train.add_argument("--out", default="runs/text", help="checkpoint directory (resumed when it holds a checkpoint)")

generate = cli.add_command(
    "generate", run_generate, TextConfig, help="sample sentences, optionally controlled", default_config="default"
)
_sampling_flags(generate)
generate.add_argument("--n", type=int, default=8, help="number of sentences")
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
_sampling_flags(infill)
infill.add_argument("--template", required=True, help='words with `_` blanks, e.g. "The Eagle is a _ _ ."')
infill.add_argument("--n", type=int, default=4, help="number of fillings")
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
evaluate_cmd.add_argument("--n", type=int, default=200, help="samples per setting")


def main() -> None:
    """Console script entry point."""
    try:
        code = cli.main()
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"omnidiffusion-text: error: {e}") from None
    raise SystemExit(code)
