"""Command-line wiring of the segmentation task: `segment`, `evaluate --task seg` and `train` for its tasks.

omnidiffusion-vision train --config segdiff-shapes | seg-unet-shapes | ddpm-seg-shapes [--out DIR]
omnidiffusion-vision segment --checkpoint DIR --input image.png --out mask.png [--overlay o.png]
omnidiffusion-vision evaluate --task seg --checkpoint DIR --image-dir F --mask-dir F [--set seg.unet_checkpoint=D]

The checkpoint's run config is the starting point (--set seg.n_samples=8 --set sampler.steps=10 change it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from ..data import center_crop
from ..flags import as_flags, image_output
from ..imaging import read_image, tensor_to_pil
from .data import held_out_data, load_mask_pairs, training_data
from .ddpm_seg import compare_with_raw_pixels
from .evaluation import evaluate_segmentation
from .pipeline import Segmenter, overlay
from .training import TASKS, train

TRAINS = TASKS  # the config.task values `train` runs


def evaluate(args: argparse.Namespace, config) -> dict:
    """`evaluate --task seg`: the checkpoint's Dice / IoU (or mIoU for DDPM-Seg) and its baselines' in one dict."""
    seg = Segmenter.from_pretrained(args.checkpoint, device=args.device, config=config)
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
        train_images, train_masks = training_data(config)
        work = Path(args.checkpoint) / "evaluate"
        result = compare_with_raw_pixels(
            seg.model, train_images, train_masks, images, masks, config, work, classifier=seg.classifier
        )
    else:
        unet = None
        if config.seg.unet_checkpoint:
            unet = Segmenter.from_pretrained(config.seg.unet_checkpoint, device=args.device,
                                             threshold=config.seg.threshold)  # fmt: skip
        s = config.sampler
        result = evaluate_segmentation(
            seg, images, masks, unet=unet, n_samples=config.seg.n_samples, method=s.method, steps=s.steps,
            grid=s.grid, seed=s.seed,
        )  # fmt: skip
    result["protocol"]["data"] = data
    return result


def run_segment(args: argparse.Namespace, config) -> int:
    """`segment`: one image -> mask PNG (white = foreground), overlay PNG and optional uncertainty PNG."""
    for flag, value in (("--out", args.out), ("--overlay", args.overlay), ("--uncertainty", args.uncertainty)):
        if value:
            image_output(value, flag)
    seg = Segmenter.from_pretrained(args.checkpoint, device=args.device, config=config)
    image = read_image(args.input, seg.channels)  # (C, H, W) in [0, 1]
    with as_flags(image="--input", images="--input", n_samples="seg.n_samples"):
        mask, unc, _ = seg.segment_tensor(image[None])
    out = Path(args.out)
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


def register(add) -> None:
    """Add this task's verbs to `omnidiffusion-vision`; `add(name, handler, help=..., out=...)` registers one
    inference command on the root config with --checkpoint."""
    p = add(
        "segment",
        run_segment,
        help="segment one image with a SegDiff / UNet / DDPM-Seg checkpoint ([seg] and [sampler] settings)",
        out=("mask.png", "mask PNG to write (white = foreground)"),
    )
    p.add_argument("--input", required=True, help="the image (PNG/JPEG) at the model's size")
    p.add_argument("--overlay", default=None, help="overlay PNG (default: OUT with _overlay)")
    p.add_argument("--uncertainty", default=None, help="also write the per-pixel uncertainty as a PNG")


__all__ = ["TRAINS", "evaluate", "register", "run_segment", "train"]
