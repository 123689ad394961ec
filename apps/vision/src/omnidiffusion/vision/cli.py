"""`omnidiffusion-vision`: train | sample | upscale | inpaint | evaluate (parse, load config, wire; no logic).

omnidiffusion-vision train --config sr3-faces | ddpm-faces | ddpm-digits [--set train.steps=500] [--out DIR]
omnidiffusion-vision sample --checkpoint DIR --n 16 --output grid.png
omnidiffusion-vision upscale --checkpoint DIR --input lr.png --output sr.png
omnidiffusion-vision inpaint --checkpoint DIR --input img.png --mask mask.png|box|half|lines|strokes --output out.png
omnidiffusion-vision evaluate --task sr --checkpoint DIR --hr-dir FOLDER --scale 4
omnidiffusion-vision evaluate --task inpaint --checkpoint DIR --image-dir FOLDER --mask box
"""

from __future__ import annotations

import argparse

from omnidiffusion.core.cli import AppCLI

from .settings import PACKAGE, VisionConfig

cli = AppCLI(
    "omnidiffusion-vision", "Image diffusion: DDPM, SR3 super-resolution, RePaint inpainting.", package=PACKAGE
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
    "train", run_train, VisionConfig, help="train a DDPM, SR3 or regression model", default_config="ddpm-digits"
)
train_parser.add_argument("--out", default=None, help="output directory (default: the config's `out`)")
train_parser.add_argument(
    "--resume",
    choices=("auto", "yes", "no"),
    default="auto",
    help="continue from out/checkpoint: auto = when one exists",
)


def main() -> None:
    raise SystemExit(cli.main())


if __name__ == "__main__":
    main()
