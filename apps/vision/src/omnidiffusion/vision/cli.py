"""`omnidiffusion-vision`: train | distil | sample | upscale | inpaint | restore | segment | points-* |
anomaly-score | evaluate.

omnidiffusion-vision train --config sr3-faces | ddpm-faces | ddpm-digits [--set train.steps=500] [--out DIR]
omnidiffusion-vision sample --checkpoint DIR --n 16 --out grid.png [--set sampler.steps=50]
omnidiffusion-vision upscale --checkpoint DIR --input lr.png --out sr.png
omnidiffusion-vision distil --checkpoint SR3_DIR --out CD_DIR    # then upscale --checkpoint CD_DIR: 2 steps
omnidiffusion-vision inpaint --checkpoint DIR --input img.png --mask mask.png|box|half|lines|strokes --out out.png
omnidiffusion-vision evaluate --task sr --checkpoint DIR --hr-dir FOLDER --scale 4
omnidiffusion-vision evaluate --task inpaint --checkpoint DIR --image-dir FOLDER --mask box
omnidiffusion-vision evaluate --task fid --checkpoint DIR --inception pt_inception-2015-12-05-6726825d.pth \\
    --fid-ref /data/cifar10 [--n 50000]     # FID and IS against CIFAR-10's training images
omnidiffusion-vision segment --checkpoint DIR --input img.png --out mask.png
omnidiffusion-vision points-generate --checkpoint DIR --n 8 --out clouds/
omnidiffusion-vision points-complete --checkpoint DIR --input partial.ply --out full.ply
omnidiffusion-vision anomaly-score --checkpoint DIR --input img.png --out OUT
omnidiffusion-vision evaluate --task seg --checkpoint DIR --image-dir F --mask-dir F
omnidiffusion-vision evaluate --task points --checkpoint DIR --data-dir F
omnidiffusion-vision evaluate --task anomaly --checkpoint DIR --image-dir F --mask-dir F
omnidiffusion-vision restore --checkpoint DIR --task sr4|inpaint|deblur|colorize --input y.png --out x.png \\
    [--set inverse.solver=ddnm]
omnidiffusion-vision evaluate --task inverse --checkpoint DIR --image-dir F --inverse-task sr4 --set inverse.solver=dps

Every command but `train` starts from the run config stored in --checkpoint (run_config.json) and applies --set;
sample | inpaint | restore | evaluate --task inpaint | inverse also take a local diffusers folder (model_index.json +
unet/ + scheduler/, or a UNet2DModel), which starts from --config or the defaults. Sampler settings are config
keys: `--set sampler.steps=50 --set sampler.seed=3`, not flags.

The tasks of segmentation/, points/, anomaly/ and inverse/ wire themselves (`EXTRA_TASKS`): each task's cli module
names the config.task values it trains (TRAINS, with `train`), answers `evaluate --task <name>` (`evaluate`) and
adds its verbs (`register`).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch

from omnidiffusion.core.cli import AppCLI, count_arg, print_json
from omnidiffusion.core.config import apply_override
from omnidiffusion.core.io import has_run_config, read_pretrained_config
from omnidiffusion.core.training import is_main_process

from .anomaly import cli as anomaly_cli
from .cifar10 import cifar10_binary, is_cifar10_binary
from .data import load_folder_images
from .evaluation import evaluate_fid, evaluate_inpaint, evaluate_sr
from .fid import load_fid_inception, read_statistics
from .flags import as_flags, image_output
from .imaging import read_image, tensor_to_pil, to_pixel_range
from .inverse import cli as inverse_cli
from .models import SR3, RegressionSR
from .pipeline import Inpainter, SuperResolution
from .points import cli as points_cli
from .priors import load_image_prior
from .segmentation import cli as seg_cli
from .settings import PACKAGE, VisionConfig, legacy_config
from .training import distil_sr3, train

# The Vision II tasks: each module trains its config.task values, answers `evaluate --task <name>`, adds its verbs.
EXTRA_TASKS = {
    "seg": seg_cli,
    "points": points_cli,
    "anomaly": anomaly_cli,
    "inverse": inverse_cli,
}

cli = AppCLI(
    "omnidiffusion-vision",
    "Image diffusion: DDPM, SR3 super-resolution, RePaint inpainting, segmentation, point clouds, anomaly detection, "
    "zero-shot restoration.",
    package=PACKAGE,
)


def _trainer(task: str):
    """The `train(config, out_dir, *, resume)` of config.task: a task package's, or vision.training's."""
    for module in EXTRA_TASKS.values():
        if task in module.TRAINS:
            return module.train
    return train


def run_train(args: argparse.Namespace, config: VisionConfig) -> int:
    if config.train.device == "auto":  # --device picks the training device unless --set train.device=... did
        config.train.device = str(args.device)
    out = args.out if args.out is not None else str(Path("runs/vision") / Path(args.config or "ddpm-digits").stem)
    result = _trainer(config.task)(config, out, resume=args.resume)
    if is_main_process():
        model = result.final_model
        params = sum(p.numel() for p in model.parameters())
        print(f"trained {type(model).__name__} ({params} parameters) -> {out}")
    return 0


def _with_checkpoint_config(handler):
    """A checkpoint written before run_config.json existed kept its config in the metadata of its config.json:
    without --config, that one (+ --set) is the run config, as the stored run config is for newer ones."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace, config: VisionConfig):
        ckpt = Path(args.checkpoint)
        if args.config is None and not has_run_config(ckpt):
            folder = ckpt / "ddpm" if (ckpt / "ddpm" / "config.json").is_file() else ckpt
            try:
                stored = legacy_config(read_pretrained_config(folder).get("metadata"))
            except (OSError, ValueError):  # a diffusers folder, or no model at all (the handler says so)
                stored = None
            if stored is not None:
                config = stored
                for override in args.overrides:
                    config = apply_override(config, override)
        return handler(args, config)

    return run


