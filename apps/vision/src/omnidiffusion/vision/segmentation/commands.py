"""CLI wiring of the segmentation task: the `segment` verb, `evaluate --task seg` and `train` for its tasks.

omnidiffusion-vision train --config segdiff-shapes | seg-unet-shapes | ddpm-seg-shapes [--out DIR]
omnidiffusion-vision segment --checkpoint DIR --input image.png --output mask.png [--overlay o.png]
omnidiffusion-vision evaluate --task seg --checkpoint DIR --image-dir F --mask-dir F [--set seg.unet_checkpoint=D]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, count_arg

from ..flags import as_flags, image_output


def training_data(config):
    """(images, masks) to train on: the bundled set's train split, or every pair of seg.image_dir / seg.mask_dir."""
    from .data import bundled_split, load_mask_pairs

    s = config.seg
    if s.source == "folder":
        if not s.image_dir or not s.mask_dir:
            raise ValueError("seg.image_dir, seg.mask_dir: expected two folders when seg.source = 'folder', got ''")
        images, masks, _ = load_mask_pairs(s.image_dir, s.mask_dir, config.data.channels)
        return images, masks
    split = bundled_split(s.n_images, s.n_test, config.data.image_size, s.source, s.data_seed, s.split_seed)
    return split["train"]


def held_out_data(config):
    """The bundled set's held-out split (what `evaluate` scores when no folders are given)."""
    from .data import bundled_split

    s = config.seg
    source = "mixed" if s.source == "folder" else s.source
    return bundled_split(s.n_images, s.n_test, config.data.image_size, source, s.data_seed, s.split_seed)["test"]


def train(config, out_dir, resume):
    """`omnidiffusion-vision train` for config.task segdiff | seg-unet | ddpm-seg; returns the trained model."""
    from .ddpm_seg import train_ddpm_seg
    from .training import train_seg_unet, train_segdiff

    images, masks = training_data(config)
    fn = {"segdiff": train_segdiff, "seg-unet": train_seg_unet, "ddpm-seg": train_ddpm_seg}[config.task]
    return fn(images, masks, config, out_dir, resume=resume)


def run_config(args: argparse.Namespace, config):
    """Without --config, the config the checkpoint was trained with (kept in its metadata) plus the --set overrides,
    so the bundled split, image size and DDPM-Seg settings are the run's; otherwise `config`."""
    from omnidiffusion.core.config import apply_override, from_dict
    from omnidiffusion.core.io import read_pretrained_config

    from ..settings import VisionConfig

    if getattr(args, "config", None) is not None:
        return config
    directory = Path(args.checkpoint)
    directory = directory / "ddpm" if (directory / "ddpm" / "config.json").is_file() else directory
    stored = read_pretrained_config(directory).get("metadata", {}).get("vision_config")
    if not stored:
        return config
    run = from_dict(VisionConfig, stored)
    for override in getattr(args, "overrides", []):
        run = apply_override(run, override)
    return run


def evaluate(args: argparse.Namespace, config) -> dict:
    """`evaluate --task seg`: the checkpoint's Dice / IoU (or mIoU for DDPM-Seg) and its baselines' in one dict."""
    from ..data import center_crop
    from .data import load_mask_pairs
    from .evaluation import evaluate_segmentation
    from .pipeline import Segmenter

    device = args.device
    config = run_config(args, config)
    seg = Segmenter.from_pretrained(args.checkpoint, device, threshold=config.seg.threshold)
    if bool(args.image_dir) != bool(args.mask_dir):
        raise ValueError("--image-dir, --mask-dir: expected both folders (images and masks with the same stems)")
    if args.image_dir:
        images, masks, _ = load_mask_pairs(args.image_dir, args.mask_dir, seg.channels)
        data = f"{args.image_dir} + {args.mask_dir}"
    else:
        images, masks = held_out_data(config)
        data = f"bundled {config.seg.source} held-out split (seed {config.seg.split_seed})"
    if args.crop is not None:
        with as_flags(size="--crop"):
            images, masks = center_crop(images, args.crop), center_crop(masks, args.crop)
    if seg.kind == "ddpm-seg":
        from .ddpm_seg import compare_with_raw_pixels

        train_images, train_masks = training_data(config)
        work = Path(args.checkpoint) / "evaluate"
        result = compare_with_raw_pixels(
            seg.model, train_images, train_masks, images, masks, config, work, classifier=seg.classifier
        )
    else:
        unet = None
        if config.seg.unet_checkpoint:
            unet = Segmenter.from_pretrained(config.seg.unet_checkpoint, device, threshold=config.seg.threshold)
        s = config.sample
        result = evaluate_segmentation(
            seg,
            images,
            masks,
            unet=unet,
            n_samples=config.seg.n_samples,
            method=s.method,
            steps=s.steps,
            grid=s.grid,
            seed=s.seed,
        )
    result["protocol"]["data"] = data
    return result


def run_segment(args: argparse.Namespace, config) -> int:
    """`segment`: one image -> mask PNG (white = foreground), overlay PNG and optional uncertainty PNG."""
    from PIL import Image

    from ..imaging import read_image, tensor_to_pil
    from .pipeline import Segmenter, overlay

    for flag in ("output", "overlay", "uncertainty"):
        if getattr(args, flag):
            image_output(getattr(args, flag), f"--{flag}")
    seg = Segmenter.from_pretrained(args.checkpoint, args.device, threshold=config.seg.threshold)
    image = read_image(args.input, seg.channels)  # (C, H, W) in [0, 1]
    s = config.sample
    n = config.seg.n_samples if args.n_samples is None else args.n_samples
    with as_flags(image="--input", images="--input"):
        mask, unc, _ = seg.segment_tensor(image[None], n, method=s.method, steps=s.steps, grid=s.grid, seed=s.seed)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask[0, 0].numpy() * 255).astype("uint8"), "L").save(out)
    over = Path(args.overlay) if args.overlay else out.with_name(out.stem + "_overlay.png")
    tensor_to_pil(overlay(image, mask[0])).save(over)
    written = [str(out), str(over)]
    if args.uncertainty:
        tensor_to_pil(unc[0].clamp(0, 1) / max(float(unc.max()), 1e-8)).save(args.uncertainty)
        written.append(args.uncertainty)
    frac = float(mask.mean())
    print(f"{seg.kind}: foreground {frac:.1%}, mean uncertainty {float(unc.mean()):.3f} -> {', '.join(written)}")
    return 0


def register(cli: AppCLI, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this task's verbs to `omnidiffusion-vision` (`common` adds --checkpoint and --device)."""
    from ..settings import VisionConfig

    p = cli.add_command(
        "segment",
        run_segment,
        VisionConfig,
        help="segment one image with a SegDiff / UNet / DDPM-Seg checkpoint ([seg] and [sample] settings)",
    )
    common(p)
    p.add_argument("--input", required=True, help="the image (PNG/JPEG) at the model's size")
    p.add_argument("--output", default="mask.png", help="mask PNG to write (white = foreground)")
    p.add_argument("--overlay", default=None, help="overlay PNG (default: OUTPUT with _overlay)")
    p.add_argument("--uncertainty", default=None, help="also write the per-pixel uncertainty as a PNG")
    p.add_argument("--n-samples", type=count_arg(), default=None, help="ensemble size (default: seg.n_samples)")
