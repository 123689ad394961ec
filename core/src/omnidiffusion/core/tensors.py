"""Shape-generic helpers: broadcast per-sample scalars and reduce over non-batch dimensions, and seeded draws
that work whatever device the generator lives on.

Every module in core uses these functions instead of hard-coded image ranks, so images
(B, C, H, W), audio (B, 1, N), series (B, K, L), token embeddings (B, L, D) and atoms (N, 3)
all pass through the same code.
"""

from __future__ import annotations

import torch
from torch import Tensor


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dimensions to `v` until it has `ndim` dimensions.

    A per-sample scalar of shape (B,) becomes (B, 1, ..., 1) and broadcasts against a (B, ...) tensor.
    """
    missing = ndim - v.ndim
    if missing < 0:
        raise ValueError(f"append_dims: tensor has {v.ndim} dims, more than the target {ndim}")
    return v.reshape(*v.shape, *([1] * missing))


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def sum_flat(x: Tensor) -> Tensor:
    """Sum over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def per_sample(value: float | Tensor, x: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Turn a float, a 0-d tensor or a (B,) tensor into a (B,) tensor on x's device.

    Raises ValueError when a tensor does not have one entry per leading element of `x`.
    """
    n = x.shape[0]
    if isinstance(value, Tensor):
        if value.ndim == 0:
            return value.to(device=x.device, dtype=dtype).expand(n)
        if value.shape != (n,):
            raise ValueError(
                f"t: expected a float or a tensor of shape ({n},) (one entry per leading element of x), "
                f"got shape {tuple(value.shape)}"
            )
        return value.to(device=x.device, dtype=dtype)
    return torch.full((n,), float(value), device=x.device, dtype=dtype)


def randn(
    shape: int | tuple[int, ...], generator: torch.Generator | None, *, device=None, dtype: torch.dtype | None = None
) -> Tensor:
    """N(0, I) of `shape` on `device`, drawn from `generator` wherever it lives.

    A generator on another device (the usual CPU generator with a CUDA state) draws on its own device and the
    draw is moved: one seed then gives the same noise on every device, and no caller has to move generators.
    (torch.randn(..., generator=cpu_generator, device="cuda") raises instead.)
    """
    return _draw(torch.randn, shape, generator, device, dtype)


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) shaped like x, on x's device and in its dtype, from `generator` wherever it lives (see randn)."""
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


def rand(
    shape: int | tuple[int, ...], generator: torch.Generator | None, *, device=None, dtype: torch.dtype | None = None
) -> Tensor:
    """U[0, 1) of `shape` on `device`, drawn from `generator` wherever it lives (see randn)."""
    return _draw(torch.rand, shape, generator, device, dtype)


def randint(
    low: int, high: int, shape: int | tuple[int, ...], generator: torch.Generator | None, *, device=None
) -> Tensor:
    """Integers uniform in [low, high) of `shape` on `device`, drawn from `generator` wherever it lives (see randn)."""
    return _draw(lambda size, **kw: torch.randint(low, high, size, **kw), shape, generator, device, None)


def _draw(fn, shape, generator, device, dtype) -> Tensor:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    device = torch.device("cpu") if device is None else torch.device(device)
    kw = {} if dtype is None else {"dtype": dtype}
    if generator is None or generator.device.type == device.type:
        return fn(shape, generator=generator, device=device, **kw)
    return fn(shape, generator=generator, device=generator.device, **kw).to(device)
