"""Image-restoration metrics in the field's conventions, on pixel-range images (values in [0, 1], data range 1).

- PSNR = 10 log10(data_range^2 / MSE), per image, then averaged over images (dB).
- SSIM (Wang et al. 2004): 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, population (biased)
  variances, mean over the valid region (no padding) and over channels; identical to scikit-image
  `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`.
  Images smaller than 11 pixels use a window of the largest odd side that fits (as SR3's 24 px faces need).
- SR consistency (Saharia et al. 2021, sec. 4.1): MSE between downsample(SR) and the LR input.
- Inpainting: MSE and PSNR over the hole pixels only (mask False), per image then averaged; and the largest
  change of a known pixel (0 when the known pixels come back exactly).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .imaging import downsample


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"x, y: expected the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"x: expected shape (B, C, H, W), got {tuple(x.shape)}")
    return x.double(), y.double()


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Per-image mean squared error: (B, C, H, W) x 2 -> (B,)."""
    x, y = _pair(x, y)
    return (x - y).pow(2).mean(dim=(1, 2, 3))


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB, 10 log10(data_range^2 / MSE): (B,) (inf where the images are equal)."""
    return 10.0 * torch.log10(data_range**2 / mse(x, y))


def _gaussian_window(size: int, sigma: float) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-image SSIM (Wang et al. 2004, eq. 13) with a Gaussian window, valid region, mean over channels: (B,)."""
    x, y = _pair(x, y)
    b, c, h, w = x.shape
    win = min(win_size, h if h % 2 else h - 1, w if w % 2 else w - 1)
    if win < 3:
        raise ValueError(f"x: images of {h}x{w} are too small for SSIM (need sides >= 3)")
    g = _gaussian_window(win, sigma)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, win, win)  # (C, 1, k, k), depthwise

    def filt(z: Tensor) -> Tensor:
        return F.conv2d(z, kernel, groups=c)  # valid region only

    mx, my = filt(x), filt(y)
    # population (co)variances, as skimage with use_sample_covariance=False
    vx, vy, cxy = filt(x * x) - mx * mx, filt(y * y) - my * my, filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def consistency_mse(sr: Tensor, lr: Tensor, scale: int) -> Tensor:
    """Per-image MSE between downsample(SR) and the LR input it came from: (B,) (SR3's consistency)."""
    return mse(downsample(sr.double(), scale), lr.double())


def hole_mse(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Per-image MSE over the hole (mask False) pixels of every channel: (B,). mask (H, W) or (B, 1|C, H, W)."""
    x, y = _pair(x, y)
    hole = (~_expand_mask(mask, x)).double()
    n = hole.sum(dim=(1, 2, 3))
    if bool((n == 0).any()):
        raise ValueError("mask: an image has no hole pixels (mask is all True)")
    return ((x - y).pow(2) * hole).sum(dim=(1, 2, 3)) / n


def hole_psnr(x: Tensor, y: Tensor, mask: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR over the hole pixels only: (B,)."""
    return 10.0 * torch.log10(data_range**2 / hole_mse(x, y, mask))


def known_max_error(x: Tensor, y: Tensor, mask: Tensor) -> float:
    """max |x - y| over the known (mask True) pixels: 0.0 when they came back exactly."""
    x, y = _pair(x, y)
    keep = _expand_mask(mask, x)
    return float((x - y).abs()[keep].max()) if bool(keep.any()) else 0.0


def _expand_mask(mask: Tensor, x: Tensor) -> Tensor:
    mask = mask.bool().to(x.device)
    if mask.ndim == 2:
        mask = mask[None, None]
    try:
        return torch.broadcast_to(mask, x.shape)
    except RuntimeError:
        raise ValueError(f"mask: shape {tuple(mask.shape)} does not broadcast to images {tuple(x.shape)}") from None


def mean_db(values: Tensor) -> float:
    """Mean of per-image dB values; +inf entries (exact images) are left out (nan when all are)."""
    v = values[torch.isfinite(values)]
    return float(v.mean()) if v.numel() else math.nan
