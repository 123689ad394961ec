"""WideResNet-28-10 (Zagoruyko & Komodakis 2016), the CIFAR-10 classifier DiffPure defends, and its weights on disk.

    net = WideResNet(depth=28, widen_factor=10)                  # 36.5 M parameters, [0, 1] images in
    load_classifier_weights(net, "wrn-28-10.safetensors")       # or a .pt/.pth read with weights_only=True

The network is the pre-activation WRN of the paper (Table 1; B(3,3) blocks, widths 16, 16k, 32k, 64k, strides 1, 2,
2, global average pooling, linear) with the parameter names of the TRADES / RobustBench definition (`conv1`,
`block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}`, `bn1`, `fc`), so a state dict saved from those
models (RobustBench's CIFAR-10 Linf "Standard" WRN-28-10, which DiffPure uses) loads unchanged. Inputs are [0, 1]
images; `mean`/`std` (default none, as for that model) normalise inside the module, so attacks see pixel space.

Weights are never unpickled: a `.safetensors` file is read with safetensors, anything else with
`torch.load(weights_only=True)`, which refuses every object that is not a tensor or a plain container.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnidiffusion.core.checks import positive_int, real_number
from omnidiffusion.core.io import ConfigurableModule, load_matching_state, read_state_dict

ARCH = re.compile(r"^wrn-(\d+)-(\d+)$")  # "wrn-28-10": depth 28, widen factor 10


class _Block(nn.Module):
    """Pre-activation basic block BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus a shortcut.

    When the width or stride changes, the shortcut is a 1x1 conv of the pre-activated input (as in the reference
    WRN code); otherwise it is the identity on the raw input.
    """

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.convShortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)  # noqa: N815

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn1(x))
        h = F.relu(self.bn2(self.conv1(a)))
        if self.dropout > 0:
            h = F.dropout(h, p=self.dropout, training=self.training)
        skip = x if self.convShortcut is None else self.convShortcut(a)
        return skip + self.conv2(h)


class _Group(nn.Module):
    """n blocks at one width; the first changes width and stride (`layer` is the RobustBench name)."""

    def __init__(self, n: int, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[_Block(cin if i == 0 else cout, cout, stride if i == 0 else 1, dropout) for i in range(n)]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(ConfigurableModule):
    """WRN-depth-k on (B, C, H, W) images in [0, 1] -> (B, num_classes) logits (Zagoruyko & Komodakis 2016).

    Args:
        depth: 6n + 4 (28 for WRN-28-10: n = 4 blocks per group).
        widen_factor: k; group widths 16k, 32k, 64k.
        num_classes, in_channels: output classes and image channels.
        dropout: between the two convolutions of each block (the paper's 0.3 variant; 0 for RobustBench Standard).
        mean, std: per-channel normalisation applied inside the module (none by default).
    """

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.0,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        depth = positive_int(depth, "depth", minimum=10)
        if (depth - 4) % 6:
            raise ValueError(f"depth: expected 6n + 4 (10, 16, 22, 28, 34, 40 ...), got {depth}")
        k = positive_int(widen_factor, "widen_factor")
        self.num_classes = positive_int(num_classes, "num_classes", minimum=2)
        self.in_channels = positive_int(in_channels, "in_channels")
        dropout = real_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.block1 = _Group(n, widths[0], widths[1], 1, dropout)
        self.block2 = _Group(n, widths[1], widths[2], 2, dropout)
        self.block3 = _Group(n, widths[2], widths[3], 2, dropout)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for name, v in (("mean", mean), ("std", std)):
            if v is not None and len(v) != in_channels:
                raise ValueError(f"{name}: expected {in_channels} per-channel values, got {v!r}")
        if std is not None and min(std) <= 0:
            raise ValueError(f"std: expected values > 0, got {std!r}")
        shape = (1, in_channels, 1, 1)
        m = torch.zeros(shape) if mean is None else torch.tensor(mean, dtype=torch.float32).reshape(shape)
        s = torch.ones(shape) if std is None else torch.tensor(std, dtype=torch.float32).reshape(shape)
        # Not persistent: a RobustBench state dict has no normalisation entries, the config carries them.
        self.register_buffer("mean", m, persistent=False)
        self.register_buffer("std", s, persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")  # He et al. 2015
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h = self.conv1((x - self.mean) / self.std)  # (B, 16, H, W)
        h = self.block3(self.block2(self.block1(h)))  # (B, 64k, H/4, W/4)
        h = F.relu(self.bn1(h)).mean(dim=(2, 3))  # (B, 64k): global average pooling (8x8 at 32x32 input)
        return self.fc(h)


def parse_wrn(arch: str) -> tuple[int, int] | None:
    """(depth, widen_factor) of an arch name "wrn-D-K", else None."""
    m = ARCH.match(arch) if isinstance(arch, str) else None
    return (int(m[1]), int(m[2])) if m else None


def load_classifier_weights(model: nn.Module, path: str | Path, name: str = "weights") -> nn.Module:
    """Load a user's weight file into `model` in place (names and shapes must match; see `read_state_dict`).

    BatchNorm `num_batches_tracked` counters may be absent (older checkpoints); everything else is strict.
    A torchvision classifier takes the torchvision model's own names (without the wrapper's "net." prefix) too.
    """
    state = read_state_dict(path, name)
    target = model
    inner = getattr(model, "net", None)
    if isinstance(inner, nn.Module) and not any(k.startswith("net.") for k in state):
        target = inner  # TorchvisionClassifier: the file holds torchvision's names
    load_matching_state(target, state, f"{name}: {path}")
    return model.eval()


__all__ = ["WideResNet", "load_classifier_weights", "parse_wrn", "read_state_dict"]
