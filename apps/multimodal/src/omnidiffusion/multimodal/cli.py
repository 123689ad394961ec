"""`omnidiffusion-multimodal train | generate | evaluate` (parse, load config, wire; no logic).

    omnidiffusion-multimodal train --config default --out runs/multimodal
    omnidiffusion-multimodal generate --checkpoint runs/multimodal --prompt "a small red circle" --n 4 --out grid.png
    omnidiffusion-multimodal evaluate --checkpoint runs/multimodal --split unseen --prompts 32
    omnidiffusion-multimodal evaluate --checkpoint runs/multimodal --folder my_scenes/   # captions.csv + PNGs

`generate` and `evaluate` take their sampler settings from the checkpoint; `--set sampler.x=...` overrides them
(`sampler.guidance_scale`, `sampler.method`, `sampler.steps`, ...). Bad input ends a command with one line
`omnidiffusion-multimodal CMD: error: ...` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, add_device_argument, count_arg, output_file, print_json

from .settings import MultimodalConfig, check_sampler_value

PACKAGE = "omnidiffusion.multimodal"


@dataclass
class SamplerOverrides:
    """Sampler settings to override; None keeps the checkpoint's value."""

    method: str | None = None
    steps: int | None = None
    grid: str | None = None
    guidance_scale: float | None = None
    batch_size: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) is not None:
                check_sampler_value(f.name, getattr(self, f.name))


@dataclass
class UseConfig:
    """Config of the commands that use a trained checkpoint: only sampler overrides."""

    sampler: SamplerOverrides = field(default_factory=SamplerOverrides)


def _load(args: argparse.Namespace, config: UseConfig):
    from .pipeline import TextToImage

    if not Path(args.checkpoint).is_dir():
        raise FileNotFoundError(f"--checkpoint: no such folder {args.checkpoint} (expected one written by `train`)")
    try:
        pipe = TextToImage.from_pretrained(args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"--checkpoint: {e}") from None
    changes = {k: v for k, v in asdict(config.sampler).items() if v is not None}
    pipe.config.sampler = replace(pipe.config.sampler, **changes)
    return pipe


def run_train(args: argparse.Namespace, config: MultimodalConfig) -> None:
    from .training import train

    train(config, args.out, resume=None)
    if os.environ.get("RANK", "0") == "0":
        print(f"wrote {args.out}")


def run_generate(args: argparse.Namespace, config: UseConfig) -> None:
    from .data import parse_caption, to_uint8

    out = output_file(args.out, "--out")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"--out: expected a .png or .jpg file name, got {out.name}")
    prompts = [p.strip() for p in args.prompt]
    for p in prompts:
        if not p:
            raise ValueError("--prompt: expected a non-empty caption, got ''")
        if args.strict:
            parse_caption(p)
    pipe = _load(args, config)
    x = pipe.generate_tensor(prompts, n_per_prompt=args.n, progress=True)
    from PIL import Image

    arr = to_uint8(x)  # (P * n, 32, 32, 3), prompt-major
    rows = arr.reshape(len(prompts), args.n, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(-1, args.n * 32, 3)
    Image.fromarray(rows).save(args.out)
    print(f"wrote {args.out} ({len(prompts)} rows of {args.n})")


def run_evaluate(args: argparse.Namespace, config: UseConfig) -> None:
    from .data import load_folder, make_split
    from .evaluation import evaluate, get_classifier

    if args.folder is not None:
        images, captions = load_folder(args.folder)
        source = str(args.folder)
    else:
        s = make_split(args.split, args.reference, seed=args.seed + 5)
        images, captions, source = s.images, s.captions, f"bundled {args.split} split"
    pipe = _load(args, config)
    classifier, info = get_classifier(args.checkpoint, steps=args.classifier_steps)
    try:
        report = evaluate(pipe, classifier, images, captions, n_prompts=args.prompts, n_per_prompt=args.n,
                          seed=args.seed)
    except ValueError as e:
        if str(e).startswith("caption:"):
            raise ValueError(f"--folder: {e}") from None
        raise
    report["protocol"].update({"data": source, "classifier": info})
    print_json(report)


def build_cli() -> AppCLI:
    cli = AppCLI("omnidiffusion-multimodal", "Text-to-image latent diffusion with classifier-free guidance.",
                 package=PACKAGE)
    train = cli.add_command("train", run_train, MultimodalConfig, help="train the autoencoder and the denoiser",
                            default_config="default")
    train.add_argument("--out", default="runs/multimodal", help="output directory (checkpoints, final weights)")
    gen = cli.add_command("generate", run_generate, UseConfig, help="draw images for prompts into one PNG grid")
    ev = cli.add_command("evaluate", run_evaluate, UseConfig,
                         help="faithfulness, Frechet distance and diversity vs baselines; prints one JSON object")
    for sub in (gen, ev):
        sub.add_argument("--checkpoint", required=True, help="directory written by `train`")
        add_device_argument(sub)
    gen.add_argument("--prompt", action="append", required=True, help="a caption, repeatable (one grid row each)")
    gen.add_argument("--n", type=count_arg(maximum=64), default=4, help="images per prompt")
    gen.add_argument("--out", required=True, help="output PNG")
    gen.add_argument("--strict", action="store_true", help="refuse prompts outside the bundled grammar")
    ev.add_argument("--split", choices=("seen", "unseen"), default="seen", help="bundled prompts and references")
    ev.add_argument("--folder", default=None, help="a folder with captions.csv (file,caption) instead of --split")
    ev.add_argument("--reference", type=count_arg(minimum=4), default=400, help="bundled reference images")
    ev.add_argument("--prompts", type=count_arg(), default=32, help="distinct prompts to generate for")
    ev.add_argument("--n", type=count_arg(minimum=2, maximum=64), default=4, help="images per prompt")
    ev.add_argument("--seed", type=count_arg(minimum=0), default=0, help="sampler seed")
    ev.add_argument("--classifier-steps", type=count_arg(), default=1200,
                    help="training steps of the attribute classifier (cached in CHECKPOINT/classifier)")
    return cli


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; the AppCLI turns bad input into one stderr line and exit code 2."""
    return build_cli().main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
