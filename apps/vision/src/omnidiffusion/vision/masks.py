"""Inpainting masks: True / 1 = known pixel (kept), False / 0 = hole (to fill), as RePaint's mask PNGs (255 = keep).

Generators (each returns a bool tensor (H, W)):
- `box_mask`: a centred square hole covering `fraction` of the image area (RePaint's "wide" / 50% box).
- `half_mask`: one half missing ("genhalf"): side = left | right | top | bottom is the hole.
- `lines_mask`: every other row missing ("ev2li", the alternating-lines mask).
- `stroke_mask`: random thick strokes (free-form brush masks in the style of the LaMa / DeepFill test masks).
- `load_mask`: a user mask image, white (>= 128) = keep; its size must match the image.
`make_mask(spec, size)` maps a CLI spec (box | half | lines | strokes | a file path) to one of these.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from .imaging import read_image

MASK_KINDS = ("box", "half", "lines", "strokes")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    h, w = int(size[0]), int(size[1])
    if h < 2 or w < 2:
        raise ValueError(f"size: expected an image size of at least 2x2, got {size}")
    return h, w


def box_mask(size: tuple[int, int], fraction: float = 0.5) -> Tensor:
    """Centred square hole of side round(sqrt(fraction * H * W)) (clipped to the image): (H, W) bool, True = keep."""
    h, w = _check_size(size)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a value in (0, 1), got {fraction}")
    side = min(h, w, max(1, round(math.sqrt(fraction * h * w))))
    top, left = (h - side) // 2, (w - side) // 2
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[top : top + side, left : left + side] = False
    return mask


def half_mask(size: tuple[int, int], side: str = "right") -> Tensor:
    """One half of the image is the hole (`side` = left | right | top | bottom): (H, W) bool, True = keep."""
    h, w = _check_size(size)
    mask = torch.ones(h, w, dtype=torch.bool)
    if side == "left":
        mask[:, : w // 2] = False
    elif side == "right":
        mask[:, w - w // 2 :] = False
    elif side == "top":
        mask[: h // 2] = False
    elif side == "bottom":
        mask[h - h // 2 :] = False
    else:
        raise ValueError(f"side: expected left, right, top or bottom, got {side!r}")
    return mask


def lines_mask(size: tuple[int, int], offset: int = 1) -> Tensor:
    """Every other row is a hole (rows offset, offset + 2, ...): (H, W) bool, True = keep."""
    h, w = _check_size(size)
    if offset not in (0, 1):
        raise ValueError(f"offset: expected 0 or 1, got {offset}")
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[offset::2] = False
    return mask


def stroke_mask(size: tuple[int, int], strokes: int = 4, width: float = 0.12, seed: int = 0) -> Tensor:
    """Random free-form strokes as holes: each a polyline of 2-4 segments with a disc brush of diameter
    `width` x min(H, W); seeded, so the same seed gives the same mask. (H, W) bool, True = keep."""
    h, w = _check_size(size)
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    radius = max(0.5, 0.5 * width * min(h, w))
    hole = torch.zeros(h, w, dtype=torch.bool)
    for _ in range(strokes):
        y, x = float(torch.rand(1, generator=gen)) * h, float(torch.rand(1, generator=gen)) * w
        for _ in range(int(torch.randint(2, 5, (1,), generator=gen))):
            angle = float(torch.rand(1, generator=gen)) * 2 * math.pi
            length = (0.2 + 0.4 * float(torch.rand(1, generator=gen))) * min(h, w)
            y2 = min(max(y + length * math.sin(angle), 0.0), h - 1.0)
            x2 = min(max(x + length * math.cos(angle), 0.0), w - 1.0)
            # distance of every pixel to the segment (y, x) -> (y2, x2)
            dy, dx = y2 - y, x2 - x
            denom = dy * dy + dx * dx
            u = ((yy - y) * dy + (xx - x) * dx) / denom if denom > 0 else torch.zeros_like(yy)
            u = u.clamp(0.0, 1.0)
            dist2 = (yy - (y + u * dy)) ** 2 + (xx - (x + u * dx)) ** 2
            hole |= dist2 <= radius**2
            y, x = y2, x2
    return ~hole


def load_mask(path: str | Path, size: tuple[int, int] | None = None) -> Tensor:
    """A mask image (white >= 0.5 = keep, black = hole) as (H, W) bool; `size` must match when given."""
    img = read_image(path, channels=1)[0]  # (H, W) in [0, 1]
    mask = img >= 0.5
    if size is not None and tuple(mask.shape) != tuple(size):
        raise ValueError(f"mask {path}: size {tuple(mask.shape)} does not match the image size {tuple(size)}")
    return mask


def make_mask(spec: str | Path | Tensor, size: tuple[int, int], seed: int = 0) -> Tensor:
    """A mask from a CLI spec (box | half | lines | strokes | a mask image path) or a tensor, checked against size."""
    if isinstance(spec, Tensor):
        return check_mask(spec, size)
    if str(spec) == "box":
        return box_mask(size, 0.5)
    if str(spec) == "half":
        return half_mask(size, "right")
    if str(spec) == "lines":
        return lines_mask(size)
    if str(spec) == "strokes":
        return stroke_mask(size, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"mask: {spec!r} is neither one of {MASK_KINDS} nor an existing mask image file")
    return load_mask(path, size)


def check_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Validate a mask tensor (H, W) or (1, H, W) of bools or 0/1 values against the image size; returns (H, W) bool."""
    if not isinstance(mask, Tensor):
        raise ValueError(f"mask: expected a tensor, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(f"mask: expected shape (H, W) or (1, H, W), got {tuple(mask.shape)}")
    if tuple(mask.shape) != tuple(size):
        raise ValueError(f"mask: size {tuple(mask.shape)} does not match the image size {tuple(size)}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask: expected booleans or 0/1 values (1 = keep)")
        mask = mask.bool()
    return mask
