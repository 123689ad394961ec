"""`omnidiffusion-purification`: train | train-classifier | train-diffusion | purify | evaluate (wiring only).

omnidiffusion-purification train --config digits --out runs/purification/digits       # classifier + DDPM
omnidiffusion-purification train-classifier --out DIR        # the classifier only (DIR/classifier)
omnidiffusion-purification train-diffusion --out DIR         # the DDPM only, through omnidiffusion.vision
omnidiffusion-purification purify --diffusion DIR --input digits|FOLDER|image.png --output OUT_DIR
omnidiffusion-purification evaluate --diffusion DIR --classifier DIR|WEIGHTS --data digits|cifar10:ROOT|FOLDER \\
    --attack pgd|eot-pgd|bpda-eot|apgd|autoattack --eps E --norm linf|l2 --n N --seed S [--t-star T] [--plot P]

--diffusion takes our save_pretrained folder (a vision ImageDDPM) or a diffusers folder (model_index.json + unet/ +
scheduler/), told apart by their files.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

from omnidiffusion.core.cli import AppCLI, add_device_argument, as_flags, count_arg, number_arg, print_json

from .robustness import ATTACK_PLANS
from .settings import PACKAGE, PurificationConfig

cli = AppCLI(
    "omnidiffusion-purification",
    "DiffPure adversarial purification with a diffusion model, evaluated with torchattacks.",
    package=PACKAGE,
)


def _budgets(text: str) -> list[float]:
    """argparse `type=` for --eps: one or more comma-separated perturbation budgets, each finite and > 0."""
    parse = number_arg(0.0, low_open=True)
    items = [v.strip() for v in text.split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated budgets > 0 such as 0.1,0.2, got {text!r}")
    return [parse(v) for v in items if v]


def _attack_names(text: str) -> list[str]:
    """argparse `type=` for --attack: names from ATTACK_PLANS, comma-separated."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in ATTACK_PLANS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected names from {', '.join(sorted(ATTACK_PLANS))}, got {text!r}")
    return names


def _note(args: argparse.Namespace, text: str) -> None:
    """One line on stderr when the command converts an input instead of refusing it."""
    print(f"{cli.prog} {args.command}: note: {text}", file=sys.stderr, flush=True)


def _resume(args: argparse.Namespace):
    return {"auto": None, "yes": True, "no": False}[args.resume]


def _train_classifier(config: PurificationConfig, out: Path, resume, note) -> Path:
    from .classifier import build_classifier, predict_labels, train_classifier

    d, c = config.data, config.classifier
    with as_flags(arch="classifier.arch"):
        model = build_classifier(c.arch, c.num_classes, d.channels, c.width)
    x, y = _load_data(d.source, config, "train", d.image_size, d.channels, "data.source", note)
    if y.max().item() >= c.num_classes:
        raise ValueError(
            f"classifier.num_classes: expected at least {y.max().item() + 1} (the labels of {d.source!r} go up to "
            f"{y.max().item()}), got {c.num_classes}"
        )
    result = train_classifier(model, x, y, config.train, out, resume=resume)
    final = result.ema_model if result.ema_model is not None else result.model
    acc = (predict_labels(final.cpu(), x) == y).float().mean().item()
    print(f"classifier {type(model).__name__}: train accuracy {acc:.4f} -> {out}")
    return out


def _train_diffusion(config: PurificationConfig, out: Path, resume, note) -> Path:
    from omnidiffusion.vision import train_image_ddpm

    d = config.data
    x, _ = _load_data(d.source, config, "train", d.image_size, d.channels, "data.source", note)
    sets = [f"data.image_size={d.image_size}", f"data.channels={d.channels}", "data.hflip=false"]
    train_image_ddpm(
        x * 2 - 1, config.diffusion.vision_config, out, resume=resume, overrides=sets + list(config.diffusion.overrides)
    )
    print(f"diffusion model -> {out}")
    return out


def _load_data(spec: str, config: PurificationConfig, split: str, size: int, channels: int, name: str, note):
    """load_images with data.root for the "cifar10" source (the binary version under data.root)."""
    from .data import load_images

    return load_images(spec, split=split, size=size, channels=channels, name=name, note=note, root=config.data.root)


