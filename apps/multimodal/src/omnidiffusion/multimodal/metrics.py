"""Metrics independent of the generator: an attribute classifier, prompt faithfulness, a Frechet distance, diversity.

- `AttributeClassifier`: a small CNN trained on real "judge" scenes (every colour-shape combination, drawn with
  their own seed) to read count, and shape / colour / size of object A (single or left) and B (right). Its
  penultimate features (128-d) play the role Inception features play in FID.
- Faithfulness (the GLIDE/DALL-E-style "does the image show the prompt" score, read by a classifier as in
  compositional benchmarks such as CLEVR-based ones): per attribute, the share of generated images whose
  classifier reading equals the prompt's value; "all_correct" needs count and every attribute of every object.
- `frechet_distance` (core.metrics, re-exported): the Frechet distance between Gaussians fitted to two feature
  sets (Heusel et al. 2017).
- `diversity`: mean pairwise L2 distance between the features of images generated for the same prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnidiffusion.core.io import ConfigurableModule
from omnidiffusion.core.metrics import frechet_distance  # noqa: F401 - part of this module's metrics

from .data import COLOURS, SHAPES, SIZES, make_split

HEADS = (("count", 2), ("shape_a", 3), ("colour_a", 4), ("size_a", 2), ("shape_b", 3), ("colour_b", 4), ("size_b", 2))
assert len(SHAPES) == 3 and len(COLOURS) == 4 and len(SIZES) == 2  # the head sizes above


class AttributeClassifier(ConfigurableModule):
    """(B, 3, 32, 32) in [-1, 1] -> logits per head (count, then shape/colour/size of A and B); `features` 128-d."""

    def __init__(self, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(), nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(), nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
        )
        self.fc = nn.Linear(2 * w * 8 * 8, feature_dim)
        self.heads = nn.Linear(feature_dim, sum(k for _, k in HEADS))

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"images: expected shape (B, 3, 32, 32), got {tuple(x.shape)}")
        return F.silu(self.fc(self.body(x).flatten(1)))  # (B, feature_dim)

    def forward(self, x: Tensor) -> list[Tensor]:
        logits = self.heads(self.features(x))
        return list(logits.split([k for _, k in HEADS], dim=1))

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 512) -> Tensor:
        """(B, 7) int64 readings in the label layout of data.labels_of (B's entries are -1 for one object)."""
        out = []
        for i in range(0, x.shape[0], batch_size):
            preds = torch.stack([lg.argmax(1) for lg in self(x[i : i + batch_size])], dim=1)
            preds[preds[:, 0] == 0, 4:] = -1
            out.append(preds)
        return torch.cat(out)

    @torch.no_grad()
    def embed(self, x: Tensor, batch_size: int = 512) -> Tensor:
        return torch.cat([self.features(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def classifier_loss(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """Sum of cross-entropies of the heads; object B's heads only count on two-object scenes."""
    logits = model(images)
    two = labels[:, 0] == 1
    loss = F.cross_entropy(logits[0], labels[:, 0])
    for j, lg in enumerate(logits[1:], start=1):
        if j < 4:
            loss = loss + F.cross_entropy(lg, labels[:, j])
        elif two.any():
            loss = loss + F.cross_entropy(lg[two], labels[two, j])
    return loss


def train_classifier(n: int = 6000, steps: int = 1200, batch_size: int = 64, seed: int = 0, lr: float = 2e-3,
                     augment_noise: float = 0.05) -> tuple[AttributeClassifier, float]:
    """Train on n real judge scenes; returns the classifier and its all-correct accuracy on 1000 fresh ones.

    Small Gaussian noise on the inputs (std `augment_noise`) keeps it from keying on pixel-exact rendering.
    """
    torch.manual_seed(seed)
    data = make_split("judge", n, seed=seed)
    model = AttributeClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        x = data.images[idx] + augment_noise * torch.randn(data.images[idx].shape, generator=gen)
        loss = classifier_loss(model, x, data.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    test = make_split("judge", min(1000, n), seed=seed + 1000)
    acc = float((model.predict(test.images) == test.labels).all(1).float().mean())
    return model, acc


def faithfulness(predicted: Tensor, target: Tensor) -> dict[str, float]:
    """Per-attribute and all-correct agreement between classifier readings and prompt labels, both (N, 7).

    count: share with the right number of objects. shape / colour / size: share of prompt objects whose value
    is read correctly (object B of a two-object prompt counts only when the image was read as two objects:
    otherwise its reading is -1 and it is wrong). all_correct: every entry equal.
    """
    if predicted.shape != target.shape or predicted.ndim != 2 or predicted.shape[1] != 7:
        raise ValueError(f"predicted, target: expected two (N, 7) label tensors, got {tuple(predicted.shape)} and "
                         f"{tuple(target.shape)}")
    if predicted.shape[0] == 0:
        raise ValueError("predicted: expected at least one image, got 0")
    out = {"count": float((predicted[:, 0] == target[:, 0]).float().mean())}
    for k, name in enumerate(("shape", "colour", "size"), start=1):
        cols = [k, k + 3]
        valid = target[:, cols] >= 0
        hit = (predicted[:, cols] == target[:, cols]) & valid
        out[name] = float(hit.sum() / valid.sum())
    out["all_correct"] = float((predicted == target).all(1).float().mean())
    return out


def diversity(features: Tensor, groups: Sequence[int] | Tensor) -> float:
    """Mean pairwise L2 distance of features (N, D) within each group id, averaged over groups with >= 2 members."""
    groups = torch.as_tensor(groups)
    if features.ndim != 2 or groups.shape != (features.shape[0],):
        raise ValueError(f"features, groups: expected (N, D) and (N,), got {tuple(features.shape)} and "
                         f"{tuple(groups.shape)}")
    vals = []
    for g in groups.unique():
        f = features[groups == g].double()
        if f.shape[0] < 2:
            continue
        d = torch.cdist(f, f)
        n = f.shape[0]
        vals.append(float(d.sum() / (n * (n - 1))))
    if not vals:
        raise ValueError("groups: expected at least one group with two or more members")
    return float(np.mean(vals))
