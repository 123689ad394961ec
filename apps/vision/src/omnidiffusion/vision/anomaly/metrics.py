"""Anomaly-detection metrics, pooled over the whole test set (AnoDDPM's and MVTec's pixel-level convention).

- `pixel_auroc(maps, masks)`: ROC AUC of every pixel's score against its mask label, all images pooled
  (scikit-learn `roc_auc_score`). Needs both normal and anomalous pixels.
- `best_dice(maps, masks)`: the Dice 2 TP / (2 TP + FP + FN) of the thresholded pooled map at the threshold that
  maximises it (thresholds: every distinct score; a pixel is anomalous when its score >= the threshold).
  Computed exactly in O(P log P) by sorting. An oracle threshold: an upper bound on what a fixed threshold gives.
- `image_auroc(scores, labels)`: ROC AUC of per-image scores; an image is anomalous when its mask is non-empty.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _flat(maps: Tensor, masks: Tensor) -> tuple[np.ndarray, np.ndarray]:
    if masks.ndim == maps.ndim + 1 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if maps.shape != masks.shape:
        raise ValueError(f"masks: expected the maps' shape {tuple(maps.shape)}, got {tuple(masks.shape)}")
    scores = maps.detach().double().cpu().numpy().ravel()
    if not np.isfinite(scores).all():
        raise ValueError("maps: contain NaN or inf values")
    return scores, masks.detach().bool().cpu().numpy().ravel()


def pixel_auroc(maps: Tensor, masks: Tensor) -> float:
    """Pooled pixel ROC AUC of maps (B, H, W) against boolean masks (B, H, W) or (B, 1, H, W)."""
    from sklearn.metrics import roc_auc_score

    scores, labels = _flat(maps, masks)
    if labels.all() or not labels.any():
        raise ValueError("masks: pixel AUROC needs both anomalous and normal pixels, got only one class")
    return float(roc_auc_score(labels, scores))


def best_dice(maps: Tensor, masks: Tensor) -> tuple[float, float]:
    """(best Dice, its threshold) over all thresholds of the pooled map; predicted anomalous = score >= threshold."""
    scores, labels = _flat(maps, masks)
    positives = int(labels.sum())
    if positives == 0:
        raise ValueError("masks: best-threshold Dice needs at least one anomalous pixel, got none")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)  # true positives when the top k+1 pixels are predicted anomalous
    k = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold takes all pixels tied at it: end of each tie group
    dice = 2.0 * tp[last] / (positives + k[last])
    i = int(np.argmax(dice))
    return float(dice[i]), float(s[last][i])


def image_auroc(scores: Tensor, labels: Tensor) -> float:
    """ROC AUC of per-image scores (B,) against per-image labels (B,) (True = anomalous)."""
    from sklearn.metrics import roc_auc_score

    s = torch.as_tensor(scores).detach().double().cpu().numpy().ravel()
    y = torch.as_tensor(labels).detach().bool().cpu().numpy().ravel()
    if s.shape != y.shape:
        raise ValueError(f"labels: expected {s.shape[0]} labels, got {y.shape[0]}")
    if y.all() or not y.any():
        return float("nan")  # undefined with one class; reported as NaN rather than failing the evaluation
    return float(roc_auc_score(y, s))


def anomaly_metrics(maps: Tensor, masks: Tensor, scores: Tensor) -> dict[str, float]:
    """pixel_auroc, best_dice (+ threshold) and image_auroc of one method's maps (B, H, W) and scores (B,)."""
    dice, thr = best_dice(maps, masks)
    m = masks[:, 0] if masks.ndim == 4 else masks
    return {
        "pixel_auroc": pixel_auroc(maps, masks),
        "best_dice": dice,
        "best_dice_threshold": thr,
        "image_auroc": image_auroc(scores, m.flatten(1).any(dim=1)),
    }