def run_train(args: argparse.Namespace, config: PurificationConfig) -> int:
    out, note = Path(args.out or config.out), functools.partial(_note, args)
    _train_classifier(config, out / "classifier", _resume(args), note)
    _train_diffusion(config, out / "diffusion", _resume(args), note)
    return 0


def run_train_classifier(args: argparse.Namespace, config: PurificationConfig) -> int:
    note = functools.partial(_note, args)
    _train_classifier(config, Path(args.out or config.out) / "classifier", _resume(args), note)
    return 0


def run_train_diffusion(args: argparse.Namespace, config: PurificationConfig) -> int:
    note = functools.partial(_note, args)
    _train_diffusion(config, Path(args.out or config.out) / "diffusion", _resume(args), note)
    return 0


def _classifier(args: argparse.Namespace, config: PurificationConfig, channels: int | None):
    """The classifier of --classifier (a directory or a weight file) or of classifier.weights, as a module."""
    from .pipeline import load_classifier

    c = config.classifier
    source, name = (args.classifier, "--classifier") if args.classifier else (c.weights, "classifier.weights")
    if not source:
        raise ValueError(
            "--classifier: expected a classifier directory (train-classifier output) or a weight file for "
            f"classifier.arch = {c.arch!r} (or classifier.weights in the config), got none"
        )
    with as_flags(arch="classifier.arch"):
        return load_classifier(
            source, arch=c.arch, num_classes=c.num_classes, in_channels=channels or 3, width=c.width, name=name
        )


def _pipeline(args: argparse.Namespace, config: PurificationConfig, with_classifier: bool):
    from .diffpure import model_image_shape
    from .pipeline import PurificationPipeline, load_denoiser

    p = config.purify
    t_star = args.t_star if args.t_star is not None else p.t_star
    den = load_denoiser(args.diffusion, name="--diffusion")
    channels = model_image_shape(den)[0]
    pipe = PurificationPipeline.from_pretrained(
        den,
        _classifier(args, config, channels) if with_classifier else None,
        t_star=t_star,
        method=p.method,
        steps=p.steps,
        seed=p.seed,
        grid=p.grid,
        checkpointing=p.checkpointing,
        device=args.device,
    )
    if t_star == 0:
        _note(args, "t* = 0: DiffPure is the identity, the images are not purified")
    return pipe


def _image_shape(args: argparse.Namespace, config: PurificationConfig, pipe) -> tuple[int, int]:
    """(size, channels) to load images at: the diffusion model's, with a note when data.* asked for others."""
    d = config.data
    size, channels = pipe.image_size or d.image_size, pipe.channels or d.channels
    if (size, channels) != (d.image_size, d.channels):
        _note(
            args,
            f"data.image_size={d.image_size}, data.channels={d.channels} differ from the diffusion model's "
            f"{size}x{size}, {channels} channel(s); images are loaded at the model's",
        )
    return size, channels


def _read_image(path: Path, args: argparse.Namespace, size: int, channels: int):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"--input: {path}: not a readable image file (expected PNG/JPEG/...): {e}") from None
    bands = len(im.getbands())
    if im.size != (size, size) or bands != channels:
        _note(
            args,
            f"--input: {im.size[0]}x{im.size[1]}, {bands} channel(s) converted to the diffusion model's "
            f"{size}x{size}, {channels} channel(s)",
        )
    return im


