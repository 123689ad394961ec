"""`PointCloudDiffusion`: what downstream code calls, numpy in and numpy out.

pipe = PointCloudDiffusion.from_pretrained("runs/vision/points-shapes")
clouds = pipe.generate(8, 256)                 # (8, 256, 3) float32
full = pipe.complete(partial)                  # (K, 3) or (B, K, 3) -> (N, 3) or (B, N, 3); first K = partial
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omnidiffusion.core.checks import positive_int, real_number, resolve_device

from .model import PointDiffusionModel


class PointCloudDiffusion:
    """Generation and PVD-style completion with a trained PointDiffusionModel; `method`/`steps` pick the sampler.

    `clip` clamps x0_hat while sampling (1.5 suits the bundled shapes and unit-sphere data; None turns it off).
    """

    def __init__(
        self,
        model: PointDiffusionModel,
        method: str = "dpm++2m",
        steps: int = 25,
        grid: str = "trailing",
        clip: float | None = 1.5,
    ) -> None:
        if not isinstance(model, PointDiffusionModel):
            raise ValueError(f"model: expected a PointDiffusionModel, got {type(model).__name__}")
        steps = positive_int(steps, "steps")
        clip = None if clip is None else real_number(clip, "clip", low=0.0, low_open=True)
        self.model, self.method, self.steps, self.grid, self.clip = model.eval(), method, steps, grid, clip

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device = "cpu",
        method: str = "dpm++2m",
        steps: int = 25,
        clip: float | None = 1.5,
    ) -> PointCloudDiffusion:
        """Load a directory written by `omnidiffusion-vision train --config points-shapes` (or save_pretrained)."""
        model = PointDiffusionModel.from_pretrained(directory, map_location=resolve_device(device))
        return cls(model, method, steps, clip=clip)

    @property
    def n_points(self) -> int:
        return self.model.n_points

    def generate(self, n: int, n_points: int | None = None, seed: int = 0) -> np.ndarray:
        """n new clouds: (n, n_points, 3) float32 (n_points defaults to the training size)."""
        x = self.model.generate(
            n, n_points, method=self.method, steps=self.steps, grid=self.grid,
            generator=torch.Generator().manual_seed(seed), clip=self.clip,
        )  # fmt: skip
        return x.numpy().astype(np.float32)

    def complete(self, partial: np.ndarray, n_points: int | None = None, seed: int = 0) -> np.ndarray:
        """Complete (K, 3) or (B, K, 3) observed points to n_points per cloud; the first K are `partial` exactly."""
        arr = np.asarray(partial, dtype=np.float32)
        single = arr.ndim == 2
        if arr.ndim not in (2, 3) or arr.shape[-1] != 3:
            raise ValueError(f"partial: expected shape (K, 3) or (B, K, 3), got {arr.shape}")
        x = torch.from_numpy(arr[None] if single else arr)
        out = self.model.complete(
            x, n_points, method=self.method, steps=self.steps, grid=self.grid,
            generator=torch.Generator().manual_seed(seed), clip=self.clip,
        )  # fmt: skip
        out = out.numpy().astype(np.float32)
        return out[0] if single else out
