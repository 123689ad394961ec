"""Networks: a UNet with cross-attention to text tokens, and the text-to-image net that owns its text encoder.

`CrossAttnUNet` is the core.nn UNet layout (ADM residual blocks with FiLM time embedding, self-attention, stride-2
down / nearest up, skip concatenation; blocks reused from core.nn) with a `CrossAttention2d` after each
self-attention: queries from the feature map, keys/values from the text tokens (LDM's spatial transformer,
Rombach et al. 2022 sec. 3.3). The pooled text feature (the [CLS] token) is added to the time embedding, as
GLIDE adds its final token embedding (Nichol et al. 2022, sec. 2.3). Like core.nn.UNet it knows nothing of
noise schedules: (x_t, t) -> an output read as eps by the core Denoiser.

`TextToImageNet` = text encoder + CrossAttnUNet; called either with token ids (training: the encoder is trained
jointly) or with precomputed `context` / `context_mask` (sampling: the text is encoded once, not per step).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnidiffusion.core.io import ConfigurableModule
from omnidiffusion.core.nn import ResBlock, SelfAttention2d, SinusoidalEmbedding, TimeEmbedding

from .text import build_encoder, hidden_size, run_encoder


def _zero_(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class CrossAttention2d(nn.Module):
    """Multi-head attention of the H*W positions of a feature map over L context tokens; residual, zero-init out.

    x (B, C, H, W), context (B, L, D), mask (B, L) with 1 = real token (padding is not attended to).
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int, groups: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads: expected a divisor of {channels}, got {num_heads}")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = _zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        B, C, H, W = x.shape
        nh, L = self.num_heads, context.shape[1]
        q = self.q(self.norm(x)).reshape(B, nh, C // nh, H * W).transpose(-1, -2)  # (B, nh, HW, hs)
        k, v = self.kv(context.to(x.dtype)).reshape(B, L, 2, nh, C // nh).permute(2, 0, 3, 1, 4)  # (B, nh, L, hs)
        attn_mask = None if mask is None else mask[:, None, None, :].bool()  # (B, 1, 1, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, nh, HW, hs)
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))


