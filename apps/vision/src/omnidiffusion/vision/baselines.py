"""Classical baselines the diffusion models are compared with (pixel-range images in [0, 1]).

Super-resolution: nearest / bilinear / bicubic interpolation of the LR image (the issue's "best of" baselines);
the learned regression baseline (same UNet, L2) lives in models.RegressionSR.
Inpainting: mean fill (each channel's mean over the known pixels of the image) and scikit-image's biharmonic
inpainting (`skimage.restoration.inpaint_biharmonic`, Damelin & Hoang 2018), a smooth PDE fill of the hole.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .imaging import UPSAMPLE_MODES, upsample
from .masks import check_mask

INPAINT_BASELINES = ("mean-fill", "biharmonic")


def interpolate_sr(lr: Tensor, scale: int, mode: str) -> Tensor:
    """Upsample LR images (B, C, h, w) in [0, 1] with `mode` (nearest | bilinear | bicubic), clamped to [0, 1]."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"mode: expected one of {UPSAMPLE_MODES}, got {mode!r}")
    return upsample(lr, scale, mode).clamp(0.0, 1.0)


def mean_fill(images: Tensor, mask: Tensor) -> Tensor:
    """Holes (mask False) set to each image's per-channel mean over the known pixels: (B, C, H, W) in [0, 1]."""
    m = _mask4(mask, images).to(images.dtype)  # (B, 1, H, W)
    n = m.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
    mean = (images * m).sum(dim=(2, 3), keepdim=True) / n  # (B, C, 1, 1)
    return torch.where(m.bool(), images, mean.expand_as(images))


def biharmonic_fill(images: Tensor, mask: Tensor) -> Tensor:
    """scikit-image `inpaint_biharmonic` per image (channels jointly for RGB): (B, C, H, W) in [0, 1]."""
    from skimage.restoration import inpaint_biharmonic

    m = _mask4(mask, images)
    out = []
    for img, keep in zip(images, m, strict=True):
        arr = img.detach().cpu().double().numpy()  # (C, H, W)
        hole = ~keep[0].cpu().numpy()
        if arr.shape[0] == 1:
            filled = inpaint_biharmonic(arr[0], hole)[None]
        else:
            filled = np.moveaxis(inpaint_biharmonic(np.moveaxis(arr, 0, -1), hole, channel_axis=-1), -1, 0)
        out.append(torch.from_numpy(np.clip(filled, 0.0, 1.0)))
    result = torch.stack(out).to(images.dtype)
    return torch.where(m, images, result)  # known pixels exactly as given


def inpaint_baseline(name: str, images: Tensor, mask: Tensor) -> Tensor:
    """Run one of INPAINT_BASELINES by name."""
    if name == "mean-fill":
        return mean_fill(images, mask)
    if name == "biharmonic":
        return biharmonic_fill(images, mask)
    raise ValueError(f"name: expected one of {INPAINT_BASELINES}, got {name!r}")


def _mask4(mask: Tensor, images: Tensor) -> Tensor:
    b, _, h, w = images.shape
    if mask.ndim == 4:
        if tuple(mask.shape) != (b, 1, h, w):
            raise ValueError(f"mask: expected shape (H, W) or ({b}, 1, {h}, {w}), got {tuple(mask.shape)}")
        return mask.bool()
    return check_mask(mask, (h, w))[None, None].expand(b, 1, h, w)
