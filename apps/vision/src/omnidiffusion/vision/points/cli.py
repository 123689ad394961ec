"""Command-line wiring of the points task: `points-generate`, `points-complete`, `evaluate --task points`, `train`.

omnidiffusion-vision train --config points-shapes [--set train.steps=500] [--out DIR]
omnidiffusion-vision points-generate --checkpoint DIR --n 8 --out clouds/ [--format ply]
omnidiffusion-vision points-complete --checkpoint DIR --input partial.ply --out full.ply [--png full.png]
omnidiffusion-vision evaluate --task points --checkpoint DIR --data-dir FOLDER

Samplers come from the checkpoint's run config: [sampler] method, steps, grid, seed and points.clip
(`--set sampler.steps=10` changes one for a run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from omnidiffusion.core.cli import count_arg

from ..flags import as_flags, image_output
from .data import held_out_clouds, reference_clouds
from .evaluation import evaluate_points
from .formats import SUFFIXES, read_points, write_points
from .model import PointDiffusionModel
from .render import render_clouds
from .training import train

TRAINS = ("points",)  # the config.task values `train` runs


def _load(args: argparse.Namespace) -> PointDiffusionModel:
    return PointDiffusionModel.from_pretrained(args.checkpoint, map_location=args.device)


def run_generate(args: argparse.Namespace, config) -> int:
    model = _load(args)
    s = config.sampler
    gen = torch.Generator().manual_seed(s.seed)
    clip = config.points.clip or None
    with as_flags(n="--n", n_points="--n-points"):
        x = model.generate(args.n, args.n_points, method=s.method, steps=s.steps, grid=s.grid, generator=gen, clip=clip)
    out = Path(args.out)
    for i, cloud in enumerate(x):
        write_points(out / f"cloud_{i:03d}.{args.format}", cloud)
    png = render_clouds(list(x[:16]), out / "clouds.png", titles=[f"#{i}" for i in range(min(16, len(x)))])
    print(f"{args.n} clouds of {x.shape[1]} points ({s.method}, {s.steps} steps) -> {out}/cloud_*.{args.format}, {png}")
    return 0


def run_complete(args: argparse.Namespace, config) -> int:
    if Path(args.out).suffix.lower() not in SUFFIXES:
        raise ValueError(f"--out: expected a file ending in one of {SUFFIXES}, got {args.out!r}")
    if args.png:
        image_output(args.png, "--png")
    model = _load(args)
    partial = torch.from_numpy(read_points(args.input))  # (K, 3)
    s = config.sampler
    gen = torch.Generator().manual_seed(s.seed)
    with as_flags(partial="--input", n_points="--n-points"):
        full = model.complete(
            partial[None], args.n_points, method=s.method, steps=s.steps, grid=s.grid, generator=gen,
            clip=config.points.clip or None,
        )  # fmt: skip
    write_points(args.out, full[0])
    note = ""
    if args.png:
        render_clouds([full[0]], args.png, titles=["observed (red) + completed"], highlight=[partial.shape[0]])
        note = f", {args.png}"
    print(f"completed {partial.shape[0]} -> {full.shape[1]} points ({s.method}, {s.steps} steps) -> {args.out}{note}")
    return 0


def register(add) -> None:
    """Add this task's verbs to `omnidiffusion-vision`; `add(name, handler, help=..., out=...)` registers one
    inference command on the root config with --checkpoint."""
    gen = add(
        "points-generate",
        run_generate,
        help="draw point clouds from a points model ([sampler], points.clip)",
        out=("points", "folder for cloud_XXX.<format> and clouds.png"),
    )
    gen.add_argument("--n", type=count_arg(), default=8, help="number of clouds")
    gen.add_argument(
        "--n-points", type=count_arg(minimum=2), default=None, help="points per cloud (default: the training size)"
    )
    gen.add_argument("--format", choices=("ply", "npy", "xyz", "off"), default="ply")
    comp = add(
        "points-complete",
        run_complete,
        help="complete a partial point cloud (PVD-style: the given points stay fixed)",
        out=("completed.ply", "the completed cloud (.npy/.ply/.off/.xyz)"),
    )
    comp.add_argument("--input", required=True, help="the observed points (.npy/.ply/.off/.xyz)")
    comp.add_argument(
        "--n-points", type=count_arg(minimum=2), default=None, help="points of the result (default: training size)"
    )
    comp.add_argument("--png", default=None, help="also render the result to this PNG")


def evaluate(args: argparse.Namespace, config) -> dict:
    """`omnidiffusion-vision evaluate --task points`: generation and completion metrics with their baselines.

    --data-dir: a folder of held-out clouds (class subfolders allowed), resampled to the model's size and
    normalised by config.points.normalize; without it, the bundled held-out shapes of the config.
    """
    model = _load(args)
    p = config.points
    test, data = held_out_clouds(config, model.n_points, args.data_dir)
    test = test[: p.n_eval]
    if not 0 < p.n_known <= test.shape[1] * p.keep_min:
        raise ValueError(f"points.n_known: expected 1..keep_min * N = {test.shape[1] * p.keep_min:g}, got {p.n_known}")
    s = config.sampler
    result = evaluate_points(
        model.cpu() if args.device.type == "cpu" else model,
        test,
        reference_clouds(config),
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


__all__ = ["TRAINS", "evaluate", "register", "run_complete", "run_generate", "train"]
