"""FiLM: feature-wise affine modulation of a feature map by a conditioning vector (Perez et al. 2018).

h -> h * (1 + gamma(c)) + beta(c), with (gamma, beta) = Linear(c) per channel. The "1 +" makes
gamma = beta = 0 the identity, which is what a zero-initialised projection gives at the start of training
(the ADM "scale-shift norm" of Dhariwal & Nichol 2021; WaveGrad's FiLM, Chen et al. 2021). Shape-generic:
images (B, C, H, W), audio (B, C, N), series (B, C, K, L) use channel_dim=1; token sequences (B, L, D) use
channel_dim=-1.
"""

from __future__ import annotations

from torch import Tensor, nn

from omnidiffusion.core.tensors import append_dims


def _per_channel(v: Tensor, h: Tensor, channel_dim: int) -> Tensor:
    """Reshape a (B, C) tensor so it broadcasts against h along its channel axis."""
    if channel_dim == 1:
        return append_dims(v, h.ndim)  # (B, C, 1, ..., 1)
    return v.reshape(v.shape[0], *([1] * (h.ndim - 2)), v.shape[1])  # (B, 1, ..., 1, C)


def film(h: Tensor, gamma: Tensor, beta: Tensor, *, channel_dim: int = 1) -> Tensor:
    """Apply h * (1 + gamma) + beta with per-sample, per-channel gamma and beta of shape (B, C).

    h: (B, C, ...) for channel_dim=1 or (B, ..., C) for channel_dim=-1. Perez et al. 2018
    (gamma * h + beta), with gamma re-centred at 0 so that zero parameters mean the identity.
    """
    if channel_dim not in (1, -1):
        raise ValueError(f"channel_dim: expected 1 or -1, got {channel_dim}")
    if h.ndim < 2:
        raise ValueError(f"h: expected at least 2 dims (B, C, ...), got shape {tuple(h.shape)}")
    expected = (h.shape[0], h.shape[channel_dim])
    for name, v in (("gamma", gamma), ("beta", beta)):
        if tuple(v.shape) != expected:
            raise ValueError(
                f"{name}: expected shape {expected} to match h {tuple(h.shape)}, got {tuple(v.shape)}"
            )
    return h * (1 + _per_channel(gamma, h, channel_dim)) + _per_channel(beta, h, channel_dim)


class FiLM(nn.Module):
    """Learned FiLM: project a conditioning vector (B, cond_dim) to (gamma, beta) and modulate h (B, C, ...).

    `zero_init=True` starts as the identity map (projection weights and bias zero). `channel_dim=-1`
    treats the last axis of h as the channel axis, e.g. for token embeddings (B, L, D).
    """

    def __init__(
        self, cond_dim: int, num_channels: int, *, zero_init: bool = False, channel_dim: int = 1
    ) -> None:
        super().__init__()
        if channel_dim not in (1, -1):
            raise ValueError(f"channel_dim: expected 1 or -1, got {channel_dim}")
        self.cond_dim = cond_dim
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.proj = nn.Linear(cond_dim, 2 * num_channels)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        if cond.ndim != 2 or cond.shape[1] != self.cond_dim:
            raise ValueError(f"cond: expected shape (B, {self.cond_dim}), got shape {tuple(cond.shape)}")
        if h.ndim < 2 or h.shape[self.channel_dim] != self.num_channels:
            where = "(B, C, ...)" if self.channel_dim == 1 else "(B, ..., C)"
            raise ValueError(
                f"h: expected {where} with C={self.num_channels}, got shape {tuple(h.shape)}"
            )
        if cond.shape[0] != h.shape[0]:
            raise ValueError(f"cond: expected batch size {h.shape[0]} to match h, got {cond.shape[0]}")
        gamma, beta = self.proj(cond.to(self.proj.weight.dtype)).chunk(2, dim=1)  # (B, C) each
        return film(h, gamma, beta, channel_dim=self.channel_dim)

    def extra_repr(self) -> str:
        return f"cond_dim={self.cond_dim}, num_channels={self.num_channels}, channel_dim={self.channel_dim}"
