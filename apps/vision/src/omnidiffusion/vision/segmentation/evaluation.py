"""Scoring a segmenter against its baselines on images with ground-truth masks, in the CLI's JSON shape.

`evaluate_segmentation(segmenter, images, masks, unet=None, ...)` returns {"model": {...}, "baselines": {name:
{...}}, "protocol": {...}}: Dice and IoU per image (mean) and pooled over the set (metrics.py states the rules),
for the segmenter (SegDiff's ensemble of n_samples, or one of the other kinds), Otsu with the minority polarity, and
the same-size UNet when one is given. For SegDiff the model row also holds the single-draw scores and the mean
per-pixel uncertainty, and how it relates to the errors: the mean uncertainty on wrong pixels and on right ones.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from .baselines import otsu_segment
from .data import check_pairs
from .metrics import segmentation_scores
from .pipeline import Segmenter, ensemble_statistics


def _segdiff_rows(seg: Segmenter, images: Tensor, masks: Tensor, n_samples: int, method, steps, grid, seed) -> dict:
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    draws = seg.model.sample_masks(images * 2 - 1, n_samples, method=method, steps=steps, grid=grid, generator=gen)
    seconds = time.perf_counter() - t0
    mean, _, std = ensemble_statistics(draws)
    mask = (mean >= seg.threshold).float()
    row = segmentation_scores(mask, masks)
    single = segmentation_scores(((draws[0] + 1) / 2 >= 0.5).float(), masks)
    wrong = mask != (masks >= 0.5).float()
    row |= {
        "dice_single_draw": single["dice"],
        "iou_single_draw": single["iou"],
        "uncertainty_mean": float(std.mean()),
        "uncertainty_on_errors": float(std[wrong].mean()) if bool(wrong.any()) else 0.0,
        "uncertainty_on_correct": float(std[~wrong].mean()) if bool((~wrong).any()) else 0.0,
        "sampling_seconds": seconds,
    }
    return row


def evaluate_segmentation(
    segmenter: Segmenter,
    images: Tensor,
    masks: Tensor,
    *,
    unet: Segmenter | None = None,
    n_samples: int = 5,
    method: str = "ddpm",
    steps: int | None = None,
    grid: str = "trailing",
    seed: int = 0,
) -> dict:
    """Scores of `segmenter` and the baselines on pixel-range images (N, C, H, W) and masks (N, 1, H, W) in {0, 1}."""
    check_pairs(images, masks, channels=segmenter.channels)
    if segmenter.kind == "segdiff":
        model_row = _segdiff_rows(segmenter, images, masks, n_samples, method, steps, grid, seed)
    else:
        t0 = time.perf_counter()
        pred, _, _ = segmenter.segment_tensor(images, n_samples)
        model_row = segmentation_scores(pred, masks) | {"seconds": time.perf_counter() - t0}
    baselines = {"otsu": segmentation_scores(otsu_segment(images), masks)}
    if unet is not None:
        pred, _, _ = unet.segment_tensor(images)
        baselines["unet-bce-dice"] = segmentation_scores(pred, masks)
    protocol = {
        "kind": segmenter.kind,
        "images": int(images.shape[0]),
        "size": list(images.shape[-2:]),
        "threshold": segmenter.threshold,
        "empty_rule": "both masks empty -> 1; one empty -> 0",
        "dice": "mean over images; *_pooled: one score over all pixels of the set",
        "otsu_polarity": "minority (the side with fewer pixels is the foreground)",
    }
    if segmenter.kind == "segdiff":
        T = segmenter.model.schedule.T
        protocol |= {"n_samples": n_samples, "method": method, "steps": steps or T, "grid": grid, "seed": seed}
    return {"model": model_row, "baselines": baselines, "protocol": protocol}
