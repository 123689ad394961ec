"""Noise sources for the stochastic samplers: i.i.d. draws (the default) or one seeded Brownian path.

A noise source is called as `noise(like, t, s)` for a step from time t down to s < t and returns a standard
normal tensor shaped like `like`. The default draws it from the sampler's generator, independently per step.
`BrownianTree` instead returns the normalised increment (W(t) - W(s)) / sqrt(t - s) of ONE Brownian path W on
[0, 1] fixed by a seed, queried at any time without storing the path (the construction of torchsde's
BrownianTree and k-diffusion's BrownianTreeNoiseSampler): with it the sample for one seed converges as the
step count grows, since every grid discretises the same SDE path (strong convergence of Euler-Maruyama).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..checks import non_negative_int, positive_int
from ..tensors import randn

# noise(like, t, s) -> z ~ N(0, I) shaped like `like`, for the step t -> s.
Noise = Callable[[Tensor, float, float], Tensor]

_MASK = (1 << 64) - 1


def _mix(z: int) -> int:
    """SplitMix64 finaliser: decorrelates the seeds of neighbouring tree nodes."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) >> 1  # 63 bits: a valid torch seed


def gaussian_noise(generator: torch.Generator | None) -> Noise:
    """The default source: a fresh N(0, I) draw from `generator` at every step."""

    def noise(like: Tensor, t: float, s: float) -> Tensor:
        return randn(like.shape, generator, device=like.device, dtype=like.dtype)

    return noise


class BrownianTree:
    """A standard Brownian motion W on [0, 1] with W(0) = 0, fixed by `seed`, evaluated lazily by bisection.

    W(1) ~ N(0, 1); the value at the midpoint of [a, b] given W(a), W(b) is the Brownian-bridge draw
    (W(a) + W(b))/2 + sqrt((b - a)/4) z, with z seeded by the node, so every query of the same time sees the
    same value. Below `depth` levels (interval 2^-depth) the leaf is filled by a bridge draw seeded by the leaf.
    Queries cost `depth` normal draws of the state's shape; nothing is stored between them.

    Args:
        seed: integer seed of the path.
        depth: bisection levels (default 24: nodes 6e-8 apart in t, far below any grid spacing).
    """

    def __init__(self, seed: int, depth: int = 24):
        self.seed = non_negative_int(seed, "seed")
        self.depth = positive_int(depth, "depth", maximum=60)

    @classmethod
    def from_generator(cls, generator: torch.Generator | None, depth: int = 24) -> BrownianTree:
        """A tree whose seed is one draw from `generator` (so one generator seed fixes x_T and the path)."""
        seed = int(torch.randint(0, 2**62, (), generator=generator).item())
        return cls(seed, depth)

    def _normal(self, node: int, like: Tensor) -> Tensor:
        gen = torch.Generator(device=like.device).manual_seed(_mix(self.seed * 0x100000001B3 + node))
        # float64 draws on CPU, float32 elsewhere, then cast: the path does not depend on the state's dtype.
        dtype = torch.float64 if like.device.type == "cpu" else torch.float32
        return randn(like.shape, gen, device=like.device, dtype=dtype)

    def value(self, t: float, like: Tensor) -> Tensor:
        """W(t) shaped like `like` (float64 on CPU, float32 on accelerators)."""
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t: expected a time in [0, 1], got {t}")
        w_b = self._normal(1, like)  # W(1)
        if t == 1.0:
            return w_b
        w_a = torch.zeros_like(w_b)
        if t == 0.0:
            return w_a
        a, b, node = 0.0, 1.0, 1
        for _ in range(self.depth):
            m = 0.5 * (a + b)
            node = 2 * node  # left child of the current interval; right child is node + 1
            w_m = 0.5 * (w_a + w_b) + math.sqrt((b - a) / 4.0) * self._normal(node, like)
            if t == m:
                return w_m
            if t < m:
                b, w_b = m, w_m
            else:
                node += 1
                a, w_a = m, w_m
        # Inside the leaf [a, b]: the bridge value at t, seeded by the leaf (a different stream from its nodes).
        u = (t - a) / (b - a)
        z = self._normal(-node, like)
        return w_a + u * (w_b - w_a) + math.sqrt((t - a) * (b - t) / (b - a)) * z

    def __call__(self, like: Tensor, t: float, s: float) -> Tensor:
        """(W(t) - W(s)) / sqrt(t - s) in `like`'s dtype: N(0, I) for one step, coupled across grids."""
        if not t > s:
            raise ValueError(f"t, s: expected t > s for a denoising step, got t={t}, s={s}")
        z = (self.value(t, like) - self.value(s, like)) / math.sqrt(t - s)
        return z.to(like.dtype)


def resolve_noise(noise: str | Noise | None, generator: torch.Generator | None) -> Noise | None:
    """The front door's `noise=` argument: None or "gaussian" (i.i.d. from the generator), "brownian" (a
    BrownianTree seeded from the generator) or any callable `noise(like, t, s)`."""
    if noise is None or noise == "gaussian":
        return None
    if noise == "brownian":
        return BrownianTree.from_generator(generator)
    if callable(noise):
        return noise
    raise ValueError(f"noise: expected None, 'gaussian', 'brownian' or a callable noise(like, t, s), got {noise!r}")


__all__ = ["BrownianTree", "Noise", "gaussian_noise", "resolve_noise"]
