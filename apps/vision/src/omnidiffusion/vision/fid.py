"""FID and Inception Score with the Inception network the papers use, from a weight file the user brings.

    net = load_fid_inception("pt_inception-2015-12-05-6726825d.pth")      # nothing is downloaded
    feats, logits = inception_outputs(net, images)                       # images (N, 3, H, W) in [0, 1]
    fid = frechet_distance(feats, reference_feats)     # or gaussian_frechet_distance(mu1, s1, mu2, s2)
    is_mean, is_std = inception_score(logits)

FID (Heusel et al. 2017) and IS (Salimans et al. 2016) as DDPM and its successors report them come from
TensorFlow's Inception graph of 2015-12-05. Its PyTorch port (the file `pt_inception-2015-12-05-6726825d.pth`
that pytorch-fid publishes, a plain state dict with torchvision's names) loads here with
`torch.load(weights_only=True)`; a `.safetensors` of the same tensors loads too. The network is torchvision's
Inception v3 with the graph's differences: 1008 classes, no auxiliary head, every branch average pool ignoring
the padding (TensorFlow's), and a max pool in the last block's pool branch.

Preprocessing as the FID port: RGB in [0, 1], bilinear resize to 299 x 299 (align_corners=False, no
antialiasing), scaled to [-1, 1]. Features: the 2048-d final average pool. IS: softmax of the 1008 logits,
exp(E_x KL(p(y|x) || p(y))) over `splits` equal parts (10 in the papers), mean and std.

Which numbers are comparable with papers: 50,000 samples against the 50,000 CIFAR-10 training images (DDPM's
protocol; Ho et al. report FID 3.17, IS 9.46). Fewer samples bias FID upwards. Without the real weights file,
the code runs (tests use random weights) but the numbers mean nothing; nothing here was checked against the
TensorFlow implementation on real weights, since the weights cannot be downloaded on this machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import inception as tv

from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.io import load_matching_state, read_state_dict
from omnidiffusion.core.metrics import frechet_distance, gaussian_frechet_distance

FEATURES = 2048
CLASSES = 1008
SIZE = 299


def _padding_free_avg_pool(x: Tensor) -> Tensor:
    """TensorFlow's 3x3 average pool (stride 1, SAME): the border windows average only the real pixels."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class _GraphPool:
    """Mixin for torchvision's Inception blocks: the pool branch (the last output) pools with `pool`."""

    pool: Callable[[Tensor], Tensor] = staticmethod(_padding_free_avg_pool)

    def _forward(self, x: Tensor) -> list[Tensor]:
        branches = super()._forward(x)  # the pool branch torchvision computes is replaced (a 1x1 conv: cheap)
        branches[-1] = self.branch_pool(self.pool(x))
        return branches


class _BlockA(_GraphPool, tv.InceptionA):
    pass


class _BlockC(_GraphPool, tv.InceptionC):
    pass


class _BlockE(_GraphPool, tv.InceptionE):
    pass


class FIDInception(nn.Module):
    """Inception v3 as the 2015-12-05 graph: `forward(images)` -> (pool features (N, 2048), logits (N, 1008))."""

    def __init__(self) -> None:
        super().__init__()
        blocks = [tv.BasicConv2d, _BlockA, tv.InceptionB, _BlockC, tv.InceptionD, _BlockE, tv.InceptionAux]
        self.net = tv.Inception3(
            num_classes=CLASSES, aux_logits=False, transform_input=False, inception_blocks=blocks, init_weights=False
        )
        self.net.Mixed_7c.pool = _max_pool  # the graph's last block max-pools its pool branch
        self.eval()

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected (N, 3, H, W) RGB in [0, 1], got {tuple(images.shape)}")
        x = F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        n = self.net
        for layer in (
            n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1, n.Conv2d_4a_3x3,
            n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d,
            n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c,
        ):  # fmt: skip
            x = layer(x)
        features = x.mean(dim=(2, 3))  # the final average pool (8x8 at 299 px)
        return features, n.fc(features)


def load_fid_inception(path: str | Path, name: str = "--inception") -> FIDInception:
    """The FID Inception with the weights of `path` (torchvision names, as pytorch-fid's port; see the module
    docstring). Names and shapes must match exactly; the file is never unpickled."""
    model = FIDInception()
    load_matching_state(model.net, read_state_dict(path, name), f"{name}: {path}")
    return model.eval()


@torch.no_grad()
def inception_outputs(
    net: FIDInception, images: Tensor, *, batch_size: int = 50, device: str | torch.device = "cpu", progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 2048), logits (N, 1008)) as float64 arrays of images (N, 3, H, W) in [0, 1] (grey images,
    C = 1, are repeated to RGB). `progress(n)` hears about each batch of n images."""
    batch_size = positive_int(batch_size, "batch_size")
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"images: expected (N, 1 or 3, H, W) with N >= 1, got {tuple(images.shape)}")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"images: expected values in [0, 1], got [{lo:.3g}, {hi:.3g}]")
    net = net.to(device).eval()
    feats, logits = [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device=device, dtype=torch.float32)
        f, z = net(x.expand(-1, 3, -1, -1))
        feats.append(f.double().cpu())
        logits.append(z.double().cpu())
        if progress is not None:
            progress(x.shape[0])
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()


def inception_score(logits: np.ndarray | Tensor, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over `splits` equal parts of exp(E_x KL(p(y|x) || p(y))), p(y|x) = softmax(logits)."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    splits = positive_int(splits, "splits")
    if z.ndim != 2 or z.shape[0] < splits:
        raise ValueError(f"logits: expected (N, classes) with N >= splits = {splits}, got {tuple(z.shape)}")
    log_p = torch.log_softmax(z, dim=1)
    scores = []
    for part in torch.tensor_split(log_p, splits):
        log_marginal = torch.logsumexp(part, dim=0) - np.log(part.shape[0])  # log mean_x p(y|x)
        kl = (part.exp() * (part - log_marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D), ddof 1) of features (N, D): what a reference statistics file stores."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features: expected (N, D) with N >= 2, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def read_statistics(path: str | Path, name: str = "--fid-stats") -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from a `.npz` with arrays `mu` (D,) and `sigma` (D, D) (pytorch-fid's and TTUR's layout),
    read with allow_pickle=False."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: {path}: no such file (expected an .npz with mu and sigma)")
    try:
        with np.load(path, allow_pickle=False) as z:
            mu, sigma = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64)
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(f"{name}: {path}: expected an .npz with arrays mu and sigma ({e})") from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{name}: {path}: expected mu (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    return mu, sigma


def write_statistics(path: str | Path, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Store (mu, sigma) as an .npz that `read_statistics` (and pytorch-fid) read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))


__all__ = [
    "CLASSES",
    "FEATURES",
    "FIDInception",
    "feature_statistics",
    "frechet_distance",
    "gaussian_frechet_distance",
    "inception_outputs",
    "inception_score",
    "load_fid_inception",
    "read_statistics",
    "write_statistics",
]
