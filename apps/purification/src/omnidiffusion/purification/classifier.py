"""Classifiers that DiffPure defends: a small CNN for the bundled digits, WideResNet for CIFAR-10, any torchvision
model for user data.

All take images in [0, 1] (normalisation, when any, lives inside the module, so torchattacks attacks the
pixel range directly) and return logits. All are core `ConfigurableModule`s, so `save_pretrained` /
`load_pretrained` round-trip them, and `train_classifier` trains them with core's `fit` (EMA, checkpoints,
exact resume, torchrun).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.io import ConfigurableModule
from omnidiffusion.core.training import TrainConfig, TrainResult, fit

from .data import check_labelled
from .wideresnet import WideResNet, parse_wrn


class SmallCNN(ConfigurableModule):
    """conv-BN-ReLU x2, pool, conv-BN-ReLU x2, pool, global pool, linear: (B, C, H, W) in [0, 1] -> (B, K).

    Inputs are centred to [-1, 1] inside the module.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width)):
            positive_int(v, name)
        self.in_channels, self.num_classes = in_channels, num_classes
        w = width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(in_channels, w),
            *block(w, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            *block(2 * w, 2 * w),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )  # (B, 2w)
        self.head = nn.Linear(2 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.head(self.features(2.0 * x - 1.0))


class TorchvisionClassifier(ConfigurableModule):
    """A torchvision architecture (`torchvision.models.<arch>`, random init) on [0, 1] images.

    Grey inputs are repeated to three channels; `mean`/`std` normalise inside the module (ImageNet's by default).
    """

    def __init__(
        self,
        arch: str = "resnet18",
        num_classes: int = 10,
        in_channels: int = 3,
        mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    ) -> None:
        super().__init__()
        import torchvision.models as tvm

        builder = getattr(tvm, arch, None)
        if not callable(builder) or arch.startswith("_") or isinstance(builder, type):
            raise ValueError(f"arch: expected a torchvision.models builder such as 'resnet18', got {arch!r}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels: expected 1 or 3, got {in_channels!r}")
        self.in_channels, self.num_classes = in_channels, positive_int(num_classes, "num_classes")
        self.net = builder(weights=None, num_classes=num_classes)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net((x - self.mean) / self.std)


def build_classifier(arch: str, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    """A randomly initialised classifier by name: "small-cnn" (of `width`), "wrn-D-K" (WideResNet-D-K, e.g.
    "wrn-28-10") or a torchvision.models builder name ("resnet18", ...)."""
    if arch == "small-cnn":
        return SmallCNN(in_channels, num_classes, width)
    wrn = parse_wrn(arch)
    if wrn is not None:
        return WideResNet(wrn[0], wrn[1], num_classes=num_classes, in_channels=in_channels)
    return TorchvisionClassifier(arch, num_classes, in_channels)


def cross_entropy_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """The loss `fit` minimises: mean cross-entropy of model(images) against labels."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def train_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool | None = None,
    run_config: Any = None,
) -> TrainResult:
    """Train `model` on (images (N, C, H, W) in [0, 1], labels (N,)) with core's `fit`; writes out_dir.

    The final weights in out_dir load with `omnidiffusion.core.load_pretrained(out_dir)`; `run_config` (the app's
    whole config, when given) is stored beside them as run_config.json.
    """
    check_labelled(images, labels)
    k = getattr(model, "num_classes", None)
    if isinstance(k, int) and labels.max().item() >= k:
        raise ValueError(
            f"labels: expected class indices in [0, {k}) for a {k}-class model, got {labels.max().item()}; "
            "give the classifier more classes (num_classes)"
        )
    dataset = TensorDataset(images.float(), labels.long())
    return fit(
        model,
        cross_entropy_loss,
        dataset,
        config,
        out_dir,
        resume=resume,
        metadata={"task": "classifier", "input_range": [0.0, 1.0]},
        run_config=run_config,
    )


@torch.no_grad()
def predict_labels(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """argmax of model(images) in batches (the model is put in eval mode); (N,) int64 on the images' device."""
    model.eval()
    device = next((p.device for p in model.parameters()), images.device)
    out = [model(images[i : i + batch_size].to(device)).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).to(images.device)


__all__ = [
    "SmallCNN",
    "TorchvisionClassifier",
    "build_classifier",
    "cross_entropy_loss",
    "predict_labels",
    "train_classifier",
]