def run_purify(args: argparse.Namespace, config: PurificationConfig) -> int:
    from PIL import Image

    src, out = Path(args.input), Path(args.output)
    known = args.input in ("digits", "cifar10") or args.input.startswith(("torchvision:", "cifar10:"))
    if not known and not src.exists():
        raise FileNotFoundError(f"--input: {src}: no such file or folder (expected an image, ImageFolder or 'digits')")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output: {out} is a file, expected a folder (it is created when missing)")
    pipe = _pipeline(args, config, False)
    size, channels = _image_shape(args, config, pipe)
    if src.is_file():
        names, images = [src.stem], [pipe.purify(_read_image(src, args, size, channels))]
    else:
        note = functools.partial(_note, args)
        x, _ = _load_data(args.input, config, "test", size, channels, "--input", note)
        x = x[: args.n] if args.n is not None else x
        names = [f"{i:05d}" for i in range(len(x))]
        pure = pipe.purify(x, batch_size=config.purify.batch_size)  # (N, C, H, W) in [0, 1]
        images = [Image.fromarray((a.permute(1, 2, 0).squeeze(-1).numpy() * 255).round().astype("uint8")) for a in pure]
    out.mkdir(parents=True, exist_ok=True)
    for name, im in zip(names, images, strict=True):
        im.save(out / f"{name}.png")
    print(
        f"purified {len(images)} image(s) (t* = {pipe.purifier.t_star:g}, {pipe.purifier.method}, "
        f"{pipe.purifier.steps} steps) -> {out}"
    )
    return 0


def run_evaluate(args: argparse.Namespace, config: PurificationConfig) -> int:
    from .attacks import AttackConfig
    from .plots import plot_robustness
    from .purified import PurifiedClassifier
    from .robustness import evaluate_robustness, plan_attacks, sweep_t_star

    e = config.evaluate
    attacks = [a for names in args.attack for a in names] if args.attack else e.attacks
    eps = args.eps if args.eps is not None else e.eps
    norm = args.norm or e.norm
    n = args.n if args.n is not None else e.n
    seed = e.seed if args.seed is None else args.seed
    plan = plan_attacks(attacks)
    pipe = _pipeline(args, config, True)
    d = config.data
    size, channels = _image_shape(args, config, pipe)
    data_name = "--data" if args.data else "data.source"
    note = functools.partial(_note, args)
    x, y = _load_data(args.data or d.source, config, "test", size, channels, data_name, note)
    if e.subset_seed is None:
        x, y = x[:n], y[:n]
    else:  # n test images drawn without replacement (DiffPure: 64 per data seed)
        pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(e.subset_seed))[:n]
        x, y = x[pick], y[pick]
    model = PurifiedClassifier(pipe.purifier, pipe.classifier).to(pipe.device)
    cfg = AttackConfig(**vars(config.attack)) if not isinstance(config.attack, AttackConfig) else config.attack
    rows, worst, clean = [], [], None
    for attack, threats in plan.items():
        r = evaluate_robustness(
            model,
            (x, y),
            (attack,),
            eps,
            norm,
            threats=threats,
            config=cfg,
            eval_runs=e.eval_runs,
            batch_size=e.batch_size,
            seed=seed,
            progress=not args.quiet,
        )
        rows += r["results"]
        worst += r["worst_case"]
        clean = r["clean"]
    dp = pipe.purifier
    model_metrics = {"clean_accuracy": clean["purified"]["accuracy"]}
    baseline = {"clean_accuracy": clean["classifier"]["accuracy"]}
    for row in rows:
        key = f"robust_accuracy[{row['attack']}, eps={row['eps']:g}"
        if row["threat"] == "classifier":
            baseline[key + "]"] = row["accuracy"]
        else:
            model_metrics[key + f", {row['threat']}]"] = row["accuracy"]
    report = {
        "model": model_metrics,
        "baselines": {"classifier alone": baseline},
        "protocol": {
            "data": args.data or d.source,
            "data_root": d.root,
            "subset_seed": e.subset_seed,
            "diffusion": {"path": str(args.diffusion), "format": _format(args.diffusion)},
            "n": int(len(y)),
            "norm": norm,
            "eps": eps,
            "attacks": attacks,
            "seed": seed,
            "purifier": {"t_star": dp.t_star, "method": dp.method, "steps": dp.steps, "grid": dp.grid},
            "attack_config": vars(cfg),
            "eval_runs": e.eval_runs,
            "rows": rows,
            "clean": clean,
            "worst_case": worst,
        },
    }
    if args.plot:
        t_stars = sorted({*e.t_stars, dp.t_star}) if e.t_stars else [dp.t_star]
        sweep = sweep_t_star(
            model,
            (x, y),
            t_stars,
            eps,
            norm,
            config=cfg,
            eval_runs=e.eval_runs,
            batch_size=e.batch_size,
            seed=seed,
            progress=not args.quiet,
        )
        for row in rows:
            row.setdefault("t_star", dp.t_star)
        plot_robustness(sweep + [r for r in rows if r["threat"] != "transfer"], args.plot, t_star=dp.t_star)
        report["protocol"]["t_star_sweep"] = sweep
        report["protocol"]["plot"] = str(args.plot)
    print_json(report)
    return 0