def add(name: str, handler, *, help: str, out: tuple[str | None, str] | None = None) -> argparse.ArgumentParser:
    """Register an inference command on the root config: --checkpoint (required; its run config is the start),
    --device, --threads, and --out when `out` = (default, help)."""
    return cli.add_command(
        name, _with_checkpoint_config(handler), VisionConfig, help=help, checkpoint="required", out=out
    )


def run_sample(args: argparse.Namespace, config: VisionConfig) -> int:
    image_output(args.out, "--out")
    model = load_image_prior(args.checkpoint, args.device)
    s = config.sampler
    gen = torch.Generator().manual_seed(s.seed)
    x = to_pixel_range(model.generate(args.n, method=s.method, steps=s.steps, grid=s.grid, generator=gen))
    _save_grid(x, args.out)
    print(f"{args.n} samples ({s.method}, {s.steps} steps) -> {args.out}")
    return 0


def run_upscale(args: argparse.Namespace, config: VisionConfig) -> int:
    image_output(args.out, "--out")
    sr = SuperResolution.from_pretrained(args.checkpoint, device=args.device, config=config)
    image = read_image(args.input, sr.model.channels)
    with as_flags(image="--input", lr="--input", tile="sampler.tile"):
        out = sr.upscale(image)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(out).save(args.out)
    s = config.sampler
    print(f"{tuple(image.shape[-2:])} -> {tuple(out.shape[-2:])} ({s.method}, {s.steps} steps) -> {args.out}")
    return 0


def run_inpaint(args: argparse.Namespace, config: VisionConfig) -> int:
    image_output(args.out, "--out")
    inp = Inpainter.from_pretrained(args.checkpoint, device=args.device, config=config)
    r = config.repaint
    image = read_image(args.input, inp.model.channels)
    with as_flags(image="--input", mask="--mask"):
        out = inp.inpaint(image, args.mask)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(out).save(args.out)
    print(f"inpainted ({args.mask}, RePaint {r.steps} steps, j={r.jump_length}, r={r.jump_n_sample}) -> {args.out}")
    return 0


