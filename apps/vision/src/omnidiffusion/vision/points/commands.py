"""CLI wiring of the points task: `points-generate`, `points-complete`, `evaluate --task points`, `train`.

omnidiffusion-vision train --config points-shapes [--set train.steps=500] [--out DIR]
omnidiffusion-vision points-generate --checkpoint DIR --n 8 --out-dir clouds/ [--format ply]
omnidiffusion-vision points-complete --checkpoint DIR --input partial.ply --output full.ply [--png full.png]
omnidiffusion-vision evaluate --task points --checkpoint DIR --data-dir FOLDER [--config points-shapes]

Samplers come from the [sample] section of --config (method, steps, grid, seed).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, count_arg

from ..flags import as_flags


def _load(args: argparse.Namespace):
    from .model import PointDiffusionModel

    return PointDiffusionModel.from_pretrained(args.checkpoint, map_location=args.device)


def run_generate(args: argparse.Namespace, config) -> int:
    import torch

    from .formats import write_points
    from .render import render_clouds

    model = _load(args)
    s = config.sample
    gen = torch.Generator().manual_seed(s.seed)
    clip = config.points.clip or None
    with as_flags(n="--n", n_points="--n-points"):
        x = model.generate(args.n, args.n_points, method=s.method, steps=s.steps, grid=s.grid, generator=gen, clip=clip)
    out = Path(args.out_dir)
    for i, cloud in enumerate(x):
        write_points(out / f"cloud_{i:03d}.{args.format}", cloud)
    png = render_clouds(list(x[:16]), out / "clouds.png", titles=[f"#{i}" for i in range(min(16, len(x)))])
    print(f"{args.n} clouds of {x.shape[1]} points ({s.method}, {s.steps} steps) -> {out}/cloud_*.{args.format}, {png}")
    return 0


def run_complete(args: argparse.Namespace, config) -> int:
    import torch

    from ..flags import image_output
    from .formats import SUFFIXES, read_points, write_points
    from .render import render_clouds

    if Path(args.output).suffix.lower() not in SUFFIXES:
        raise ValueError(f"--output: expected a file ending in one of {SUFFIXES}, got {args.output!r}")
    if args.png:
        image_output(args.png, "--png")
    model = _load(args)
    partial = torch.from_numpy(read_points(args.input))  # (K, 3)
    s = config.sample
    gen = torch.Generator().manual_seed(s.seed)
    with as_flags(partial="--input", n_points="--n-points"):
        full = model.complete(
            partial[None], args.n_points, method=s.method, steps=s.steps, grid=s.grid, generator=gen,
            clip=config.points.clip or None,
        )  # fmt: skip
    write_points(args.output, full[0])
    note = ""
    if args.png:
        render_clouds([full[0]], args.png, titles=["observed (red) + completed"], highlight=[partial.shape[0]])
        note = f", {args.png}"
    print(
        f"completed {partial.shape[0]} -> {full.shape[1]} points ({s.method}, {s.steps} steps) -> {args.output}{note}"
    )
    return 0


def register(cli: AppCLI, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this task's verbs to `omnidiffusion-vision` (`common` adds --checkpoint and --device)."""
    from ..settings import VisionConfig

    gen = cli.add_command(
        "points-generate", run_generate, VisionConfig, help="draw point clouds from a points model ([sample])"
    )
    common(gen)
    gen.add_argument("--n", type=count_arg(), default=8, help="number of clouds")
    gen.add_argument(
        "--n-points", type=count_arg(minimum=2), default=None, help="points per cloud (default: the training size)"
    )
    gen.add_argument("--out-dir", default="points", help="folder for cloud_XXX.<format> and clouds.png")
    gen.add_argument("--format", choices=("ply", "npy", "xyz", "off"), default="ply")
    comp = cli.add_command(
        "points-complete",
        run_complete,
        VisionConfig,
        help="complete a partial point cloud (PVD-style: the given points stay fixed)",
    )
    common(comp)
    comp.add_argument("--input", required=True, help="the observed points (.npy/.ply/.off/.xyz)")
    comp.add_argument("--output", default="completed.ply", help="the completed cloud (.npy/.ply/.off/.xyz)")
    comp.add_argument(
        "--n-points", type=count_arg(minimum=2), default=None, help="points of the result (default: training size)"
    )
    comp.add_argument("--png", default=None, help="also render the result to this PNG")


def _training_set(checkpoint: str):
    """The training clouds recorded in the checkpoint's config (bundled shapes or a folder), or None."""
    from omnidiffusion.core.config import from_dict
    from omnidiffusion.core.io import read_pretrained_config

    from ..settings import VisionConfig
    from .training import training_clouds

    meta = read_pretrained_config(checkpoint).get("metadata", {})
    if "vision_config" not in meta:
        return None
    try:
        return training_clouds(from_dict(VisionConfig, meta["vision_config"]))[0]
    except (ValueError, FileNotFoundError):
        return None


def evaluate(args: argparse.Namespace, config) -> dict:
    """`omnidiffusion-vision evaluate --task points`: generation and completion metrics with their baselines.

    --data-dir: a folder of held-out clouds (class subfolders allowed), resampled to the model's size and
    normalised by config.points.normalize; without it, the bundled held-out shapes of the config.
    """
    from .evaluation import evaluate_points
    from .formats import load_cloud_folder
    from .shapes import shape_split

    model = _load(args)
    p = config.points
    if args.data_dir:
        test, _ = load_cloud_folder(args.data_dir, model.n_points, seed=p.seed, normalize=p.normalize)
        data = str(args.data_dir)
    else:
        kwargs = {"scale_min": p.scale_min, "scale_max": p.scale_max, "rotation": p.rotation}
        test = shape_split(1, p.n_test, model.n_points, p.seed, **kwargs)[1]
        data = f"bundled shapes, {p.n_test} held-out clouds (seed {p.seed + 10_000})"
    test = test[: p.n_eval]
    if not 0 < p.n_known <= test.shape[1] * p.keep_min:
        raise ValueError(f"points.n_known: expected 1..keep_min * N = {test.shape[1] * p.keep_min:g}, got {p.n_known}")
    s = config.sample
    result = evaluate_points(
        model.cpu() if args.device.type == "cpu" else model,
        test,
        _training_set(args.checkpoint),
        samplers=((s.method, s.steps),),
        n_known=p.n_known,
        keep_min=p.keep_min,
        keep_max=p.keep_max,
        use_emd=p.emd,
        seed=s.seed,
        clip=p.clip or None,
    )
    result["protocol"]["data"] = data
    return result


def train(config, out_dir, resume):
    """`omnidiffusion-vision train` for config.task = "points"; returns the trained (EMA) model."""
    from .training import train_points

    return train_points(config, None, out_dir, resume)
