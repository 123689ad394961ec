"""`omnidiffusion-purification`: train | train-classifier | train-diffusion | purify | evaluate (wiring only).

omnidiffusion-purification train --config digits --out runs/purification/digits   # classifier + DDPM + run config
omnidiffusion-purification train-classifier --out DIR        # the classifier only (DIR/classifier)
omnidiffusion-purification train-diffusion --out DIR         # the DDPM only (DIR/diffusion), through vision
omnidiffusion-purification purify --checkpoint DIR --input digits|FOLDER|image.png --out OUT_DIR [--n N]
omnidiffusion-purification evaluate --checkpoint DIR [--plot P] \\
    --set evaluate.attacks=pgd,eot-pgd --set evaluate.eps=0.1 --set sampler.t_star=0.1 ...

--checkpoint takes a `train` run (its run_config.json is the starting point of --set; diffusion/ and classifier/
are used) or a diffusion model folder alone: ours (a vision ImageDDPM) or a diffusers folder (model_index.json +
unet/ + scheduler/), which start from --config; the classifier is then classifier.weights.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, as_flags, count_arg, print_json

from .evaluation import evaluate
from .pipeline import PurificationPipeline, purify_to_folder
from .settings import PACKAGE, PurificationConfig
from .training import fit_classifier, fit_diffusion, train

cli = AppCLI(
    "omnidiffusion-purification",
    "DiffPure adversarial purification with a diffusion model, evaluated with torchattacks.",
    package=PACKAGE,
)


def _note(args: argparse.Namespace, text: str) -> None:
    """One line on stderr when the command converts an input instead of refusing it."""
    print(f"{cli.prog} {args.command}: note: {text}", file=sys.stderr, flush=True)


def run_train(args: argparse.Namespace, config: PurificationConfig) -> int:
    train(config, Path(args.out), resume=args.resume, note=functools.partial(_note, args))
    return 0


def run_train_classifier(args: argparse.Namespace, config: PurificationConfig) -> int:
    fit_classifier(config, Path(args.out), resume=args.resume, note=functools.partial(_note, args))
    return 0


def run_train_diffusion(args: argparse.Namespace, config: PurificationConfig) -> int:
    fit_diffusion(config, Path(args.out), resume=args.resume, note=functools.partial(_note, args))
    return 0


def _pipeline(args: argparse.Namespace, config: PurificationConfig, with_classifier: bool) -> PurificationPipeline:
    with as_flags(directory="--checkpoint", arch="classifier.arch"):
        pipe = PurificationPipeline.from_pretrained(
            args.checkpoint, device=args.device, config=config, classifier=None if with_classifier else False
        )
    if pipe.purifier.t_star == 0:
        _note(args, "t* = 0: DiffPure is the identity, the images are not purified")
    return pipe


def run_purify(args: argparse.Namespace, config: PurificationConfig) -> int:
    pipe = _pipeline(args, config, False)
    paths = purify_to_folder(
        pipe,
        args.input,
        args.out,
        data=config.data,
        n=args.n,
        note=functools.partial(_note, args),
        names=("--input", "--out"),
    )
    dp = pipe.purifier
    print(f"purified {len(paths)} image(s) (t* = {dp.t_star:g}, {dp.method}, {dp.steps} steps) -> {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace, config: PurificationConfig) -> int:
    pipe = _pipeline(args, config, True)
    print_json(evaluate(pipe, config, plot=args.plot, progress=not args.quiet, note=functools.partial(_note, args)))
    return 0


_OUT = ("runs/purification/digits", "run directory: classifier/, diffusion/ and run_config.json")
cli.add_command(
    "train",
    run_train,
    PurificationConfig,
    default_config="digits",
    help="train the classifier and the diffusion model (OUT/classifier, OUT/diffusion, OUT/run_config.json)",
    out=_OUT,
    resume=True,
)
cli.add_command(
    "train-classifier",
    run_train_classifier,
    PurificationConfig,
    default_config="digits",
    help="train the classifier (OUT/classifier) on the train split of data.source",
    out=_OUT,
    resume=True,
)
cli.add_command(
    "train-diffusion",
    run_train_diffusion,
    PurificationConfig,
    default_config="digits",
    help="train the unconditional DDPM (OUT/diffusion) through omnidiffusion.vision",
    out=_OUT,
    resume=True,
)
_purify = cli.add_command(
    "purify",
    run_purify,
    PurificationConfig,
    default_config="digits",
    help="purify an image file, an image folder or the bundled digits with DiffPure ([sampler]); writes PNGs",
    checkpoint="required",
    out=("purified", "output folder for the purified PNGs (created when missing)"),
)
_purify.add_argument(
    "--input", required=True, help="an image file, an ImageFolder, 'digits', 'cifar10' (data.root) or cifar10:ROOT"
)
_purify.add_argument("--n", type=count_arg(), default=None, help="purify only the first N images (default: all)")
_eval = cli.add_command(
    "evaluate",
    run_evaluate,
    PurificationConfig,
    default_config="digits",
    help="clean and robust accuracy of DiffPure + classifier vs the classifier alone on the test split of "
    "data.source ([evaluate], [attack]; JSON)",
    checkpoint="required",
)
_eval.add_argument("--plot", default=None, help="write a PNG of accuracy against eps and t* (evaluate.t_stars)")
_eval.add_argument("--quiet", action="store_true", help="no progress bars")

main = cli.run

if __name__ == "__main__":
    main()
