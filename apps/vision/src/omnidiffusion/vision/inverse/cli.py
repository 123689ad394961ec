"""Command-line wiring of zero-shot restoration: `restore` (one measurement image) and `evaluate --task inverse`.

omnidiffusion-vision restore --checkpoint DIR --task sr4|inpaint|deblur|colorize --input y.png --out x.png \\
    [--mask box] [--set inverse.solver=ddnm|ddnm+|dps|repaint|sdedit] [--set inverse.steps=100]
omnidiffusion-vision evaluate --task inverse --checkpoint DIR --image-dir F --inverse-task sr4 \\
    [--set inverse.solver=dps] [--set inverse.samples=4]

The input of `restore` is the measurement as an image: sr4 the low-resolution image (a quarter of the model's
side), deblur the blurred image, colorize the grey image (for an RGB model), inpaint the image with its `--mask`
(white = keep). --checkpoint is our ImageDDPM folder or a local diffusers folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..data import load_folder_images
from ..flags import as_flags, image_output
from ..imaging import read_image, tensor_to_pil
from ..masks import make_mask
from ..priors import load_image_prior
from . import restore
from .evaluation import evaluate_inverse
from .operators import TASKS, make_operator, pixel_offset

TRAINS: tuple[str, ...] = ()  # zero-shot: nothing to train, any unconditional image model is the prior


def _operator(task: str, model, config, mask_spec: str | None, seed: int):
    size = (model.image_size, model.image_size)
    s = config.inverse
    if task == "colorize" and model.channels != 3:
        raise ValueError(f"--task: colorize needs an RGB (3-channel) model, got a {model.channels}-channel one")
    mask = None
    if task == "inpaint":
        with as_flags(spec="--mask", size="--mask"):
            mask = make_mask(mask_spec or "box", size, seed=seed)
    return make_operator(task, size, mask=mask, blur_sigma=s.blur_sigma, kind=s.downsample, grey_lift=s.grey_lift)


def run_restore(args: argparse.Namespace, config) -> int:
    """restore: read the measurement image, restore it with the solver, write the PNG."""
    image_output(args.out, "--out")
    model = load_image_prior(args.checkpoint, args.device)
    s = config.inverse
    solver = s.solver
    op = _operator(args.task, model, config, args.mask, s.seed)
    shape = (model.channels, model.image_size, model.image_size)
    y_channels = 1 if args.task == "colorize" else model.channels
    y = read_image(args.input, y_channels)[None]  # (1, C', h, w) in [0, 1]
    if args.task == "inpaint":
        y = op.forward(y) if tuple(y.shape[-2:]) == shape[1:] else y
    want = op.measurement_shape((1, *shape))
    if tuple(y.shape[1:]) != want:
        raise ValueError(f"--input: expected a {want[-2]}x{want[-1]} image for --task {args.task} with this "
                         f"{shape[-1]}x{shape[-1]} model, got {y.shape[-2]}x{y.shape[-1]}")
    y_m = 2.0 * y - pixel_offset(op, shape)
    gen = torch.Generator().manual_seed(s.seed)
    with as_flags(steps="inverse.steps", sigma_y="inverse.sigma_y", y="--input"):
        x = restore(model, y_m, op, solver, s.steps, gen, sigma_y=2.0 * s.sigma_y, **s.solver_options(solver))
    out = ((x[0].detach().cpu().float().clamp(-1.0, 1.0) + 1.0) / 2.0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(out).save(args.out)
    print(f"{args.task}: {tuple(y.shape[-2:])} -> {tuple(out.shape[-2:])} ({solver}, {s.steps} steps) -> {args.out}")
    return 0


def register(add) -> None:
    """Add `restore` to `omnidiffusion-vision`; `add(name, handler, help=..., out=...)` registers one inference
    command on the root config with --checkpoint."""
    p = add(
        "restore",
        run_restore,
        help="zero-shot restoration of one measurement with an unconditional model ([inverse] settings: solver, "
        "steps, sigma_y, ...)",
        out=("restored.png", "PNG to write"),
    )
    p.add_argument("--task", choices=TASKS, required=True, help="the degradation y = A x of --input")
    p.add_argument("--input", required=True, help="the measurement image y (PNG/JPEG), see the module docstring")
    p.add_argument("--mask", default=None, help="--task inpaint: box | half | lines | strokes | a mask image")


def evaluate_flags(ev: argparse.ArgumentParser) -> None:
    """The flags `evaluate --task inverse` adds to the evaluate parser (the solver is inverse.solver)."""
    ev.add_argument("--inverse-task", choices=(*TASKS, "sr4-noisy"), default="sr4",
                    help="--task inverse: the degradation (sr4-noisy = sr4 with inverse.sigma_y, default 0.05)")


def evaluate(args: argparse.Namespace, config) -> dict:
    """`evaluate --task inverse`: degrade the images of --image-dir, restore, compare with the classical baseline."""
    if not args.image_dir:
        raise ValueError("--image-dir: expected a folder of clean images for --task inverse")
    model = load_image_prior(args.checkpoint, args.device)
    task = args.inverse_task
    s = config.inverse
    sigma_y = s.sigma_y if task != "sr4-noisy" or s.sigma_y > 0 else 0.05
    op = _operator("sr4" if task == "sr4-noisy" else task, model, config, args.mask, s.seed)
    with as_flags(size="--image-dir"):
        images = load_folder_images(args.image_dir, model.channels, model.image_size)
    solver = s.solver
    with as_flags(steps="inverse.steps", images="--image-dir"):
        result, _ = evaluate_inverse(model, images, op, task=task, solver=solver, steps=s.steps, sigma_y=sigma_y,
                                     seed=s.seed, batch_size=s.batch_size, samples=s.samples,
                                     **s.solver_options(solver))
    result["protocol"]["data"] = str(args.image_dir)
    result["protocol"]["task"] = task
    return result


__all__ = ["TRAINS", "evaluate", "evaluate_flags", "register", "run_restore"]
