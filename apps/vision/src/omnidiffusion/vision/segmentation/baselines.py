"""Classical segmentation baseline: Otsu's global threshold (Otsu 1979) with a stated polarity rule.

Otsu splits the grey levels of one image into two classes at the threshold that maximises the between-class
variance (scikit-image `threshold_otsu`). It does not say which side is the object. Rule used here ("minority"):
the foreground is the side with fewer pixels, since the objects of a segmentation set are usually smaller than the
background (true for every bundled image: shapes and horses cover 4-60% of it). "bright" and "dark" pick a fixed
side instead. RGB images are thresholded on their luma (ITU-R 601). An image with a single grey level has no
threshold and gets an empty mask.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

POLARITIES = ("minority", "bright", "dark")


def otsu_mask(image: np.ndarray, polarity: str = "minority") -> np.ndarray:
    """One (H, W) grey image -> bool (H, W) foreground mask by Otsu's threshold and `polarity`."""
    from skimage.filters import threshold_otsu

    if polarity not in POLARITIES:
        raise ValueError(f"polarity: expected one of {POLARITIES}, got {polarity!r}")
    if image.ndim != 2:
        raise ValueError(f"image: expected a grey image (H, W), got shape {image.shape}")
    if float(image.max()) == float(image.min()):
        return np.zeros(image.shape, dtype=bool)
    bright = image > threshold_otsu(image)
    if polarity == "bright":
        return bright
    if polarity == "dark":
        return ~bright
    return bright if bright.sum() <= (~bright).sum() else ~bright


def otsu_segment(images: Tensor, polarity: str = "minority") -> Tensor:
    """Pixel-range images (B, C, H, W) -> masks (B, 1, H, W) in {0, 1}, one Otsu threshold per image."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images: expected shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
    x = images.double()
    grey = x[:, 0] if x.shape[1] == 1 else 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # (B, H, W)
    masks = [otsu_mask(g.numpy(), polarity) for g in grey]
    return torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
