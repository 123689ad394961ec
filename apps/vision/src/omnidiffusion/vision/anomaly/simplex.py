"""Simplex noise (Perlin 2001, in Gustavson's 2005 formulation), vectorised in torch, and AnoDDPM's noise fields.

- `simplex2(x, y, perm)`, `simplex3(x, y, z, perm)`: gradient noise on the 2-D triangle / 3-D tetrahedron
  lattice. Each lattice corner contributes (r^2 - |d|^2)_+^4 (g . d) with r^2 = 0.5 (2-D) / 0.6 (3-D) and g one
  of 12 edge gradients picked by hashing the corner through a permutation table; the sums are scaled (70 / 32)
  to about [-1, 1]. The value is exactly 0 at every lattice point (its own d is 0 and the neighbours lie beyond
  r), which the tests use as an independent check.
- `octave_noise`: AnoDDPM's multi-octave field (Wyatt et al. 2022, sec. 3.2): sum over octaves o of
  persistence^o * noise(pixel / f_o), with f_0 = `frequency` and f_{o+1} = f_o / 2. The 3-D variant samples the
  volume at depth t / f_o, t the diffusion step (AnoDDPM's "fixed T" slice), which avoids the directional
  artefacts of summed 2-D octaves the AnoDDPM authors report.
- `simplex_like(x, t_index)`: one independent field per (sample, channel), each with its own permutation table,
  standardised to zero mean and unit variance over its pixels so that it can stand in for eps in
  x_t = alpha x0 + sigma eps (AnoDDPM uses the raw octave sum; the standardisation keeps the forward marginal
  of the DDPM at unit noise variance).

AnoDDPM's defaults (256 px images) are 6 octaves, persistence 0.8, frequency 64; the field's structure scales
with the image, so `frequency` should scale with the side (64 * side / 256, e.g. 8 for 32 px).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# The 12 edge midpoints of a cube (Gustavson 2005); 2-D noise uses their first two components.
_GRAD3 = torch.tensor(
    [
        [1, 1, 0],
        [-1, 1, 0],
        [1, -1, 0],
        [-1, -1, 0],
        [1, 0, 1],
        [-1, 0, 1],
        [1, 0, -1],
        [-1, 0, -1],
        [0, 1, 1],
        [0, -1, 1],
        [0, 1, -1],
        [0, -1, -1],
    ],
    dtype=torch.float64,
)
F2, G2 = 0.5 * (math.sqrt(3.0) - 1.0), (3.0 - math.sqrt(3.0)) / 6.0  # 2-D skew / unskew factors
F3, G3 = 1.0 / 3.0, 1.0 / 6.0  # 3-D skew / unskew factors


def permutation_tables(n: int, generator: torch.Generator | None = None) -> Tensor:
    """n random permutations of 0..255, each repeated twice: (n, 512) int64 (the hash tables of the noise)."""
    perm = torch.argsort(torch.rand(n, 256, generator=generator), dim=1)  # (n, 256)
    return torch.cat([perm, perm], dim=1)


def _hash(perm: Tensor, *corners: Tensor) -> Tensor:
    """Gradient index perm[c0 + perm[c1 + perm[c2]]] % 12 for integer corners (n, P): (n, P) int64."""
    h = torch.zeros_like(corners[-1])
    for c in reversed(corners):
        h = torch.gather(perm, 1, (c & 255) + h)
    return h % 12


def _corner(perm: Tensor, corners: tuple[Tensor, ...], d: tuple[Tensor, ...], r2: float) -> Tensor:
    """One lattice corner's contribution (r2 - |d|^2)_+^4 (g . d): (n, P)."""
    g = _GRAD3.to(d[0].device, d[0].dtype)[_hash(perm, *corners)]  # (n, P, 3)
    dot = sum(g[..., k] * d[k] for k in range(len(d)))
    w = (r2 - sum(dk * dk for dk in d)).clamp(min=0.0)
    return w**4 * dot


def _check_perm(perm: Tensor, n: int) -> Tensor:
    if perm.ndim != 2 or perm.shape[1] != 512 or perm.shape[0] not in (1, n):
        raise ValueError(f"perm: expected shape (1 or {n}, 512) from permutation_tables, got {tuple(perm.shape)}")
    return perm.expand(n, 512)


def simplex2(x: Tensor, y: Tensor, perm: Tensor) -> Tensor:
    """2-D simplex noise at points (x, y) of shape (n, P) with per-row tables perm (n or 1, 512): (n, P) in ~[-1, 1]."""
    x, y = torch.broadcast_tensors(x.double(), y.double())
    perm = _check_perm(perm, x.shape[0])
    s = (x + y) * F2
    i, j = torch.floor(x + s), torch.floor(y + s)
    t = (i + j) * G2
    x0, y0 = x - (i - t), y - (j - t)  # offset from the cell origin, unskewed
    i1 = (x0 > y0).to(x.dtype)  # the middle corner: (1, 0) below the diagonal, else (0, 1)
    j1 = 1.0 - i1
    x1, y1 = x0 - i1 + G2, y0 - j1 + G2
    x2, y2 = x0 - 1.0 + 2.0 * G2, y0 - 1.0 + 2.0 * G2
    ii, jj = i.long(), j.long()
    n = _corner(perm, (ii, jj), (x0, y0), 0.5)
    n = n + _corner(perm, (ii + i1.long(), jj + j1.long()), (x1, y1), 0.5)
    n = n + _corner(perm, (ii + 1, jj + 1), (x2, y2), 0.5)
    return 70.0 * n