def _evaluate_sr(args: argparse.Namespace, config: VisionConfig) -> dict:
    if not args.hr_dir:
        raise ValueError("--hr-dir: expected a folder of high-resolution images for --task sr")
    model = SR3.from_pretrained(args.checkpoint, map_location=args.device)
    if args.scale is not None and args.scale != model.scale:
        raise ValueError(f"--scale: the checkpoint was trained for scale {model.scale}, got {args.scale}")
    with as_flags(size="--crop"):
        hr = load_folder_images(args.hr_dir, model.channels, args.crop)
    reg = RegressionSR.from_pretrained(args.regression, map_location=args.device) if args.regression else None
    s = config.sampler
    with as_flags(hr="--hr-dir", tile="sampler.tile"):
        result = evaluate_sr(
            model, hr, regression=reg, method=s.method, steps=s.steps, grid=s.grid, samples=s.samples, seed=s.seed,
            batch_size=s.batch_size, tile=s.tile,
        )  # fmt: skip
    result["protocol"]["data"] = str(args.hr_dir)
    return result


def _evaluate_inpaint(args: argparse.Namespace, config: VisionConfig) -> dict:
    if not args.image_dir:
        raise ValueError("--image-dir: expected a folder of images for --task inpaint")
    model = load_image_prior(args.checkpoint, args.device)
    if args.crop is not None and args.crop != model.image_size:
        raise ValueError(
            f"--crop: expected the model's image size {model.image_size} for --task inpaint (or no --crop), "
            f"got {args.crop}"
        )
    with as_flags(size="--crop" if args.crop else "--image-dir"):
        images = load_folder_images(args.image_dir, model.channels, model.image_size)
    r = config.repaint
    result = evaluate_inpaint(
        model, images, args.mask, steps=r.steps, jump_length=r.jump_length, jump_n_sample=r.jump_n_sample,
        samples=r.samples, seed=r.seed, batch_size=r.batch_size,
    )  # fmt: skip
    result["protocol"]["data"] = str(args.image_dir)
    return result


def _evaluate_fid(args: argparse.Namespace, config: VisionConfig) -> dict:
    if not args.inception:
        raise ValueError(
            "--inception: expected the FID Inception weight file for --task fid (pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth, or a .safetensors of it)"
        )
    if not args.fid_ref:
        raise ValueError(
            "--fid-ref: expected the reference for --task fid: a folder holding cifar-10-batches-bin (its 50,000 "
            "training images), a folder of images, or an .npz with mu and sigma"
        )
    inception = load_fid_inception(args.inception, "--inception")
    model = load_image_prior(args.checkpoint, args.device)
    ref = Path(args.fid_ref)
    if ref.suffix == ".npz":
        reference = read_statistics(ref, "--fid-ref")
    elif is_cifar10_binary(ref):
        reference = cifar10_binary(ref, "train", name="--fid-ref")[0]
    else:
        reference = load_folder_images(ref, 3)
    s = config.sampler
    result = evaluate_fid(
        model, inception, reference, n=args.n, method=s.method, steps=s.steps, grid=s.grid, seed=s.seed,
        batch_size=s.batch_size, device=args.device,
    )  # fmt: skip
    result["protocol"]["reference"] = f"{result['protocol']['reference']} from {ref}"
    return result


def run_evaluate(args: argparse.Namespace, config: VisionConfig) -> int:
    if args.task in EXTRA_TASKS:
        result = EXTRA_TASKS[args.task].evaluate(args, config)
    else:
        result = {"sr": _evaluate_sr, "inpaint": _evaluate_inpaint, "fid": _evaluate_fid}[args.task](args, config)
    print_json(result)
    return 0


def _save_grid(x, path: str) -> None:
    """(B, C, H, W) in [0, 1] -> one PNG grid (8 per row)."""
    b, c, h, w = x.shape
    cols = min(8, b)
    rows = -(-b // cols)
    grid = torch.ones(c, rows * (h + 1) + 1, cols * (w + 1) + 1)
    for i in range(b):
        r, k = divmod(i, cols)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + k * (w + 1) : 1 + k * (w + 1) + w] = x[i]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(grid).save(path)


cli.add_command(
    "train",
    run_train,
    VisionConfig,
    help="train a model: config.task = ddpm | sr3 | regression | segdiff | seg-unet | ddpm-seg | points | anomaly",
    default_config="ddpm-digits",
    out=(None, "checkpoint directory (default: runs/vision/<config name>)"),
    resume=True,
)