class _Block(nn.Module):
    """ResBlock, then (at attention resolutions) self-attention and cross-attention."""

    def __init__(self, cin: int, cout: int, emb_dim: int, context_dim: int, attend: bool, heads: int,
                 dropout: float, groups: int) -> None:
        super().__init__()
        self.res = ResBlock(cin, cout, emb_dim, dropout, groups)
        self.self_attn = SelfAttention2d(cout, heads, groups) if attend else None
        self.cross_attn = CrossAttention2d(cout, context_dim, heads, groups) if attend else None

    def forward(self, x: Tensor, emb: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        h = self.res(x, emb)
        if self.self_attn is not None:
            h = self.cross_attn(self.self_attn(h), context, mask)
        return h


class CrossAttnUNet(nn.Module):
    """(x_t (B, C, H, W), t (B,), context (B, L, D), context_mask (B, L)) -> (B, out_channels, H, W).

    Levels of `channel_mults` x base_channels, `num_res_blocks` per level (one more on the way up), attention
    at the feature-map sides in `attention_resolutions` (for an input of side `resolution`) and in the middle.
    Constructor kwargs are kept in `self.config`.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        base_channels: int = 64,
        channel_mults: list[int] | tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attention_resolutions: list[int] | tuple[int, ...] = (8, 4),
        context_dim: int = 64,
        num_heads: int = 4,
        dropout: float = 0.0,
        resolution: int = 8,
        norm_groups: int = 16,
    ) -> None:
        super().__init__()
        mults = [int(m) for m in channel_mults]
        attn = [int(r) for r in attention_resolutions]
        sides = [resolution // 2**i for i in range(len(mults))]
        if not mults or resolution % 2 ** (len(mults) - 1):
            raise ValueError(f"resolution: expected a multiple of {2 ** (len(mults) - 1)}, got {resolution}")
        if any(r not in sides for r in attn):
            raise ValueError(f"attention_resolutions: expected sides among {sides}, got {attn}")
        self.config: dict[str, Any] = {
            "in_channels": in_channels, "out_channels": out_channels, "base_channels": base_channels,
            "channel_mults": mults, "num_res_blocks": num_res_blocks, "attention_resolutions": attn,
            "context_dim": context_dim, "num_heads": num_heads, "dropout": float(dropout),
            "resolution": resolution, "norm_groups": norm_groups,
        }
        self.in_channels, self.context_dim, self.num_levels = in_channels, context_dim, len(mults)
        emb_dim = 4 * base_channels
        self.time_features = SinusoidalEmbedding(base_channels, scale=1000.0)
        self.time_mlp = TimeEmbedding(base_channels, emb_dim)
        self.pooled_proj = nn.Linear(context_dim, emb_dim)

        def block(cin: int, cout: int, side: int) -> _Block:
            return _Block(cin, cout, emb_dim, context_dim, side in attn, num_heads, dropout, norm_groups)

        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        skips, ch = [base_channels], base_channels
        self.down = nn.ModuleList()
        for level, m in enumerate(mults):
            for _ in range(num_res_blocks):
                self.down.append(block(ch, base_channels * m, sides[level]))
                ch = base_channels * m
                skips.append(ch)
            if level != len(mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid1 = _Block(ch, ch, emb_dim, context_dim, True, num_heads, dropout, norm_groups)
        self.mid2 = ResBlock(ch, ch, emb_dim, dropout, norm_groups)
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mults))):
            for _ in range(num_res_blocks + 1):
                self.up.append(block(ch + skips.pop(), base_channels * m, sides[level]))
                ch = base_channels * m
            if level != 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"),
                                             nn.Conv2d(ch, ch, 3, padding=1)))
        self.out_norm = nn.GroupNorm(norm_groups, ch)
        self.out_conv = _zero_(nn.Conv2d(ch, out_channels, 3, padding=1))

    def forward(self, x_t: Tensor, t: Tensor, *, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B = x_t.shape[0]
        if x_t.ndim != 4 or x_t.shape[1] != self.in_channels:
            raise ValueError(f"x_t: expected shape (B, {self.in_channels}, H, W), got {tuple(x_t.shape)}")
        if context.ndim != 3 or context.shape[0] != B or context.shape[2] != self.context_dim:
            raise ValueError(f"context: expected shape ({B}, L, {self.context_dim}), got {tuple(context.shape)}")
        if context_mask is not None and tuple(context_mask.shape) != tuple(context.shape[:2]):
            want, got = tuple(context.shape[:2]), tuple(context_mask.shape)
            raise ValueError(f"context_mask: expected shape {want}, got {got}")
        dtype = self.input_conv.weight.dtype
        context = context.to(dtype)
        emb = self.time_mlp(self.time_features(t).to(dtype)) + self.pooled_proj(context[:, 0])  # (B, 4 base)
        emb = F.silu(emb)
        h = self.input_conv(x_t.to(dtype))
        hs = [h]
        for layer in self.down:
            h = layer(h, emb, context, context_mask) if isinstance(layer, _Block) else layer(h)
            hs.append(h)
        h = self.mid2(self.mid1(h, emb, context, context_mask), emb)
        for layer in self.up:
            if isinstance(layer, _Block):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb, context, context_mask)  # (B, C + C_skip, h, w)
            else:
                h = layer(h)
        return self.out_conv(F.silu(self.out_norm(h)))


class TextToImageNet(ConfigurableModule):
    """Text encoder (transformers, from `text_config`) + CrossAttnUNet (from `unet`).

    forward(x_t, t, input_ids=..., attention_mask=...) encodes the text (training), or
    forward(x_t, t, context=..., context_mask=...) takes encoded text (sampling; see `encode_text`).
    """

    def __init__(self, unet: dict[str, Any], text_config: dict[str, Any]) -> None:
        super().__init__()
        self.text_encoder = build_encoder(text_config)
        unet = dict(unet)
        unet["context_dim"] = hidden_size(text_config)
        self.unet = CrossAttnUNet(**unet)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Token features (B, L, D) of token ids (B, L)."""
        if input_ids.ndim != 2 or tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(f"input_ids, attention_mask: expected two (B, L) tensors, got {tuple(input_ids.shape)} "
                             f"and {tuple(attention_mask.shape)}")
        device = self.unet.input_conv.weight.device
        return run_encoder(self.text_encoder, input_ids.to(device), attention_mask.to(device))

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        *,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        if (input_ids is None) == (context is None):
            raise ValueError("TextToImageNet: pass either input_ids (+ attention_mask) or context (+ context_mask)")
        if input_ids is not None:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            context, context_mask = self.encode_text(input_ids, attention_mask), attention_mask
        return self.unet(x_t, t, context=context, context_mask=context_mask)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
