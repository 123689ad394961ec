"""Segmentation metrics: Dice and IoU per image and over a data set, and DDPM-Seg's mIoU.

Conventions (stated because repositories differ, see SegDiff vs DDPM-Seg):
- Binary masks; a prediction or truth counts a pixel as foreground when its value is >= 0.5.
- Per image: Dice = 2|P n G| / (|P| + |G|) (= F1), IoU = |P n G| / |P u G| (Jaccard). Empty-truth rule: when both P
  and G are empty the image scores 1 (a correct "nothing here"); when only one is empty it scores 0 (which the
  formulas already give). `per_image_*` then averages over images ("mean per image", SegDiff's convention).
- Data-set level: intersections and sizes are summed over all images first, then one Dice / IoU is taken
  ("pooled", MedSegDiff-style evaluation); an all-empty data set scores 1 by the same rule.
- mIoU (Baranchuk et al. 2022, DDPM-Seg): for each class c, IoU_c = sum_i |P_i=c n G_i=c| / sum_i |P_i=c u G_i=c|
  pooled over the whole test set, then the mean over the classes present in the truth or the prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _binary_pair(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 1, H, W) / (B, H, W) / (H, W) pair -> bool (B, H*W) pair; shapes must match."""
    if not isinstance(pred, Tensor) or not isinstance(truth, Tensor):
        raise ValueError(f"pred, truth: expected tensors, got {type(pred).__name__}, {type(truth).__name__}")
    if pred.shape != truth.shape:
        raise ValueError(f"pred, truth: expected the same shape, got {tuple(pred.shape)} and {tuple(truth.shape)}")
    if pred.ndim == 2:
        pred, truth = pred[None], truth[None]
    if pred.ndim == 4:
        if pred.shape[1] != 1:
            raise ValueError(f"pred: expected one mask channel (B, 1, H, W), got shape {tuple(pred.shape)}")
        pred, truth = pred[:, 0], truth[:, 0]
    if pred.ndim != 3:
        raise ValueError(f"pred: expected shape (H, W), (B, H, W) or (B, 1, H, W), got {tuple(pred.shape)}")
    return (pred.float() >= 0.5).flatten(1), (truth.float() >= 0.5).flatten(1)


def _counts(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    p, g = _binary_pair(pred, truth)
    inter = (p & g).sum(1).double()
    return inter, p.sum(1).double(), g.sum(1).double()  # (B,) each


def dice_per_image(pred: Tensor, truth: Tensor) -> Tensor:
    """Dice 2|P n G| / (|P| + |G|) of each image: (B,) in [0, 1]; both empty -> 1."""
    inter, np_, ng = _counts(pred, truth)
    denom = np_ + ng
    return torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))


def iou_per_image(pred: Tensor, truth: Tensor) -> Tensor:
    """IoU |P n G| / |P u G| of each image: (B,) in [0, 1]; both empty -> 1."""
    inter, np_, ng = _counts(pred, truth)
    union = np_ + ng - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def dice_pooled(pred: Tensor, truth: Tensor) -> float:
    """Data-set Dice: 2 sum|P n G| / (sum|P| + sum|G|) over all images (1 when every mask is empty)."""
    inter, np_, ng = _counts(pred, truth)
    denom = float(np_.sum() + ng.sum())
    return 1.0 if denom == 0 else 2 * float(inter.sum()) / denom


def iou_pooled(pred: Tensor, truth: Tensor) -> float:
    """Data-set IoU: sum|P n G| / sum|P u G| over all images (1 when every mask is empty)."""
    inter, np_, ng = _counts(pred, truth)
    union = float((np_ + ng - inter).sum())
    return 1.0 if union == 0 else float(inter.sum()) / union


def segmentation_scores(pred: Tensor, truth: Tensor) -> dict[str, float]:
    """{"dice", "iou"} (mean per image), {"dice_pooled", "iou_pooled"} (data-set level), {"n_images"}."""
    return {
        "dice": float(dice_per_image(pred, truth).mean()),
        "iou": float(iou_per_image(pred, truth).mean()),
        "dice_pooled": dice_pooled(pred, truth),
        "iou_pooled": iou_pooled(pred, truth),
        "n_images": int(_binary_pair(pred, truth)[0].shape[0]),
    }


class ConfusionCounter:
    """Streams label maps into a (C, C) confusion matrix (rows = truth, columns = prediction) for mIoU."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes: expected at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: Tensor, truth: Tensor) -> None:
        """Add integer label maps of the same shape (any shape, values in [0, num_classes))."""
        if pred.shape != truth.shape:
            raise ValueError(f"pred, truth: expected the same shape, got {tuple(pred.shape)}, {tuple(truth.shape)}")
        p, g = pred.reshape(-1).long(), truth.reshape(-1).long()
        c = self.num_classes
        if bool(((p < 0) | (p >= c) | (g < 0) | (g >= c)).any()):
            raise ValueError(f"pred, truth: expected labels in [0, {c}), got values outside")
        self.matrix += torch.bincount(g * c + p, minlength=c * c).reshape(c, c)

    def iou(self) -> Tensor:
        """Per-class pooled IoU (C,); NaN for a class absent from both truth and prediction."""
        m = self.matrix.double()
        inter = m.diag()
        union = m.sum(0) + m.sum(1) - inter
        return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, float("nan")))

    def miou(self) -> float:
        """Mean of the per-class IoUs over the classes that occur (DDPM-Seg's mIoU)."""
        iou = self.iou()
        present = ~torch.isnan(iou)
        return float(iou[present].mean()) if bool(present.any()) else 1.0


def mean_iou(pred: Tensor, truth: Tensor, num_classes: int = 2) -> float:
    """DDPM-Seg mIoU of label maps (any shape): per-class IoU pooled over all pixels, averaged over classes."""
    counter = ConfusionCounter(num_classes)
    counter.update(pred, truth)
    return counter.miou()