def simplex3(x: Tensor, y: Tensor, z: Tensor, perm: Tensor) -> Tensor:
    """3-D simplex noise at points (x, y, z) of shape (n, P), tables perm (n or 1, 512): (n, P) in ~[-1, 1]."""
    x, y, z = torch.broadcast_tensors(x.double(), y.double(), z.double())
    perm = _check_perm(perm, x.shape[0])
    s = (x + y + z) * F3
    i, j, k = torch.floor(x + s), torch.floor(y + s), torch.floor(z + s)
    t = (i + j + k) * G3
    x0, y0, z0 = x - (i - t), y - (j - t), z - (k - t)
    # The tetrahedron holding the point follows the rank order of (x0, y0, z0): the second corner steps along
    # the largest coordinate, the third along the two largest.
    xy, yz, xz = x0 >= y0, y0 >= z0, x0 >= z0
    i1, j1, k1 = xy & xz, ~xy & yz, ~xz & ~yz
    i2, j2, k2 = xy | xz, ~xy | yz, ~(xz & yz)
    f = x.dtype
    i1, j1, k1, i2, j2, k2 = (b.to(f) for b in (i1, j1, k1, i2, j2, k2))
    ii, jj, kk = i.long(), j.long(), k.long()
    n = _corner(perm, (ii, jj, kk), (x0, y0, z0), 0.6)
    n = n + _corner(
        perm, (ii + i1.long(), jj + j1.long(), kk + k1.long()), (x0 - i1 + G3, y0 - j1 + G3, z0 - k1 + G3), 0.6
    )
    n = n + _corner(
        perm,
        (ii + i2.long(), jj + j2.long(), kk + k2.long()),
        (x0 - i2 + 2 * G3, y0 - j2 + 2 * G3, z0 - k2 + 2 * G3),
        0.6,
    )
    n = n + _corner(perm, (ii + 1, jj + 1, kk + 1), (x0 - 1 + 3 * G3, y0 - 1 + 3 * G3, z0 - 1 + 3 * G3), 0.6)
    return 32.0 * n


def _check_params(octaves: int, persistence: float, frequency: float, dims: int) -> None:
    if not isinstance(octaves, int) or octaves < 1:
        raise ValueError(f"octaves: expected an int >= 1, got {octaves!r}")
    if not 0.0 < persistence <= 1.0:
        raise ValueError(f"persistence: expected a value in (0, 1], got {persistence}")
    if not frequency > 0:
        raise ValueError(f"frequency: expected a value > 0 (pixels per lattice cell), got {frequency}")
    if dims not in (2, 3):
        raise ValueError(f"dims: expected 2 or 3, got {dims}")


def octave_noise(
    n: int,
    size: tuple[int, int],
    *,
    depth: Tensor | None = None,
    octaves: int = 6,
    persistence: float = 0.8,
    frequency: float = 8.0,
    dims: int = 3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """n raw multi-octave simplex fields (n, H, W) (AnoDDPM: sum_o persistence^o noise(p / f_o), f_o = f / 2^o).

    depth: (n,) the third coordinate of 3-D noise (AnoDDPM passes the diffusion step); default 0. Each field has
    its own permutation table drawn from `generator` (torch's global RNG when None).
    """
    _check_params(octaves, persistence, frequency, dims)
    h, w = int(size[0]), int(size[1])
    perm = permutation_tables(n, generator)
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    rows, cols = rows.reshape(1, -1), cols.reshape(1, -1)  # (1, H*W)
    if depth is None:
        depth = torch.zeros(n, dtype=torch.float64)
    depth = torch.as_tensor(depth, dtype=torch.float64).reshape(-1)
    if depth.shape[0] != n:
        raise ValueError(f"depth: expected {n} values (one per field), got shape {tuple(depth.shape)}")
    out = torch.zeros(n, h * w, dtype=torch.float64)
    freq, amp = float(frequency), 1.0
    for _ in range(octaves):
        xs, ys = (cols / freq).expand(n, -1), (rows / freq).expand(n, -1)
        if dims == 3:
            out += amp * simplex3(xs, ys, (depth[:, None] / freq).expand(n, -1), perm)
        else:
            out += amp * simplex2(xs, ys, perm)
        freq, amp = freq / 2.0, amp * persistence
    return out.reshape(n, h, w)


def simplex_like(
    x: Tensor,
    t_index: Tensor | None = None,
    *,
    octaves: int = 6,
    persistence: float = 0.8,
    frequency: float = 8.0,
    dims: int = 3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Standardised simplex noise shaped like x (B, C, H, W): one field per (b, c), zero mean, unit variance.

    t_index: (B,) diffusion steps used as the depth of 3-D noise (AnoDDPM); default 0.
    """
    if x.ndim != 4:
        raise ValueError(f"x: expected shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    depth = None
    if t_index is not None:
        t_index = torch.as_tensor(t_index).reshape(-1).detach().cpu()
        if t_index.shape[0] != b:
            raise ValueError(f"t_index: expected {b} steps (one per sample), got shape {tuple(t_index.shape)}")
        depth = t_index.double().repeat_interleave(c)
    fields = octave_noise(
        b * c,
        (h, w),
        depth=depth,
        octaves=octaves,
        persistence=persistence,
        frequency=frequency,
        dims=dims,
        generator=generator,
    )  # (B*C, H, W)
    flat = fields.reshape(b * c, -1)
    flat = (flat - flat.mean(dim=1, keepdim=True)) / flat.std(dim=1, keepdim=True).clamp(min=1e-12)
    return flat.reshape(b, c, h, w).to(device=x.device, dtype=x.dtype)
