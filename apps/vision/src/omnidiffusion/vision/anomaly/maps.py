"""Anomaly maps and image scores: AnoDDPM's squared reconstruction error and the two classical baselines.

All maps take pixel-range images (B, C, H, W) in [0, 1] and return (B, H, W) (channels summed).
- `error_map(x, recon)`: (x - recon)^2 summed over channels (AnoDDPM's anomaly map), optionally smoothed.
- `mean_image_map(x, mean)`: |x - mean training image| (baseline 1).
- `blur_residual_map(x, sigma)`: |x - GaussianBlur_sigma(x)| (baseline 2; sigma in pixels).
- `gaussian_blur(x, sigma)`: separable Gaussian, kernel radius ceil(3 sigma), reflect padding (as scipy's
  `ndimage.gaussian_filter(mode="reflect")` up to its truncation at 4 sigma).
- `image_scores(maps, how)`: max or mean of each map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SCORES = ("max", "mean")


def _check4(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a tensor of shape (B, C, H, W), got {got}")
    return x


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) with std `sigma` pixels (radius ceil(3 sigma), reflect padding)."""
    _check4(x, "x")
    if sigma < 0:
        raise ValueError(f"sigma: expected >= 0, got {sigma}")
    if sigma == 0:
        return x
    r = max(1, math.ceil(3.0 * sigma))
    r = min(r, x.shape[-1] - 1, x.shape[-2] - 1)  # reflect padding needs r < side
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype).to(x.device)
    c = x.shape[1]
    y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H


def smooth(maps: Tensor, sigma: float) -> Tensor:
    """Gaussian smoothing of maps (B, H, W) with std `sigma` pixels (0 returns them unchanged)."""
    return gaussian_blur(maps[:, None], sigma)[:, 0] if sigma > 0 else maps


def error_map(x: Tensor, recon: Tensor, smooth_sigma: float = 0.0) -> Tensor:
    """AnoDDPM's anomaly map: (x - recon)^2 summed over channels, smoothed with `smooth_sigma`: (B, H, W)."""
    _check4(x, "x")
    if recon.shape != x.shape:
        raise ValueError(f"recon: expected shape {tuple(x.shape)}, got {tuple(recon.shape)}")
    return smooth(((x - recon) ** 2).sum(dim=1), smooth_sigma)


def mean_image_map(x: Tensor, mean: Tensor, smooth_sigma: float = 0.0) -> Tensor:
    """Baseline |x - mean training image| summed over channels: x (B, C, H, W), mean (C, H, W) -> (B, H, W)."""
    _check4(x, "x")
    if mean.shape != x.shape[1:]:
        raise ValueError(f"mean: expected shape {tuple(x.shape[1:])}, got {tuple(mean.shape)}")
    return smooth((x - mean[None]).abs().sum(dim=1), smooth_sigma)


def blur_residual_map(x: Tensor, sigma: float, smooth_sigma: float = 0.0) -> Tensor:
    """Baseline |x - GaussianBlur_sigma(x)| summed over channels: (B, C, H, W) -> (B, H, W)."""
    if not sigma > 0:
        raise ValueError(f"blur_sigma: expected > 0, got {sigma}")
    return smooth((x - gaussian_blur(x, sigma)).abs().sum(dim=1), smooth_sigma)


def image_scores(maps: Tensor, how: str = "max") -> Tensor:
    """One anomaly score per image from maps (B, H, W): the maximum or the mean pixel score: (B,)."""
    if how not in SCORES:
        raise ValueError(f"score: expected one of {SCORES}, got {how!r}")
    flat = maps.reshape(maps.shape[0], -1)
    return flat.max(dim=1).values if how == "max" else flat.mean(dim=1)
