"""DDPM-Seg's pixel classifier: an ensemble of small MLPs on per-pixel features (Baranchuk et al. 2022, sec. 3).

Each member is dim -> h1 -> h2 -> C with ReLU and BatchNorm1d after each hidden layer (the repository's
dim -> 128 -> 32 -> C for fewer than 30 classes), trained with pixel-wise cross-entropy and Adam (lr 1e-3). Members
differ by their initialisation (one seed each) and are trained together as one module through core's `fit`, each on
the same shuffled batches; the loss is the sum of the members' losses. Prediction is the mode of the members'
argmax labels (majority vote; a tie goes to the lower label). Features are standardised with the training pixels'
mean and standard deviation, kept as buffers so a saved ensemble carries them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnidiffusion.core.training import TrainConfig, TrainResult, fit

from ..models import PretrainedModule


def _mlp(dim: int, hidden: list[int], classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.BatchNorm1d(h)]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class PixelEnsemble(PretrainedModule):
    """n_models MLPs on (P, dim) pixel features -> logits (n_models, P, classes); `predict` -> (P,) labels.

    `feature` records how the features are made (e.g. {"kind": "ddpm", "blocks": [...], "steps": [...]}) so a
    saved classifier knows its extractor.
    """

    def __init__(
        self,
        dim: int,
        classes: int = 2,
        n_models: int = 5,
        hidden: list[int] | None = None,
        seed: int = 0,
        feature: dict | None = None,
    ) -> None:
        super().__init__()
        if dim < 1 or classes < 2 or n_models < 1:
            raise ValueError(f"dim, classes, n_models: expected >= 1, >= 2, >= 1, got {dim}, {classes}, {n_models}")
        self.dim, self.classes, self.feature = int(dim), int(classes), dict(feature or {})
        hidden = [128, 32] if hidden is None else [int(h) for h in hidden]
        members = []
        for m in range(n_models):
            torch.manual_seed(seed + m)  # a distinct, reproducible initialisation per member
            members.append(_mlp(dim, hidden, classes))
        self.members = nn.ModuleList(members)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_normalisation(self, X: Tensor) -> None:
        """Standardise features with the training pixels' per-dimension mean and std: X (P, dim)."""
        self.mean.copy_(X.mean(0))
        self.std.copy_(X.std(0).clamp(min=1e-6))

    def forward(self, x: Tensor) -> Tensor:
        """(P, dim) features -> (n_models, P, classes) logits."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (P, {self.dim}), got {tuple(x.shape)}")
        z = (x - self.mean) / self.std
        return torch.stack([m(z) for m in self.members])

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 65536) -> Tensor:
        """(P, dim) -> (P,) int64 labels: the mode of the members' argmax labels."""
        was = self.training
        self.eval()
        out = [self(x[i : i + batch_size]).argmax(-1).mode(0).values for i in range(0, x.shape[0], batch_size)]
        self.train(was)
        return torch.cat(out)


class _Pixels(Dataset):
    def __init__(self, X: Tensor, y: Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.X[i], self.y[i]


def _ensemble_loss(model: nn.Module, batch) -> Tensor:
    x, y = batch
    logits = model(x)  # (M, B, C)
    return F.cross_entropy(logits.flatten(0, 1), y.repeat(logits.shape[0]), reduction="mean") * logits.shape[0]


def fit_pixel_ensemble(
    X: Tensor,
    y: Tensor,
    out_dir: str | Path,
    *,
    classes: int = 2,
    n_models: int = 5,
    hidden: list[int] | None = None,
    epochs: int = 40,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    feature: dict | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> TrainResult:
    """Train a PixelEnsemble on pixels X (P, dim), labels y (P,) with core `fit` for `epochs` passes (in out_dir)."""
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X, y: expected (P, dim) and (P,), got {tuple(X.shape)} and {tuple(y.shape)}")
    if X.shape[0] < batch_size:
        batch_size = X.shape[0]
    model = PixelEnsemble(X.shape[1], classes, n_models, hidden, seed, feature)
    model.set_normalisation(X)
    steps = max(1, epochs * (X.shape[0] // batch_size))
    config = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        min_lr=lr,
        grad_clip=None,
        ema_decay=None,
        seed=seed,
        log_every=max(1, steps // 10),
        ckpt_every=steps,
        progress=progress,
        device=device,
    )
    return fit(model, _ensemble_loss, _Pixels(X.float(), y.long()), config, Path(out_dir), resume=False)


def train_pixel_ensemble(X: Tensor, y: Tensor, out_dir: str | Path, **kwargs) -> PixelEnsemble:
    """`fit_pixel_ensemble` (same arguments), returning the trained ensemble on the CPU in eval mode."""
    return fit_pixel_ensemble(X, y, out_dir, **kwargs).final_model.cpu().eval()
