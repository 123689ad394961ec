"""Evaluate an AnomalyDetector and the baselines on the same images and masks (one JSON-able dict)."""

from __future__ import annotations

import time
from dataclasses import asdict

import torch
from torch import Tensor

from .maps import image_scores
from .metrics import anomaly_metrics
from .pipeline import AnomalyDetector


def evaluate_anomaly(detector: AnomalyDetector, images: Tensor, masks: Tensor) -> dict:
    """{"model": metrics, "baselines": {name: metrics}, "protocol": {...}} on images (N, C, H, W) in [0, 1].

    masks: (N, 1, H, W) bool, True = anomalous. Metrics: pooled pixel AUROC, best-threshold Dice, image AUROC
    (see metrics.py). Baselines are scored raw and with the model's map smoothing ("+smooth"), so the comparison
    does not hinge on the smoothing alone.
    """
    if masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"masks: expected {images.shape[0]} masks of {tuple(images.shape[-2:])}, got {tuple(masks.shape)}"
        )
    s = detector.settings
    t0 = time.perf_counter()
    maps, scores, _ = detector.score_batch(images)
    seconds = time.perf_counter() - t0
    model = anomaly_metrics(maps, masks, scores)
    model["seconds"] = seconds
    baselines = {}
    for sigma, suffix in ((0.0, ""), (s.smooth_sigma, "+smooth")):
        if suffix and sigma <= 0:
            continue
        for name, bmap in detector.baseline_maps(images, sigma).items():
            baselines[name + suffix] = anomaly_metrics(bmap, masks, image_scores(bmap, s.score))
    n_anom = int(masks.flatten(1).any(dim=1).sum())
    protocol = {
        "images": int(images.shape[0]),
        "anomalous_images": n_anom,
        "anomalous_pixel_fraction": float(masks.float().mean()),
        "image_size": list(images.shape[-2:]),
        "anomaly": asdict(s),
        "reverse_steps": s.steps or (s.t_star if s.method == "ddpm" else 20),
        "device": str(detector.device),
        "torch_threads": torch.get_num_threads(),
    }
    return {"model": model, "baselines": baselines, "protocol": protocol}
