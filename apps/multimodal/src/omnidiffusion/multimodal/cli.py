"""`omnidiffusion-multimodal train | generate | evaluate` (parse, load config, wire; no logic).

    omnidiffusion-multimodal train --config default --out runs/multimodal
    omnidiffusion-multimodal generate --checkpoint runs/multimodal --prompt "a small red circle" --out grid.png
    omnidiffusion-multimodal evaluate --checkpoint runs/multimodal --split unseen --prompts 32
    omnidiffusion-multimodal evaluate --checkpoint runs/multimodal --folder my_scenes/   # captions.csv + PNGs

`generate` and `evaluate` start from the config stored in the checkpoint (run_config.json); `--set sampler.x=...`
changes its sampling (`sampler.guidance_scale`, `sampler.method`, `sampler.steps`, `sampler.seed`,
`sampler.samples` = images per prompt, ...). Bad input ends a command with one line
`omnidiffusion-multimodal CMD: error: ...` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from omnidiffusion.core.cli import AppCLI, count_arg, output_file, print_json
from omnidiffusion.core.io import has_run_config
from omnidiffusion.core.training import is_main_process

from .data import load_folder, make_split, parse_caption, to_uint8
from .evaluation import evaluate, get_classifier
from .pipeline import TextToImage
from .settings import LEGACY_CONFIG, MultimodalConfig, legacy_config
from .training import train

PACKAGE = "omnidiffusion.multimodal"


def run_config(args: argparse.Namespace, config: MultimodalConfig) -> MultimodalConfig:
    """The command's config: the checkpoint's run_config.json + --set (AppCLI), or for a run written before
    run_config.json its multimodal.json + --set."""
    if has_run_config(args.checkpoint) or not (Path(args.checkpoint) / LEGACY_CONFIG).is_file():
        return config
    try:
        return legacy_config(args.checkpoint, args.overrides)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"--checkpoint: {e}") from None


def load_pipeline(args: argparse.Namespace, config: MultimodalConfig) -> TextToImage:
    """The checkpoint's model with the command's `[sampler]` (stored config + --set)."""
    try:
        return TextToImage.from_pretrained(args.checkpoint, device=args.device, config=config)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"--checkpoint: {e}") from None


def run_train(args: argparse.Namespace, config: MultimodalConfig) -> None:
    for stage in (config.train, config.autoencoder.train):
        if stage.device == "auto":  # --set train.device=... stays as given
            stage.device = str(args.device)
    train(config, args.out, resume=args.resume)
    if is_main_process():
        print(f"wrote {args.out}")


def run_generate(args: argparse.Namespace, config: MultimodalConfig) -> None:
    config = run_config(args, config)
    out = output_file(args.out, "--out")
    if out is None:
        raise ValueError("--out: expected the PNG file to write, got none")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"--out: expected a .png or .jpg file name, got {out.name}")
    prompts = [p.strip() for p in args.prompt]
    for p in prompts:
        if not p:
            raise ValueError("--prompt: expected a non-empty caption, got ''")
        if args.strict:
            parse_caption(p)
    pipe = load_pipeline(args, config)
    n = config.sampler.samples
    arr = to_uint8(pipe.generate_tensor(prompts, progress=True))  # (P * n, 32, 32, 3), prompt-major
    rows = arr.reshape(len(prompts), n, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(-1, n * 32, 3)
    Image.fromarray(rows).save(out)
    print(f"wrote {out} ({len(prompts)} rows of {n})")


def run_evaluate(args: argparse.Namespace, config: MultimodalConfig) -> None:
    config = run_config(args, config)
    if config.sampler.samples < 2:
        raise ValueError(f"sampler.samples: expected >= 2 images per prompt (diversity), got {config.sampler.samples}")
    if args.folder is not None:
        images, captions = load_folder(args.folder)
        source = str(args.folder)
    else:
        s = make_split(args.split, args.reference, seed=config.sampler.seed + 5)
        images, captions, source = s.images, s.captions, f"bundled {args.split} split"
    pipe = load_pipeline(args, config)
    classifier, info = get_classifier(args.checkpoint, steps=args.classifier_steps)
    try:
        report = evaluate(pipe, classifier, images, captions, n_prompts=args.prompts)
    except ValueError as e:
        if str(e).startswith("caption:"):
            raise ValueError(f"--folder: {e}") from None
        raise
    report["protocol"].update({"data": source, "classifier": info})
    print_json(report)


cli = AppCLI("omnidiffusion-multimodal", "Text-to-image latent diffusion with classifier-free guidance.",
             package=PACKAGE)
cli.add_command("train", run_train, MultimodalConfig, help="train the autoencoder and the denoiser",
                default_config="default", out=("runs/multimodal", "output directory (checkpoints, final weights)"),
                resume=True)
_gen = cli.add_command("generate", run_generate, MultimodalConfig, checkpoint="required",
                       out=(None, "output PNG (one row of sampler.samples images per prompt)"),
                       help="draw images for prompts into one PNG grid")
_gen.add_argument("--prompt", action="append", required=True, help="a caption, repeatable (one grid row each)")
_gen.add_argument("--strict", action="store_true", help="refuse prompts outside the bundled grammar")
_ev = cli.add_command("evaluate", run_evaluate, MultimodalConfig, checkpoint="required",
                      help="faithfulness, Frechet distance and diversity vs baselines; prints one JSON object")
_ev.add_argument("--split", choices=("seen", "unseen"), default="seen", help="bundled prompts and references")
_ev.add_argument("--folder", default=None, help="a folder with captions.csv (file,caption) instead of --split")
_ev.add_argument("--reference", type=count_arg(minimum=4), default=400, help="bundled reference images")
_ev.add_argument("--prompts", type=count_arg(), default=32, help="distinct prompts to generate for")
_ev.add_argument("--classifier-steps", type=count_arg(), default=1200,
                 help="training steps of the attribute classifier (cached in CHECKPOINT/classifier)")
main = cli.run


if __name__ == "__main__":
    main()
