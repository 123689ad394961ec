"""DDPM-Seg pixel features (Baranchuk et al. 2022, sec. 3) and the raw-pixel baseline features, streamed.

`DDPMFeatures(model, blocks, steps)`: noise the image x0 to each chosen table step s with ONE shared noise draw
(x_s = alpha_s x0 + sigma_s eps, the repository's share_noise), run the trained UNet once on the len(steps) noisy
copies, and catch the outputs of the chosen decoder blocks (`net.up[i]`) with forward hooks. Each activation is
upsampled bilinearly to the image size and all are concatenated: a (D, H, W) map, D = len(steps) * sum of the
blocks' widths.

`PatchFeatures(k)`: the baseline, each pixel's k x k neighbourhood of raw values (replicate padding): (C k^2, H, W).

Memory (the DDPM-Seg repository keeps every pixel's features of every image: ~210 GB for 50 images at 256^2):
`sample_pixels` streams images one at a time and keeps only `pixels_per_image` sampled pixels of each, written into
one preallocated (N k, D) buffer, so what it holds is that buffer plus one image's features and activations,
independent of N. `predict_maps` streams held-out images the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import ImageDDPM


class DDPMFeatures:
    """Callable: pixel-range image (C, H, W) -> (D, H, W) DDPM decoder features at the chosen noise levels."""

    def __init__(self, model: ImageDDPM, blocks: list[int], steps: list[int], seed: int = 0) -> None:
        if not isinstance(model, ImageDDPM):
            raise ValueError(f"model: expected an ImageDDPM, got {type(model).__name__}")
        n_up = len(model.net.up)
        if not blocks or any(not 0 <= b < n_up for b in blocks):
            raise ValueError(f"blocks: expected indices in [0, {n_up}) of the UNet's decoder blocks, got {blocks}")
        T = model.schedule.T
        if not steps or any(not 0 <= s < T for s in steps):
            raise ValueError(f"steps: expected table steps in [0, {T}), got {steps}")
        self.model = model.eval()
        self.blocks, self.steps = [int(b) for b in blocks], [int(s) for s in steps]
        size, c = model.image_size, model.channels
        # one noise draw shared by every noise level and every image (DDPM-Seg's share_noise)
        self.noise = torch.randn((1, c, size, size), generator=torch.Generator().manual_seed(seed))
        t = model.schedule.t_of_index(torch.tensor(self.steps)).float()  # (S,)
        self.t = t
        self.alpha = model.schedule.alpha(t.double()).float()
        self.sigma = model.schedule.sigma(t.double()).float()
        widths = self._widths()
        self.dim = len(self.steps) * sum(widths)

    def _widths(self) -> list[int]:
        widths = []
        for b in self.blocks:
            stage = self.model.net.up[b]
            conv = stage.conv if hasattr(stage, "conv") else stage.res.conv2
            widths.append(conv.out_channels)
        return widths

    @torch.no_grad()
    def __call__(self, image: Tensor) -> Tensor:
        """(C, H, W) in [0, 1] -> (D, H, W) float32 features (one UNet call on the len(steps) noisy copies)."""
        c, h, w = image.shape
        if c != self.model.channels:
            raise ValueError(f"image: expected {self.model.channels} channel(s), got shape {tuple(image.shape)}")
        if h % (2 ** (self.model.net.num_levels - 1)) or w % (2 ** (self.model.net.num_levels - 1)):
            raise ValueError(f"image: size {h}x{w} is not divisible by the UNet's downsampling factor")
        x0 = image.float()[None] * 2 - 1  # (1, C, H, W)
        noise = self.noise if (h, w) == tuple(self.noise.shape[-2:]) else F.interpolate(self.noise, size=(h, w))
        x_t = self.alpha[:, None, None, None] * x0 + self.sigma[:, None, None, None] * noise  # (S, C, H, W)
        caught: list[Tensor] = []
        handles = [
            self.model.net.up[b].register_forward_hook(lambda m, i, out: caught.append(out)) for b in self.blocks
        ]
        try:
            self.model(x_t, self.t)
        finally:
            for handle in handles:
                handle.remove()
        out = torch.empty(self.dim, h, w)
        k = 0
        for act in caught:  # (S, c_b, h_b, w_b) in hook (= block) order
            up = F.interpolate(act, size=(h, w), mode="bilinear", align_corners=False)  # (S, c_b, H, W)
            n = up.shape[0] * up.shape[1]
            out[k : k + n] = up.reshape(n, h, w)
            k += n
        return out


class PatchFeatures:
    """Callable: pixel-range image (C, H, W) -> (C k^2, H, W), each pixel's k x k raw neighbourhood in [-1, 1]."""

    def __init__(self, channels: int, k: int = 5) -> None:
        if k < 1 or k % 2 == 0:
            raise ValueError(f"patch: expected an odd neighbourhood side >= 1, got {k}")
        self.channels, self.k = channels, k
        self.dim = channels * k * k

    def __call__(self, image: Tensor) -> Tensor:
        c, h, w = image.shape
        if c != self.channels:
            raise ValueError(f"image: expected {self.channels} channel(s), got shape {tuple(image.shape)}")
        r = self.k // 2
        padded = F.pad(image.float()[None] * 2 - 1, (r, r, r, r), mode="replicate")  # (1, C, H+2r, W+2r)
        return F.unfold(padded, self.k).reshape(self.dim, h, w)


