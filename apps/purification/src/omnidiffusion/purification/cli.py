"""`omnidiffusion-purification`: train | train-classifier | train-diffusion | purify | evaluate (wiring only).

omnidiffusion-purification train --config digits --out runs/purification/digits       # classifier + DDPM
omnidiffusion-purification train-classifier --out DIR        # the classifier only (DIR/classifier)
omnidiffusion-purification train-diffusion --out DIR         # the DDPM only, through omnidiffusion.vision
omnidiffusion-purification purify --diffusion DIR --input digits|FOLDER|image.png --output OUT_DIR
omnidiffusion-purification evaluate --diffusion DIR --classifier DIR --data digits|FOLDER \\
    --attack pgd|eot-pgd|bpda-eot|apgd|autoattack --eps E --norm linf|l2 --n N --seed S [--t-star T] [--plot P]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from omnidiffusion.core.cli import AppCLI, print_json

from .settings import PACKAGE, PurificationConfig

cli = AppCLI(
    "omnidiffusion-purification",
    "DiffPure adversarial purification with a diffusion model, evaluated with torchattacks.",
    package=PACKAGE,
)


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def _resume(args: argparse.Namespace):
    return {"auto": None, "yes": True, "no": False}[args.resume]


def _train_classifier(config: PurificationConfig, out: Path, resume) -> Path:
    from .classifier import SmallCNN, TorchvisionClassifier, predict_labels, train_classifier
    from .data import load_images

    d, c = config.data, config.classifier
    x, y = load_images(d.source, split="train", size=d.image_size, channels=d.channels)
    if c.arch == "small-cnn":
        model = SmallCNN(d.channels, c.num_classes, c.width)
    else:
        model = TorchvisionClassifier(c.arch, c.num_classes, d.channels)
    result = train_classifier(model, x, y, config.train, out, resume=resume)
    final = result.ema_model if result.ema_model is not None else result.model
    acc = (predict_labels(final.cpu(), x) == y).float().mean().item()
    print(f"classifier {type(model).__name__}: train accuracy {acc:.4f} -> {out}")
    return out


def _train_diffusion(config: PurificationConfig, out: Path, resume) -> Path:
    from omnidiffusion.vision import train_image_ddpm

    from .data import load_images

    d = config.data
    x, _ = load_images(d.source, split="train", size=d.image_size, channels=d.channels)
    sets = [f"data.image_size={d.image_size}", f"data.channels={d.channels}", "data.hflip=false"]
    train_image_ddpm(
        x * 2 - 1, config.diffusion.vision_config, out, resume=resume, overrides=sets + list(config.diffusion.overrides)
    )
    print(f"diffusion model -> {out}")
    return out


def run_train(args: argparse.Namespace, config: PurificationConfig) -> int:
    out = Path(args.out or config.out)
    _train_classifier(config, out / "classifier", _resume(args))
    _train_diffusion(config, out / "diffusion", _resume(args))
    return 0


def run_train_classifier(args: argparse.Namespace, config: PurificationConfig) -> int:
    _train_classifier(config, Path(args.out or config.out) / "classifier", _resume(args))
    return 0


def run_train_diffusion(args: argparse.Namespace, config: PurificationConfig) -> int:
    _train_diffusion(config, Path(args.out or config.out) / "diffusion", _resume(args))
    return 0


def _pipeline(args: argparse.Namespace, config: PurificationConfig, classifier: str | None):
    from .pipeline import PurificationPipeline

    p = config.purify
    t_star = args.t_star if args.t_star is not None else p.t_star
    return PurificationPipeline.from_pretrained(
        args.diffusion,
        classifier,
        t_star=t_star,
        method=p.method,
        steps=p.steps or None,
        seed=p.seed,
        device=_device(args.device),
    )


def run_purify(args: argparse.Namespace, config: PurificationConfig) -> int:
    from PIL import Image

    from .data import load_images

    pipe = _pipeline(args, config, None)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(args.input)
    if src.is_file():
        names, images = [src.stem], [pipe.purify(Image.open(src))]
    else:
        d = config.data
        x, _ = load_images(args.input, split="test", size=d.image_size, channels=d.channels)
        x = x[: args.n] if args.n else x
        names = [f"{i:05d}" for i in range(len(x))]
        pure = pipe.purify(x, batch_size=config.purify.batch_size)  # (N, C, H, W) in [0, 1]
        images = [Image.fromarray((a.permute(1, 2, 0).squeeze(-1).numpy() * 255).round().astype("uint8")) for a in pure]
    for name, im in zip(names, images, strict=True):
        im.save(out / f"{name}.png")
    print(
        f"purified {len(images)} image(s) (t* = {pipe.purifier.t_star:g}, {pipe.purifier.method}, "
        f"{pipe.purifier.steps} steps) -> {out}"
    )
    return 0


def run_evaluate(args: argparse.Namespace, config: PurificationConfig) -> int:
    from .attacks import AttackConfig
    from .data import load_images
    from .plots import plot_robustness
    from .purified import PurifiedClassifier
    from .robustness import evaluate_robustness, plan_attacks, sweep_t_star

    e = config.evaluate
    attacks = args.attack or e.attacks
    attacks = [a for spec in attacks for a in spec.split(",") if a]
    eps = _floats(args.eps) or e.eps
    norm = args.norm or e.norm
    n = args.n or e.n
    seed = e.seed if args.seed is None else args.seed
    plan = plan_attacks(attacks)
    pipe = _pipeline(args, config, args.classifier)
    d = config.data
    x, y = load_images(args.data or d.source, split="test", size=d.image_size, channels=d.channels)
    x, y = x[:n], y[:n]
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


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output directory (default: the config's `out`)")
    p.add_argument(
        "--resume",
        choices=("auto", "yes", "no"),
        default="auto",
        help="continue from the checkpoint in the output directory: auto = when one exists",
    )


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--diffusion", required=True, help="diffusion model directory (omnidiffusion.vision ImageDDPM)")
    p.add_argument("--t-star", type=float, default=None, help="diffusion time t* (default: purify.t_star)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


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
_purify.add_argument("--n", type=int, default=0, help="purify only the first N images (0 = all)")
_eval = cli.add_command(
    "evaluate",
    run_evaluate,
    PurificationConfig,
    default_config="digits",
    help="clean and robust accuracy of DiffPure + classifier vs the classifier alone (JSON)",
)
_add_model_flags(_eval)
_eval.add_argument("--classifier", required=True, help="classifier directory (train-classifier output)")
_eval.add_argument("--data", default=None, help="'digits', an ImageFolder path or torchvision:NAME:ROOT")
_eval.add_argument(
    "--attack",
    action="append",
    default=None,
    help="pgd | eot-pgd | bpda-eot | apgd | autoattack (repeatable or comma-separated)",
)
_eval.add_argument("--eps", default=None, help="perturbation budget(s), comma-separated")
_eval.add_argument("--norm", choices=("linf", "l2"), default=None)
_eval.add_argument("--n", type=int, default=None, help="number of test images")
_eval.add_argument("--seed", type=int, default=None)
_eval.add_argument("--plot", default=None, help="write a PNG of accuracy against eps and t* (evaluate.t_stars)")
_eval.add_argument("--quiet", action="store_true", help="no progress bars")


def main() -> None:
    raise SystemExit(cli.main())


if __name__ == "__main__":
    main()
