"""DDPM-Seg end to end (Baranchuk et al. 2022): a trained ImageDDPM's decoder features -> pixel-MLP ensemble.

`train_ddpm_seg(images, masks, config, out_dir)` (`fit_ddpm_seg`: the same, returning the TrainResult):
1. the ImageDDPM: loaded from `seg.ddpm_checkpoint`, or trained on all the training images (no labels needed) with
   vision's `train_image_ddpm` (core `fit`) into out_dir/ddpm;
2. the first `seg.n_labelled` training images are the labelled ones: their features (`features.DDPMFeatures`,
   blocks `seg.feature_blocks`, table steps `seg.feature_steps`) are streamed and `seg.pixels_per_image` pixels of
   each are kept (half foreground where possible);
3. a `PixelEnsemble` of `seg.n_mlps` MLPs is trained on those pixels into out_dir/classifier;
4. out_dir/run_config.json stores the run's VisionConfig (what `segment` / `evaluate --checkpoint` start from).

`compare_with_raw_pixels(...)`: the issue's comparison, the same ensemble trained on the same labelled pixels of
the same images but with raw k x k neighbourhoods as features, both scored by mIoU on held-out images.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from torch import Tensor

from omnidiffusion.core.io import save_run_config
from omnidiffusion.core.training import TrainResult, is_main_process

from ..models import ImageDDPM
from ..training import train_image_ddpm
from .data import check_pairs
from .features import DDPMFeatures, PatchFeatures, predict_maps, sample_pixels
from .metrics import ConfusionCounter
from .pixel_classifier import PixelEnsemble, fit_pixel_ensemble


def ddpm_for_features(images: Tensor, config, out_dir: Path, resume: bool | None = None) -> ImageDDPM:
    """The ImageDDPM of seg.ddpm_checkpoint, or one trained on `images` (pixel range) with the config's [model]."""
    s = config.seg
    if s.ddpm_checkpoint:
        return ImageDDPM.from_pretrained(s.ddpm_checkpoint)
    cfg = replace(config, task="ddpm")
    if s.ddpm_steps:
        cfg = replace(cfg, train=replace(cfg.train, steps=int(s.ddpm_steps)))
    cfg = replace(cfg, data=replace(cfg.data, channels=images.shape[1]))
    return train_image_ddpm(images * 2 - 1, cfg, out_dir, resume=resume)


def _ensemble(X: Tensor, y: Tensor, config, out_dir: Path, feature: dict) -> TrainResult:
    s = config.seg
    return fit_pixel_ensemble(
        X,
        y,
        out_dir,
        n_models=s.n_mlps,
        hidden=list(s.mlp_hidden),
        epochs=s.mlp_epochs,
        batch_size=s.mlp_batch,
        lr=s.mlp_lr,
        seed=config.train.seed,
        feature=feature,
        device="cpu",
        progress=False,
    )


def fit_ddpm_seg(
    images: Tensor, masks: Tensor, config, out_dir: str | Path, resume: bool | None = None
) -> TrainResult:
    """Train (or load) the DDPM into out_dir/ddpm, then the pixel ensemble into out_dir/classifier on
    `seg.n_labelled` labelled images; returns the ensemble's TrainResult. out_dir gets the run config.

    images (N, C, H, W) in [0, 1], masks (N, 1, H, W) in {0, 1}.
    """
    check_pairs(images, masks)
    if config.task != "ddpm-seg":
        config = replace(config, task="ddpm-seg")
    s = config.seg
    if not 1 <= s.n_labelled <= images.shape[0]:
        raise ValueError(f"seg.n_labelled: expected 1..{images.shape[0]} labelled images, got {s.n_labelled}")
    if out_dir is None or str(out_dir) == "":
        raise ValueError("out_dir: expected the directory to train into (the `--out` flag of `train`)")
    out = Path(out_dir)
    ddpm = ddpm_for_features(images, config, out / "ddpm", resume)
    if s.ddpm_checkpoint:
        ddpm.save_pretrained(out / "ddpm")
    feats = DDPMFeatures(ddpm, list(s.feature_blocks), list(s.feature_steps), seed=config.train.seed)
    X, y = sample_pixels(feats, feats.dim, images[: s.n_labelled], masks[: s.n_labelled], s.pixels_per_image)
    spec = {"kind": "ddpm", "blocks": feats.blocks, "steps": feats.steps, "seed": config.train.seed}
    result = _ensemble(X, y, config, out / "classifier", spec)
    if is_main_process():
        result.final_model.cpu().eval().save_pretrained(out / "classifier")
        save_run_config(out, config)
    return result


def train_ddpm_seg(
    images: Tensor, masks: Tensor, config, out_dir: str | Path | None = None, *, resume: bool | None = None
) -> PixelEnsemble:
    """Train (or load) the DDPM, then the pixel ensemble on `seg.n_labelled` labelled images; returns the ensemble.

    images (N, C, H, W) in [0, 1], masks (N, 1, H, W) in {0, 1}; out_dir gets ddpm/, classifier/ and the run config.
    """
    return fit_ddpm_seg(images, masks, config, out_dir, resume).final_model.cpu().eval()


def score_maps(pred: Tensor, masks: Tensor) -> dict[str, float]:
    """mIoU (DDPM-Seg, pooled per class) plus the foreground IoU of label maps (N, H, W) against masks (N, 1, H, W)."""
    counter = ConfusionCounter(2)
    counter.update(pred, (masks[:, 0] >= 0.5).long())
    iou = counter.iou()
    return {"miou": counter.miou(), "iou_background": float(iou[0]), "iou_foreground": float(iou[1])}


def compare_with_raw_pixels(
    ddpm: ImageDDPM,
    train_images: Tensor,
    train_masks: Tensor,
    test_images: Tensor,
    test_masks: Tensor,
    config,
    work_dir: str | Path,
    classifier: PixelEnsemble | None = None,
) -> dict:
    """mIoU on held-out images of the DDPM-feature ensemble and of the same ensemble on raw k x k patches.

    Both see the first seg.n_labelled training images and the same sampled pixels (same seed). `classifier`
    reuses an already trained DDPM-feature ensemble. Returns {"model", "baselines", "protocol"}.
    """
    s = config.seg
    n = s.n_labelled
    work = Path(work_dir)
    feats = DDPMFeatures(ddpm, list(s.feature_blocks), list(s.feature_steps), seed=config.train.seed)
    patch = PatchFeatures(train_images.shape[1], s.patch)
    rows = {}
    for name, fn, clf in (("ddpm-features", feats, classifier), (f"raw-pixels-{s.patch}x{s.patch}", patch, None)):
        t0 = time.perf_counter()
        if clf is None:
            X, y = sample_pixels(fn, fn.dim, train_images[:n], train_masks[:n], s.pixels_per_image)
            clf = _ensemble(X, y, config, work / name, {"kind": name}).final_model.cpu().eval()
        pred = predict_maps(fn, clf.predict, test_images)
        rows[name] = score_maps(pred, test_masks) | {"feature_dim": fn.dim, "seconds": time.perf_counter() - t0}
    model_row = rows.pop("ddpm-features")
    return {
        "model": model_row,
        "baselines": rows,
        "protocol": {
            "labelled_images": n,
            "pixels_per_image": s.pixels_per_image,
            "mlps": s.n_mlps,
            "hidden": list(s.mlp_hidden),
            "epochs": s.mlp_epochs,
            "blocks": list(s.feature_blocks),
            "steps": list(s.feature_steps),
            "held_out_images": int(test_images.shape[0]),
            "miou": "per-class IoU pooled over all held-out pixels, mean over the 2 classes (DDPM-Seg)",
        },
    }
