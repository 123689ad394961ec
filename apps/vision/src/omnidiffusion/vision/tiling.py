"""Patch-wise network calls for large images: overlapping tiles, blended with weights that sum to one.

SR3's UNet is convolutional except for its self-attention, whose memory grows with the square of the number of
feature-map pixels: a 1024 x 1024 output needs a 65536 x 65536 attention map at the bottleneck of a 4x-down
UNet (16 GiB in float32). `TiledNetwork` wraps the network so that at EVERY denoiser call the state x_t and the
spatial conditioning (SR3's upsampled LR image) are cut into overlapping tiles, the network runs per tile, and the
predictions are blended with a smooth window: on each axis a raised-cosine ramp over the overlap, normalised so that
the weights of all tiles covering a pixel sum to exactly one. The sampler itself sees one whole-image prediction,
so its noise, its steps and the x0 clipping stay global and neighbouring tiles agree with each other.

With a tile that covers the whole image the wrapper returns the network's own output (weight exactly 1.0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def axis_windows(length: int, tile: int, overlap: int) -> list[tuple[int, Tensor]]:
    """Tiles of side `tile` along an axis of `length`: [(start, weight (tile,) float64)], weights summing to one.

    Starts step by tile - overlap and the last tile ends flush with the axis; each window is 1 inside and rises
    as sin^2 over `overlap` pixels at an edge shared with a neighbour (image borders keep weight 1).
    """
    if not 1 <= tile <= length:
        raise ValueError(f"tile: expected a side in [1, {length}] for an axis of {length} pixels, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap: expected 0 <= overlap < tile = {tile}, got {overlap}")
    if tile == length:
        return [(0, torch.ones(tile, dtype=torch.float64))]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    k = torch.arange(overlap, dtype=torch.float64)
    rise = torch.sin(0.5 * math.pi * (k + 0.5) / max(overlap, 1)) ** 2  # (overlap,), strictly positive
    raw = []
    for s in starts:
        w = torch.ones(tile, dtype=torch.float64)
        if s > 0 and overlap:
            w[:overlap] = rise
        if s + tile < length and overlap:
            w[tile - overlap :] = torch.minimum(w[tile - overlap :], rise.flip(0))
        raw.append(w)
    total = torch.zeros(length, dtype=torch.float64)
    for s, w in zip(starts, raw, strict=True):
        total[s : s + tile] += w
    return [(s, w / total[s : s + tile]) for s, w in zip(starts, raw, strict=True)]


def tile_count(height: int, width: int, tile: int, overlap: int, factor: int = 1) -> int:
    """How many tiles `TiledNetwork` uses for an (height, width) image."""
    th, tw = _side(tile, height, factor), _side(tile, width, factor)
    return len(axis_windows(height, th, min(overlap, th - 1))) * len(axis_windows(width, tw, min(overlap, tw - 1)))


def _side(tile: int, length: int, factor: int) -> int:
    """The tile side used on an axis: `tile`, or the axis itself rounded down to the network factor when shorter."""
    return min(tile, length - length % factor)


class TiledNetwork(nn.Module):
    """net(x_t, t, **cond) evaluated on overlapping tiles of x_t (B, C, H, W) and of every cond tensor (B, *, H, W).

    `tile`: side in pixels (a multiple of `factor`, the network's downsampling factor); `overlap`: pixels shared by
    neighbours; `batch_size`: tiles per network call (times B). Returns the blended prediction (B, C_out, H, W).
    """

    def __init__(self, net: nn.Module, tile: int, overlap: int, factor: int = 1, batch_size: int = 16) -> None:
        super().__init__()
        if tile < 1 or tile % factor:
            raise ValueError(f"tile: expected a positive multiple of {factor} (the network's factor), got {tile}")
        self.net, self.tile, self.overlap, self.factor, self.batch_size = net, tile, overlap, factor, batch_size

    def windows(self, height: int, width: int) -> tuple[list[tuple[int, Tensor]], list[tuple[int, Tensor]]]:
        """The row and column windows of an image: each [(start, weight)], see `axis_windows`."""
        th, tw = _side(self.tile, height, self.factor), _side(self.tile, width, self.factor)
        return (
            axis_windows(height, th, min(self.overlap, th - 1)),
            axis_windows(width, tw, min(self.overlap, tw - 1)),
        )

    def forward(self, x_t: Tensor, t: Tensor, **cond) -> Tensor:
        b, _, h, w = x_t.shape
        rows, cols = self.windows(h, w)
        th, tw = len(rows[0][1]), len(cols[0][1])
        spatial = {k: v for k, v in cond.items() if isinstance(v, Tensor) and v.ndim == 4 and v.shape[-2:] == (h, w)}
        jobs = [(r, c) for r in rows for c in cols]
        out = None
        for lo in range(0, len(jobs), self.batch_size):
            part = jobs[lo : lo + self.batch_size]

            def cut(v: Tensor, part=part) -> Tensor:
                return torch.cat([v[..., y : y + th, x : x + tw] for (y, _), (x, _) in part])  # (n B, C, th, tw)

            kwargs = {k: cut(v) if k in spatial else v for k, v in cond.items()}
            pred = self.net(cut(x_t), t.repeat(len(part)), **kwargs)
            if out is None:
                out = torch.zeros((b, pred.shape[1], h, w), dtype=pred.dtype, device=pred.device)
            for i, ((y, wy), (x, wx)) in enumerate(part):
                weight = (wy[:, None] * wx[None, :]).to(dtype=pred.dtype, device=pred.device)  # (th, tw)
                out[..., y : y + th, x : x + tw] += weight * pred[i * b : (i + 1) * b]
        return out
