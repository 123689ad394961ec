"""The point-cloud baselines the issue names.

- Generation: an isotropic Gaussian blob per cloud with the training points' mean and standard deviation (one std
  for all three axes). It has the right position and spread but no surface, so 1-NNA against real clouds is near
  100% (every blob's nearest neighbour is another blob).
- Completion: the observed points plus their mirror image across the cutting plane u . x = c, i.e.
  x' = x - 2 (u . x - c) u; the shape is assumed symmetric about the cut. The result is brought to the size of the
  ground truth by random repeats so that EMD (which needs equal sizes) is defined; Chamfer is unaffected by the
  repeats up to their sampling.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .formats import resample


def blob_baseline(
    n: int, n_points: int, train: Tensor | np.ndarray, generator: torch.Generator | None = None
) -> Tensor:
    """n Gaussian blobs (n, n_points, 3) with the mean (3,) and the pooled std of all training points."""
    pts = torch.as_tensor(np.asarray(train), dtype=torch.float32).reshape(-1, 3)  # (M * N, 3)
    mean, std = pts.mean(dim=0), pts.std()
    return mean + std * torch.randn(n, n_points, 3, generator=generator)


def reflect(points: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Mirror (K, 3) points across the plane normal . x = offset (normal has unit length)."""
    u = np.asarray(normal, dtype=np.float64)
    if u.shape != (3,) or not np.isclose(np.linalg.norm(u), 1.0):
        raise ValueError(f"normal: expected a unit vector of shape (3,), got {u}")
    d = points @ u - offset  # (K,) signed distance to the plane
    return points - 2.0 * d[:, None] * u[None, :]


def reflection_baseline(
    partial: np.ndarray, normal: np.ndarray, offset: float, n_points: int, rng: np.random.Generator
) -> np.ndarray:
    """The partial input plus its reflection across the cut plane, resampled to (n_points, 3)."""
    both = np.concatenate([partial, reflect(partial, normal, offset)]).astype(np.float32)  # (2K, 3)
    return resample(both, n_points, rng)
