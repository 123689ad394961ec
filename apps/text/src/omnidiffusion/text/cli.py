"""`omnidiffusion-text train | generate | infill | evaluate` (parse, load config, wire; the logic lives elsewhere).

    omnidiffusion-text train --out runs/text [--config default] [--set train.steps=500]
    omnidiffusion-text generate --checkpoint runs/text --n 8 [--control food=Italian] [--control length=12]
    omnidiffusion-text generate --checkpoint runs/text --set sampler.method=dpm++2m --set sampler.steps=20
    omnidiffusion-text infill --checkpoint runs/text --template "The Eagle is a _ _ near Burger King ."
    omnidiffusion-text evaluate --checkpoint runs/text --data valid.txt --n 200 --set sampler.steps=200

`generate`, `infill` and `evaluate` start from the config `train` stored in the checkpoint (run_config.json) and
apply `--set` (sampler.steps, sampler.seed, sampler.method, sampler.guidance_scale ...); the checkpoint's
model.kind picks DiffusionLM or MaskedDiffusionLM. Bad input (`--n 0`, `--device cuda` without a GPU, a template
without blanks, a missing --checkpoint or --data) ends with one line `omnidiffusion-text CMD: error: ...` and exit
code 2 (core.cli.AppCLI).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, count_arg, output_file, print_json
from omnidiffusion.core.training import is_main_process

from .data import named, read_e2e_any
from .evaluation import evaluate, load_teacher, load_train_texts
from .masked import MaskedDiffusionLM
from .pipeline import DiffusionLM, load_lm
from .settings import TextConfig
from .training import train

cli = AppCLI(
    "omnidiffusion-text",
    "Diffusion-LM (continuous) and masked discrete diffusion for controllable text generation.",
    package="omnidiffusion.text",
)


def run_train(args: argparse.Namespace, config: TextConfig) -> None:
    for stage in (config.train, config.classifier.train, config.teacher.train):
        if stage.device == "auto":  # --set train.device=... stays as given
            stage.device = str(args.device)
    result = train(config, args.out, resume=args.resume)
    if is_main_process():  # under torchrun only rank 0 reports
        name = "masked diffusion LM" if config.model.kind == "masked" else "Diffusion-LM"
        classifier = result.classifier.out_dir if result.classifier else None
        teacher = result.teacher.out_dir if result.teacher else None
        print(f"{name}: {result.out_dir}\nclassifier: {classifier}\nteacher LM: {teacher}")


def _load(args: argparse.Namespace, config: TextConfig) -> DiffusionLM | MaskedDiffusionLM:
    """The --checkpoint's pipeline with the run config `config` on --device; a missing or incomplete directory
    names the flag."""
    try:
        return load_lm(args.checkpoint, device=args.device, config=config)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--checkpoint: {e}") from None


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


def run_generate(args: argparse.Namespace, config: TextConfig) -> None:
    control = _parse_controls(args.control) or None
    output_file(args.out, "--out")
    lm = _load(args, config)
    if isinstance(lm, MaskedDiffusionLM):
        texts = lm.generate(args.n, control=control)
    else:
        texts = lm.generate(args.n, control=control, progress=True)
    _emit(texts, args.out)


def run_infill(args: argparse.Namespace, config: TextConfig) -> None:
    output_file(args.out, "--out")
    texts = _load(args, config).infill(args.template, args.n)
    _emit(texts, args.out)


def run_evaluate(args: argparse.Namespace, config: TextConfig) -> None:
    try:
        data = read_e2e_any(args.data)
    except (OSError, ValueError) as e:
        raise named(e, "--data") from None
    lm = _load(args, config)
    try:
        teacher, train_texts = load_teacher(args.checkpoint), load_train_texts(args.checkpoint)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--checkpoint: {e}") from None
    result = evaluate(lm, teacher, train_texts, data, args.n, config.sampler)
    result["protocol"]["data"] = str(args.data)
    print_json(result)


def _emit(texts: list[str], out: str | None) -> None:
    if out:
        Path(out).write_text("\n".join(texts) + "\n", encoding="utf-8")
    for t in texts:
        print(t)


cli.add_command(
    "train",
    run_train,
    TextConfig,
    help="train Diffusion-LM (or the masked model), its classifier and teacher LM",
    default_config="default",
    out=("runs/text", "checkpoint directory (weights, tokenizer, classifier/, teacher/, run_config.json)"),
    resume=True,
)
_generate = cli.add_command(
    "generate",
    run_generate,
    TextConfig,
    help="sample sentences, optionally controlled",
    default_config="default",
    checkpoint="required",
    out=(None, "also write the sentences to this file, one per line"),
)
_generate.add_argument("--n", type=count_arg(), default=8, help="number of sentences")
_generate.add_argument(
    "--control",
    action="append",
    default=[],
    metavar="FIELD=VALUE",
    help="a semantic-content target (e.g. food=Italian) or length=N; repeatable",
)
_infill = cli.add_command(
    "infill",
    run_infill,
    TextConfig,
    help="fill the `_` blanks of a template",
    default_config="default",
    checkpoint="required",
    out=(None, "also write the fillings to this file, one per line"),
)
_infill.add_argument("--template", required=True, help='words with `_` blanks, e.g. "The Eagle is a _ _ ."')
_infill.add_argument("--n", type=count_arg(), default=4, help="number of fillings")
_evaluate = cli.add_command(
    "evaluate",
    run_evaluate,
    TextConfig,
    help="control success and fluency vs baselines on E2E-format data (prints JSON)",
    default_config="default",
    checkpoint="required",
)
_evaluate.add_argument(
    "--data", required=True, help="held-out E2E file (MR||text lines, or E2E's devset.csv / testset_w_refs.csv)"
)
_evaluate.add_argument("--n", type=count_arg(), default=200, help="samples per setting")
main = cli.run