FeatureFn = Callable[[Tensor], Tensor]


def choose_pixels(mask: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k flat pixel indices of an (H, W) {0, 1} mask: half foreground, half background where both exist."""
    flat = mask.reshape(-1) >= 0.5
    fg, bg = flat.nonzero().reshape(-1), (~flat).nonzero().reshape(-1)
    if fg.numel() == 0 or bg.numel() == 0:
        pool = fg if fg.numel() else bg
        return pool[torch.randint(0, pool.numel(), (k,), generator=generator)]
    k_fg = k // 2
    pick_fg = fg[torch.randint(0, fg.numel(), (k_fg,), generator=generator)]
    pick_bg = bg[torch.randint(0, bg.numel(), (k - k_fg,), generator=generator)]
    return torch.cat([pick_fg, pick_bg])


def sample_pixels(
    features: FeatureFn, dim: int, images: Tensor, masks: Tensor, pixels_per_image: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Stream images through `features`, keep `pixels_per_image` sampled pixels of each.

    images (N, C, H, W) in [0, 1], masks (N, 1, H, W) in {0, 1} -> (X (N k, dim) float32, y (N k,) int64).
    Holds one image's features at a time plus the preallocated output.
    """
    n, k = images.shape[0], int(pixels_per_image)
    if k < 1:
        raise ValueError(f"pixels_per_image: expected at least 1, got {k}")
    gen = torch.Generator().manual_seed(seed)
    X = torch.empty(n * k, dim)
    y = torch.empty(n * k, dtype=torch.int64)
    for i in range(n):
        idx = choose_pixels(masks[i, 0], k, gen)  # (k,)
        f = features(images[i])  # (dim, H, W)
        if f.shape[0] != dim:
            raise ValueError(f"features: expected {dim} feature channels, got {f.shape[0]}")
        X[i * k : (i + 1) * k] = f.reshape(dim, -1)[:, idx].T
        y[i * k : (i + 1) * k] = (masks[i, 0].reshape(-1)[idx] >= 0.5).long()
        del f
    return X, y


def predict_maps(features: FeatureFn, classify: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """Label maps (N, H, W) int64: each image's (dim, H, W) features -> classify((H W, dim)) -> (H W,) labels."""
    n, _, h, w = images.shape
    out = torch.empty(n, h, w, dtype=torch.int64)
    for i in range(n):
        f = features(images[i])
        out[i] = classify(f.reshape(f.shape[0], -1).T).reshape(h, w)
        del f
    return out
