"""The permutation-equivariant point denoiser: per-point MLPs with pooled and attended set context.

Input per point: its coordinates and a "known" flag (1 for the clean observed points of PVD-style completion,
0 for points being denoised). Each block (pre-norm residual):

    g   = Linear([max_n h_n, mean_n h_n])                    global context (PointNet, Qi et al. 2017)   (B, D)
    l_n = sum_j softmax_j(-|x_n - x_j|^2 / 2 s^2) P h_j      local context, s = 0.1 / 0.2 / 0.4 by block (B, N, D)
    a_n = attention from h_n to m inducing summaries          induced set attention (Lee et al. 2019)    (B, N, D)
    h_n = h_n + MLP(FiLM_t(LN(h_n)) + g + l_n + a_n)              time enters by scale/shift (FiLM)          (B, N, D)

The summaries are m learned queries attending over all points (ISAB's first half), so a block costs O(N m D), not
O(N^2 D). Every operation is per point or a symmetric reduction over points, so permuting the input points permutes
the output the same way (tested exactly in float64). The time input is core's continuous t in [0, 1], embedded with
sinusoids of 1000 t (DDPM's step index scale). The output is the eps prediction per point.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnidiffusion.core.nn import TimeEmbedding, sinusoidal_embedding


class InducedAttention(nn.Module):
    """m learned queries summarise the set, then every point reads the summaries: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, inducing: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: expected a divisor of the width {dim}, got {heads}")
        self.queries = nn.Parameter(torch.randn(inducing, dim) * dim**-0.5)
        self.pool = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.read = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, h: Tensor) -> Tensor:
        q = self.queries.unsqueeze(0).expand(h.shape[0], -1, -1)  # (B, m, D)
        summary, _ = self.pool(q, h, h, need_weights=False)  # (B, m, D)
        out, _ = self.read(h, summary, summary, need_weights=False)  # (B, N, D)
        return out


def kernel_weights(x: Tensor, scales: tuple[float, ...]) -> list[Tensor]:
    """Row-normalised Gaussian kernels softmax_j(-|x_i - x_j|^2 / 2 s^2), one (B, N, N) matrix per scale."""
    d2 = torch.cdist(x, x).square()  # (B, N, N)
    return [torch.softmax(-d2 / (2 * s * s), dim=-1) for s in scales]


class KernelLocal(nn.Module):
    """Local context: the kernel-weighted mean of the neighbours' features, sum_j w_ij (P u_j), then a linear map.

    A dense, exactly permutation-equivariant stand-in for kNN aggregation (no top-k, no gathers): one (N, N) matrix
    product on features projected to D / 4 channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, max(4, dim // 4))
        self.out = nn.Linear(max(4, dim // 4), dim)

    def forward(self, u: Tensor, w: Tensor) -> Tensor:
        return self.out(w @ self.down(u))  # (B, N, N) @ (B, N, D/4) -> (B, N, D)


class PointBlock(nn.Module):
    """One residual block: FiLM(time) on the normed features, plus pooled, local and attended context, then an MLP."""

    def __init__(self, dim: int, emb_dim: int, inducing: int, heads: int, local: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.film = nn.Linear(emb_dim, 2 * dim)
        self.pool = nn.Linear(2 * dim, dim)
        self.local = KernelLocal(dim) if local else None
        self.attn = InducedAttention(dim, inducing, heads) if inducing > 0 else None
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        nn.init.zeros_(self.mlp[-1].weight)  # each block starts as the identity
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h: Tensor, emb: Tensor, w: Tensor | None) -> Tensor:
        scale, shift = self.film(emb).unsqueeze(1).chunk(2, dim=-1)  # (B, 1, D) each
        u = self.norm(h) * (1 + scale) + shift  # (B, N, D)
        g = self.pool(torch.cat([u.amax(dim=1), u.mean(dim=1)], dim=-1)).unsqueeze(1)  # (B, 1, D)
        z = u + g
        if self.local is not None and w is not None:
            z = z + self.local(u, w)
        if self.attn is not None:
            z = z + self.attn(u)
        return h + self.mlp(z)


class PointDenoiserNet(nn.Module):
    """eps_hat(x_t, t, known): (B, N, 3), (B,), (B, N) bool or None -> (B, N, 3); permutation-equivariant in N.

    width D, `depth` blocks, `inducing` summaries per block (0 = none), `heads` attention heads; `local` adds the
    kernel-weighted local context to every block and mean-shift vectors at three scales to the input features.
    """

    SCALES = (0.1, 0.2, 0.4)

    def __init__(
        self, width: int = 128, depth: int = 4, inducing: int = 16, heads: int = 4, local: bool = False
    ) -> None:
        super().__init__()
        if width < 4 or depth < 1 or inducing < 0:
            raise ValueError(f"width, depth, inducing: expected >= 4, >= 1, >= 0, got {width}, {depth}, {inducing}")
        self.width, self.local = width, bool(local)
        self.embed_in = nn.Linear(4 + (3 * len(self.SCALES) if local else 0), width)
        self.time = TimeEmbedding(width, width)
        self.blocks = nn.ModuleList(PointBlock(width, width, inducing, heads, local) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width)
        self.out = nn.Linear(width, 3)

    def forward(self, x: Tensor, t: Tensor, known: Tensor | None = None) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"x: expected point clouds of shape (B, N, 3), got {tuple(x.shape)}")
        flag = torch.zeros_like(x[..., :1]) if known is None else known.to(x.dtype).reshape(*x.shape[:2], 1)
        feats, kernels = [x, flag], []
        if self.local:
            kernels = kernel_weights(x, self.SCALES)
            feats += [w @ x - x for w in kernels]  # mean-shift vectors: towards the local centre of mass
        h = self.embed_in(torch.cat(feats, dim=-1))  # (B, N, D)
        emb = self.time(sinusoidal_embedding(t, self.width).to(x.dtype))  # (B, D)
        for i, block in enumerate(self.blocks):
            h = block(h, emb, kernels[i % len(kernels)] if kernels else None)
        return self.out(torch.nn.functional.silu(self.norm_out(h)))  # (B, N, 3)