def run_distil(args: argparse.Namespace, config: VisionConfig) -> int:
    if config.train.device == "auto":
        config.train.device = str(args.device)
    teacher = SR3.from_pretrained(args.checkpoint)
    student = distil_sr3(teacher, None, config, args.out, steps=args.distil_steps, lr=args.distil_lr,
                         resume=args.resume)  # fmt: skip
    if is_main_process():
        print(f"distilled {args.checkpoint} into a {student.consistency['parameterisation']} consistency SR3 -> "
              f"{args.out} (it samples with method consistency in 2 steps; --set sampler.steps=1 or 4 to change)")
    return 0


_distil = cli.add_command(
    "distil",
    _with_checkpoint_config(run_distil),
    VisionConfig,
    help="consistency-distil a trained SR3 into a 1/2/4-step SR3 (on the data of its run config)",
    checkpoint="required",
    out=("runs/vision/sr3-cd", "directory of the distilled SR3 (checkpoints, weights, run_config.json)"),
    resume=True,
)
_distil.add_argument("--distil-steps", type=count_arg(), default=500, help="optimiser steps of the distillation")
_distil.add_argument("--distil-lr", type=float, default=1e-4, help="learning rate of the distillation")

_sample = add(
    "sample", run_sample, help="draw images from an unconditional DDPM ([sampler] settings)",
    out=("samples.png", "PNG grid to write"),
)  # fmt: skip
_sample.add_argument("--n", type=count_arg(), default=16, help="number of images")

_upscale = add(
    "upscale", run_upscale, help="super-resolve one image with SR3 ([sampler] settings)",
    out=("upscaled.png", "PNG to write"),
)  # fmt: skip
_upscale.add_argument("--input", required=True, help="the low-resolution image (PNG/JPEG)")

_inpaint = add(
    "inpaint", run_inpaint, help="fill the holes of one image with RePaint ([repaint] settings)",
    out=("inpainted.png", "PNG to write"),
)  # fmt: skip
_inpaint.add_argument("--input", required=True, help="the image (PNG/JPEG) at the model's size")
_inpaint.add_argument("--mask", default="box", help="box | half | lines | strokes | a mask image (white = keep)")

_evaluate = add(
    "evaluate", run_evaluate, help="score a model against its baselines on a folder of images; prints one JSON object"
)
_evaluate.add_argument("--task", choices=("sr", "inpaint", "fid", *EXTRA_TASKS), required=True)
_evaluate.add_argument(
    "--hr-dir", default=None, help="--task sr: folder of HR images (or holding cifar-10-batches-bin: its test batch)"
)
_evaluate.add_argument(
    "--scale", type=count_arg(), default=None, help="--task sr: SR factor (must match the checkpoint)"
)
_evaluate.add_argument("--regression", default=None, help="--task sr: a RegressionSR checkpoint to compare with")
_evaluate.add_argument(
    "--image-dir",
    default=None,
    help="--task inpaint | inverse | seg | anomaly: folder of images (inpaint, inverse: or of cifar-10-batches-bin)",
)
_evaluate.add_argument("--mask-dir", default=None, help="--task seg | anomaly: folder of ground-truth masks (PNG)")
_evaluate.add_argument(
    "--data-dir",
    default=None,
    help="--task points: folder of point clouds (.npy/.ply/.off/.xyz); --task anomaly: an MVTec AD class folder",
)
_evaluate.add_argument(
    "--mask", default="box", help="--task inpaint | inverse: box | half | lines | strokes | mask file"
)
_evaluate.add_argument("--crop", type=count_arg(), default=None, help="center-crop every image to this side")
_evaluate.add_argument(
    "--inception", default=None, help="--task fid: the FID Inception weights (pt_inception-2015-12-05-6726825d.pth)"
)
_evaluate.add_argument(
    "--fid-ref",
    default=None,
    help="--task fid: folder holding cifar-10-batches-bin (its training images), image folder, or .npz (mu, sigma)",
)
_evaluate.add_argument(
    "--n", type=count_arg(), default=50_000, help="--task fid: images to draw (50000, DDPM's protocol)"
)
inverse_cli.evaluate_flags(_evaluate)

for _module in EXTRA_TASKS.values():
    _module.register(add)

main = cli.run

if __name__ == "__main__":
    main()
