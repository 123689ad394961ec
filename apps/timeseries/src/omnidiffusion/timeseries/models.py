"""The CSDI denoising network (Tashiro et al. 2021, sec. 4 and appendix E.1): it knows nothing of noise schedules.

A sample is a (K features, L time points) grid. Every residual layer mixes the step embedding in, attends over
time (one sequence per feature), then over features (one sequence per time point), adds the side information
(time-stamp embedding, learned feature embedding, conditioning mask) and applies a gated activation; the
skip outputs are summed into a zero-initialised 1x1 head that predicts the noise of every entry.

Input channels (our variant, see task.py): the noisy residual on the hidden entries, the linear interpolation
of the observed values (centred per feature), and the conditioning mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from omnidiffusion.core.io import ConfigurableModule
from omnidiffusion.core.nn import sinusoidal_embedding


def _conv1x1(c_in: int, c_out: int) -> nn.Conv1d:
    conv = nn.Conv1d(c_in, c_out, 1)
    nn.init.kaiming_normal_(conv.weight)
    return conv


class _StepEmbedding(nn.Module):
    """Diffusion-step embedding: sinusoid of the step index, then Linear-SiLU-Linear-SiLU (DiffWave, CSDI)."""

    def __init__(self, n_steps: int, dim: int) -> None:
        super().__init__()
        self.n_steps, self.dim = n_steps, dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, t: Tensor) -> Tensor:  # (B,) in [0, 1] -> (B, dim)
        # Table step n sits at t = (n + 1) / T, so t * T - 1 is CSDI's integer step on the table points.
        index = t.float() * self.n_steps - 1.0
        emb = sinusoidal_embedding(index, self.dim, scale=1.0)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


def _encoder(channels: int, heads: int, ffn: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model=channels, nhead=heads, dim_feedforward=ffn, activation="gelu", batch_first=True, dropout=0.0
    )
    return nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)


class _ResidualLayer(nn.Module):
    """One CSDI residual layer: step embedding, time and feature transformers, side info, gated activation."""

    def __init__(self, channels: int, side_dim: int, step_dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.step_proj = nn.Linear(step_dim, channels)
        self.time_layer = _encoder(channels, heads, ffn)
        self.feature_layer = _encoder(channels, heads, ffn)
        self.mid = _conv1x1(channels, 2 * channels)
        self.side = _conv1x1(side_dim, 2 * channels)
        self.out = _conv1x1(channels, 2 * channels)

    def forward(self, x: Tensor, side: Tensor, step: Tensor) -> tuple[Tensor, Tensor]:
        B, C, K, L = x.shape
        y = x + self.step_proj(step)[:, :, None, None]  # (B, C, K, L)
        if L > 1:  # attention over time, one sequence per (sample, feature)
            seq = y.permute(0, 2, 3, 1).reshape(B * K, L, C)
            y = self.time_layer(seq).reshape(B, K, L, C).permute(0, 3, 1, 2)
        if K > 1:  # attention over features, one sequence per (sample, time point)
            seq = y.permute(0, 3, 2, 1).reshape(B * L, K, C)
            y = self.feature_layer(seq).reshape(B, L, K, C).permute(0, 3, 2, 1)
        y = self.mid(y.reshape(B, C, K * L)) + self.side(side.reshape(B, side.shape[1], K * L))  # (B, 2C, KL)
        gate, filt = y.chunk(2, dim=1)
        y = self.out(torch.sigmoid(gate) * torch.tanh(filt))  # (B, 2C, KL)
        residual, skip = y.chunk(2, dim=1)
        return (x + residual.reshape(B, C, K, L)) / math.sqrt(2.0), skip.reshape(B, C, K, L)


class CSDINet(ConfigurableModule):
    """CSDI eps-network `net(x_t, t, cond_mask=, interp=, timepoints=None) -> eps_hat`, all (B, K, L).

    Args:
        n_features: K, the size of the learned feature embedding table.
        channels, layers, heads, ffn: trunk width, residual layers, attention heads, feed-forward width
            (paper: 64, 4, 8, 64).
        time_dim, feature_dim, step_dim: side-information and step-embedding sizes (paper: 128, 16, 128).
        n_steps: T of the discrete schedule (the step embedding uses the step index t * T - 1).
    """

    def __init__(
        self,
        n_features: int,
        channels: int = 64,
        layers: int = 4,
        heads: int = 8,
        ffn: int = 64,
        time_dim: int = 128,
        feature_dim: int = 16,
        step_dim: int = 128,
        n_steps: int = 50,
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_features", n_features),
            ("channels", channels),
            ("layers", layers),
            ("heads", heads),
            ("n_steps", n_steps),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"CSDINet.{name}: expected an int >= 1, got {value!r}")
        if channels % heads:
            raise ValueError(f"CSDINet: channels ({channels}) must be divisible by heads ({heads})")
        self.n_features, self.time_dim = n_features, time_dim
        self.step_embedding = _StepEmbedding(n_steps, step_dim)
        self.feature_embedding = nn.Embedding(n_features, feature_dim)
        side_dim = time_dim + feature_dim + 1
        self.input = _conv1x1(3, channels)
        self.layers = nn.ModuleList(_ResidualLayer(channels, side_dim, step_dim, heads, ffn) for _ in range(layers))
        self.head = nn.Sequential(_conv1x1(channels, channels), nn.ReLU(), nn.Conv1d(channels, 1, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def side_info(self, cond_mask: Tensor, timepoints: Tensor) -> Tensor:
        """Side information (B, time_dim + feature_dim + 1, K, L): time-stamp and feature embeddings, mask."""
        B, K, L = cond_mask.shape
        time = sinusoidal_embedding(timepoints.reshape(-1).float(), self.time_dim, scale=1.0)
        time = time.reshape(B, L, self.time_dim).permute(0, 2, 1)[:, :, None, :].expand(-1, -1, K, -1)
        feat = self.feature_embedding.weight.T[None, :, :, None].expand(B, -1, -1, L)  # (B, F, K, L)
        dtype = self.feature_embedding.weight.dtype
        return torch.cat([time.to(dtype), feat, cond_mask[:, None].to(dtype)], dim=1)

    def forward(
        self, x_t: Tensor, t: Tensor, *, cond_mask: Tensor, interp: Tensor, timepoints: Tensor | None = None
    ) -> Tensor:
        B, K, L = x_t.shape
        if K != self.n_features:
            raise ValueError(f"x_t: expected {self.n_features} features (dim 1), got shape {tuple(x_t.shape)}")
        if timepoints is None:
            timepoints = torch.arange(L, device=x_t.device, dtype=torch.float32).expand(B, L)
        m = cond_mask.to(x_t.dtype)
        # CSDI feeds the noisy values only where they are targets; conditioning entries come in as data.
        h = torch.stack([(1.0 - m) * x_t, interp.to(x_t.dtype), m], dim=1)  # (B, 3, K, L)
        h = torch.relu(self.input(h.reshape(B, 3, K * L))).reshape(B, -1, K, L)  # (B, C, K, L)
        side = self.side_info(cond_mask, timepoints)
        step = self.step_embedding(t)
        skips = 0.0
        for layer in self.layers:
            h, skip = layer(h, side, step)
            skips = skips + skip
        out = self.head((skips / math.sqrt(len(self.layers))).reshape(B, -1, K * L))  # (B, 1, KL)
        return out.reshape(B, K, L)
