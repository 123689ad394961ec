"""`omnidiffusion-vision`: train | sample | upscale | inpaint | restore | evaluate (parse, load config, wire; no logic).

omnidiffusion-vision train --config sr3-faces | ddpm-faces | ddpm-digits [--set train.steps=500] [--out DIR]
omnidiffusion-vision sample --checkpoint DIR --n 16 --output grid.png
omnidiffusion-vision upscale --checkpoint DIR --input lr.png --output sr.png
omnidiffusion-vision inpaint --checkpoint DIR --input img.png --mask mask.png|box|half|lines|strokes --output out.png
omnidiffusion-vision evaluate --task sr --checkpoint DIR --hr-dir FOLDER --scale 4
omnidiffusion-vision evaluate --task inpaint --checkpoint DIR --image-dir FOLDER --mask box
omnidiffusion-vision segment --checkpoint DIR --input img.png --output mask.png
omnidiffusion-vision points-generate --checkpoint DIR --n 8 --out-dir clouds/
omnidiffusion-vision points-complete --checkpoint DIR --input partial.ply --output full.ply
omnidiffusion-vision anomaly-score --checkpoint DIR --input img.png --output-dir OUT
omnidiffusion-vision evaluate --task seg --checkpoint DIR --image-dir F --mask-dir F
omnidiffusion-vision evaluate --task points --checkpoint DIR --data-dir F
omnidiffusion-vision evaluate --task anomaly --checkpoint DIR --image-dir F --mask-dir F
omnidiffusion-vision restore --checkpoint DIR --task sr4|inpaint|deblur|colorize --input y.png --solver ddnm \\
    --output x.png
omnidiffusion-vision evaluate --task inverse --checkpoint DIR --image-dir F --inverse-task sr4 --solver dps
(--checkpoint of sample | inpaint | restore | evaluate --task inpaint | inverse: ours or a local diffusers folder)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from omnidiffusion.core.cli import AppCLI, add_device_argument, count_arg

from .anomaly import commands as anomaly_commands
from .flags import as_flags, image_output
from .inverse import commands as inverse_commands
from .points import commands as points_commands
from .segmentation import commands as seg_commands
from .settings import PACKAGE, VisionConfig

# Vision II tasks: each module adds its own verbs and answers `evaluate --task <name>`.
EXTRA_TASKS = {
    "seg": seg_commands,
    "points": points_commands,
    "anomaly": anomaly_commands,
    "inverse": inverse_commands,
}

cli = AppCLI(
    "omnidiffusion-vision",
    "Image diffusion: DDPM, SR3 super-resolution, RePaint inpainting, segmentation, point clouds, anomaly detection.",
    package=PACKAGE,
)


def run_train(args: argparse.Namespace, config: VisionConfig) -> int:
    from .training import train

    resume = {"auto": None, "yes": True, "no": False}[args.resume]
    model = train(config, out_dir=args.out, resume=resume)
    out = args.out or config.out
    params = sum(p.numel() for p in model.parameters())
    print(f"trained {type(model).__name__} ({params} parameters) -> {out}")
    return 0


train_parser = cli.add_command(
    "train",
    run_train,
    VisionConfig,
    help="train a model: config.task = ddpm | sr3 | regression | segdiff | seg-unet | ddpm-seg | points | anomaly",
    default_config="ddpm-digits",
)
train_parser.add_argument("--out", default=None, help="output directory (default: the config's `out`)")
train_parser.add_argument(
    "--resume",
    choices=("auto", "yes", "no"),
    default="auto",
    help="continue from out/checkpoint: auto = when one exists",
)


def run_sample(args: argparse.Namespace, config: VisionConfig) -> int:
    from .imaging import to_pixel_range
    from .priors import load_image_prior

    image_output(args.output)
    model = load_image_prior(args.checkpoint, args.device)
    s = config.sample
    gen = torch.Generator().manual_seed(s.seed)
    x = to_pixel_range(model.generate(args.n, method=s.method, steps=s.steps, grid=s.grid, generator=gen))
    _save_grid(x, args.output)
    print(f"{args.n} samples ({s.method}, {s.steps} steps) -> {args.output}")
    return 0


def run_upscale(args: argparse.Namespace, config: VisionConfig) -> int:
    from .imaging import read_image, tensor_to_pil
    from .pipeline import SuperResolution

    image_output(args.output)
    sr = SuperResolution.from_pretrained(args.checkpoint, args.device)
    s = config.sample
    image = read_image(args.input, sr.model.channels)
    with as_flags(image="--input", lr="--input", tile="sample.tile"):
        out = sr.upscale(
            image, method=s.method, steps=s.steps, grid=s.grid, samples=s.samples, seed=s.seed, tile=s.tile
        )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(out).save(args.output)
    print(f"{tuple(image.shape[-2:])} -> {tuple(out.shape[-2:])} ({s.method}, {s.steps} steps) -> {args.output}")
    return 0


def run_inpaint(args: argparse.Namespace, config: VisionConfig) -> int:
    from .imaging import read_image, tensor_to_pil
    from .pipeline import Inpainter

    image_output(args.output)
    inp = Inpainter.from_pretrained(args.checkpoint, args.device)
    r = config.repaint
    image = read_image(args.input, inp.model.channels)
    with as_flags(image="--input", mask="--mask"):
        out = inp.inpaint(
            image,
            args.mask,
            steps=r.steps,
            jump_length=r.jump_length,
            jump_n_sample=r.jump_n_sample,
            samples=r.samples,
            seed=r.seed,
        )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(out).save(args.output)
    print(f"inpainted ({args.mask}, RePaint {r.steps} steps, j={r.jump_length}, r={r.jump_n_sample}) -> {args.output}")
    return 0


def run_evaluate(args: argparse.Namespace, config: VisionConfig) -> int:
    from omnidiffusion.core.cli import print_json

    from .data import load_folder_images
    from .evaluation import evaluate_inpaint, evaluate_sr
    from .models import SR3, RegressionSR
    from .priors import load_image_prior

    device = args.device
    if args.task in EXTRA_TASKS:
        result = EXTRA_TASKS[args.task].evaluate(args, config)
        print_json(result)
        return 0
    if args.task == "sr":
        if not args.hr_dir:
            raise ValueError("--hr-dir: expected a folder of high-resolution images for --task sr")
        model = SR3.from_pretrained(args.checkpoint, map_location=device)
        if args.scale is not None and args.scale != model.scale:
            raise ValueError(f"--scale: the checkpoint was trained for scale {model.scale}, got {args.scale}")
        with as_flags(size="--crop"):
            hr = load_folder_images(args.hr_dir, model.channels, args.crop)
        reg = RegressionSR.from_pretrained(args.regression, map_location=device) if args.regression else None
        s = config.sample
        with as_flags(hr="--hr-dir", tile="sample.tile"):
            result = evaluate_sr(
                model,
                hr,
                regression=reg,
                method=s.method,
                steps=s.steps,
                grid=s.grid,
                samples=s.samples,
                seed=s.seed,
                batch_size=s.batch_size,
                tile=s.tile,
            )
        result["protocol"]["data"] = str(args.hr_dir)
    else:
        if not args.image_dir:
            raise ValueError("--image-dir: expected a folder of images for --task inpaint")
        model = load_image_prior(args.checkpoint, device)
        if args.crop is not None and args.crop != model.image_size:
            raise ValueError(
                f"--crop: expected the model's image size {model.image_size} for --task inpaint (or no --crop), "
                f"got {args.crop}"
            )
        with as_flags(size="--crop" if args.crop else "--image-dir"):
            images = load_folder_images(args.image_dir, model.channels, model.image_size)
        r = config.repaint
        result = evaluate_inpaint(
            model,
            images,
            args.mask,
            steps=r.steps,
            jump_length=r.jump_length,
            jump_n_sample=r.jump_n_sample,
            samples=r.samples,
            seed=r.seed,
            batch_size=r.batch_size,
        )
        result["protocol"]["data"] = str(args.image_dir)
    print_json(result)
    return 0


def _save_grid(x, path: str) -> None:
    """(B, C, H, W) in [0, 1] -> one PNG grid (8 per row)."""
    from .imaging import tensor_to_pil

    b, c, h, w = x.shape
    cols = min(8, b)
    rows = -(-b // cols)
    grid = torch.ones(c, rows * (h + 1) + 1, cols * (w + 1) + 1)
    for i in range(b):
        r, k = divmod(i, cols)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + k * (w + 1) : 1 + k * (w + 1) + w] = x[i]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(grid).save(path)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a directory written by `train` (or save_pretrained); sample | inpaint | restore | evaluate --task "
        "inpaint | inverse also take a local diffusers folder (model_index.json + unet/ + scheduler/, or a "
        "UNet2DModel)",
    )
    add_device_argument(parser)


_sample = cli.add_command(
    "sample", run_sample, VisionConfig, help="draw images from an unconditional DDPM ([sample] settings)"
)
_common(_sample)
_sample.add_argument("--n", type=count_arg(), default=16, help="number of images")
_sample.add_argument("--output", default="samples.png", help="PNG grid to write")

_upscale = cli.add_command(
    "upscale", run_upscale, VisionConfig, help="super-resolve one image with SR3 ([sample] settings)"
)
_common(_upscale)
_upscale.add_argument("--input", required=True, help="the low-resolution image (PNG/JPEG)")
_upscale.add_argument("--output", default="upscaled.png", help="PNG to write")

_inpaint = cli.add_command(
    "inpaint", run_inpaint, VisionConfig, help="fill the holes of one image with RePaint ([repaint] settings)"
)
_common(_inpaint)
_inpaint.add_argument("--input", required=True, help="the image (PNG/JPEG) at the model's size")
_inpaint.add_argument("--mask", default="box", help="box | half | lines | strokes | a mask image (white = keep)")
_inpaint.add_argument("--output", default="inpainted.png", help="PNG to write")

_evaluate = cli.add_command(
    "evaluate",
    run_evaluate,
    VisionConfig,
    help="score a model against its baselines on a folder of images; prints one JSON object",
)
_common(_evaluate)
_evaluate.add_argument("--task", choices=("sr", "inpaint", *EXTRA_TASKS), required=True)
_evaluate.add_argument("--hr-dir", default=None, help="--task sr: folder of high-resolution images")
_evaluate.add_argument(
    "--scale", type=count_arg(), default=None, help="--task sr: SR factor (must match the checkpoint)"
)
_evaluate.add_argument("--regression", default=None, help="--task sr: a RegressionSR checkpoint to compare with")
_evaluate.add_argument("--image-dir", default=None, help="--task inpaint | inverse | seg | anomaly: folder of images")
_evaluate.add_argument("--mask-dir", default=None, help="--task seg | anomaly: folder of ground-truth masks (PNG)")
_evaluate.add_argument("--data-dir", default=None, help="--task points: folder of point clouds (.npy/.ply/.off/.xyz)")
_evaluate.add_argument(
    "--mask", default="box", help="--task inpaint | inverse: box | half | lines | strokes | mask file"
)
_evaluate.add_argument("--crop", type=count_arg(), default=None, help="center-crop every image to this side")

inverse_commands.evaluate_flags(_evaluate)
for _module in EXTRA_TASKS.values():
    _module.register(cli, _common)


def main() -> None:
    """The console script: AppCLI prints bad usage and bad input as one `error:` line with exit code 2."""
    cli.run()


if __name__ == "__main__":
    main()