def _format(directory: str) -> str:
    from omnidiffusion.core.interop import is_diffusers_folder

    return "diffusers" if is_diffusers_folder(directory) else "omnidiffusion"


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output directory (default: the config's `out`)")
    p.add_argument(
        "--resume",
        choices=("auto", "yes", "no"),
        default="auto",
        help="continue from the checkpoint in the output directory: auto = when one exists",
    )


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--diffusion",
        required=True,
        help="diffusion model folder: ours (omnidiffusion.vision ImageDDPM) or a diffusers folder (model_index.json)",
    )
    p.add_argument(
        "--t-star",
        type=number_arg(0.0, 1.0, high_open=True),
        default=None,
        help="diffusion time t* in [0, 1) (default: purify.t_star)",
    )
    add_device_argument(p)


_train = cli.add_command(
    "train",
    run_train,
    PurificationConfig,
    default_config="digits",
    help="train the classifier and the diffusion model (OUT/classifier, OUT/diffusion)",
)
_add_train_flags(_train)
_tc = cli.add_command(
    "train-classifier",
    run_train_classifier,
    PurificationConfig,
    default_config="digits",
    help="train the classifier (OUT/classifier) on the train split of data.source",
)
_add_train_flags(_tc)
_td = cli.add_command(
    "train-diffusion",
    run_train_diffusion,
    PurificationConfig,
    default_config="digits",
    help="train the unconditional DDPM (OUT/diffusion) through omnidiffusion.vision",
)
_add_train_flags(_td)
_purify = cli.add_command(
    "purify",
    run_purify,
    PurificationConfig,
    default_config="digits",
    help="purify an image file, an image folder or the bundled digits; writes PNGs",
)
_add_model_flags(_purify)
_purify.add_argument("--input", required=True, help="an image file, an ImageFolder, or 'digits'")
_purify.add_argument("--output", required=True, help="output folder for the purified PNGs")
_purify.add_argument("--n", type=count_arg(), default=None, help="purify only the first N images (default: all)")
_eval = cli.add_command(
    "evaluate",
    run_evaluate,
    PurificationConfig,
    default_config="digits",
    help="clean and robust accuracy of DiffPure + classifier vs the classifier alone (JSON)",
)
_add_model_flags(_eval)
_eval.add_argument(
    "--classifier",
    default=None,
    help="classifier directory (train-classifier output) or a weight file (.safetensors, .pt) for classifier.arch "
    "(default: classifier.weights)",
)
_eval.add_argument(
    "--data",
    default=None,
    help="'digits', 'cifar10' (data.root), cifar10:ROOT, an ImageFolder or torchvision:NAME:ROOT",
)
_eval.add_argument(
    "--attack",
    action="append",
    type=_attack_names,
    default=None,
    help="pgd | eot-pgd | bpda-eot | apgd | autoattack (repeatable or comma-separated; default: evaluate.attacks)",
)
_eval.add_argument(
    "--eps", type=_budgets, default=None, help="perturbation budget(s) > 0, comma-separated (default: evaluate.eps)"
)
_eval.add_argument("--norm", choices=("linf", "l2"), default=None)
_eval.add_argument("--n", type=count_arg(), default=None, help="number of test images (default: evaluate.n)")
_eval.add_argument("--seed", type=count_arg(minimum=0), default=None, help="attack seed (default: evaluate.seed)")
_eval.add_argument("--plot", default=None, help="write a PNG of accuracy against eps and t* (evaluate.t_stars)")
_eval.add_argument("--quiet", action="store_true", help="no progress bars")


def main() -> None:
    cli.run()


if __name__ == "__main__":
    main()
