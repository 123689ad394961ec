"""A configurable 2-D UNet for images, DDPM / ADM style (Ho et al. 2020; Dhariwal & Nichol 2021).

Encoder of `len(channel_mults)` levels, each `num_res_blocks` residual blocks (+ self-attention where the
feature-map side is in `attention_resolutions`) and a stride-2 conv down; a middle block res-attn-res; a
decoder that mirrors the encoder with one more residual block per level, each fed the matching encoder
activation by concatenation. The time embedding enters every residual block as a FiLM scale/shift after
the second GroupNorm ("scale-shift norm", Dhariwal & Nichol 2021 sec. 3). Every residual branch, attention
output and the final conv start at zero, so the network is the zero map at initialisation and each block
starts as the identity.

The network knows nothing about noise schedules: it maps (x_t, t in [0, 1]) to an output with `out_channels`
channels, to be read as eps, x0, v or a score by the core `Denoiser`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from omnidiffusion.core.nn.embeddings import GaussianFourierFeatures, SinusoidalEmbedding, TimeEmbedding
from omnidiffusion.core.nn.film import FiLM

_DEFAULT_TIME_SCALE = {"sinusoidal": 1000.0, "fourier": 16.0}


def default_unet_config() -> dict[str, Any]:
    """The default UNet for 32x32 RGB (CIFAR-10 size), 9.59M parameters; a fresh dict each call.

    DDPM's CIFAR-10 net (Ho et al. 2020, App. B: mults 1,2,2,2, 2 res blocks, attention at 16x16, dropout 0.1)
    at half the width (base 64 instead of 128). Use as `UNet(**default_unet_config())`.
    """
    return {
        "in_channels": 3,
        "out_channels": 3,
        "base_channels": 64,
        "channel_mults": [1, 2, 2, 2],
        "num_res_blocks": 2,
        "attention_resolutions": [16],
        "dropout": 0.1,
        "cond_channels": 0,
        "num_classes": None,
        "time_embedding": "sinusoidal",
        "time_embedding_scale": None,
        "resolution": 32,
        "norm_groups": 32,
        "num_heads": 1,
        "gradient_checkpointing": False,
    }


def _zero_(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, GroupNorm-FiLM(emb)-SiLU-dropout-conv(zero init), plus a (1x1 conv) skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.film = FiLM(emb_dim, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero_(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.film(self.norm2(h), emb)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, residual, zero-init output."""

    def __init__(self, channels: int, num_heads: int, groups: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        nh = self.num_heads
        qkv = self.qkv(self.norm(x)).reshape(B, 3, nh, C // nh, H * W)  # (B, 3, nh, hs, HW)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # (B, nh, HW, hs) each
        out = F.scaled_dot_product_attention(q, k, v)  # (B, nh, HW, hs)
        out = out.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj(out)


class UNetStage(nn.Module):
    """One residual block, optionally followed by self-attention; optionally gradient-checkpointed."""

    def __init__(self, res: ResBlock, attn: SelfAttention2d | None, use_checkpoint: bool) -> None:
        super().__init__()
        self.res = res
        self.attn = attn
        self.use_checkpoint = use_checkpoint

    def _run(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.res(x, emb)
        return h if self.attn is None else self.attn(h)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._run, x, emb, use_reentrant=False)
        return self._run(x, emb)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """DDPM/ADM-style 2-D UNet: (x_t (B, C, H, W), t (B,) in [0, 1]) -> (B, out_channels, H, W).

    Called as net(x_t, t, cond=..., class_labels=...), the core contract net(x_t, t, **cond).
    - `channel_mults`: width of each level in units of `base_channels`; H and W must be divisible by
      2 ** (len(channel_mults) - 1). Non-square inputs work.
    - `attention_resolutions`: feature-map sides (for an input of side `resolution`) that get
      self-attention; placement is by level, so other input sizes keep it at the same depth.
    - `cond_channels`: extra channels concatenated to x_t (SR3's upsampled low-res image, a segmentation
      image, a mask); forward then requires `cond` of shape (B, cond_channels, H, W).
    - `num_classes`: adds a learned class embedding to the time embedding. `class_labels` (B,) holds ints
      in [0, num_classes) or -1 for "no class" (zero embedding, for classifier-free guidance); None means
      -1 for every sample.
    - `time_embedding`: "sinusoidal" (of time_embedding_scale * t, default scale 1000, DDPM) or "fourier"
      (Gaussian Fourier features of t, default scale 16, score_sde).
    - `gradient_checkpointing`: recompute each block in backward to cut activation memory (training only).
    Constructor kwargs are JSON-serialisable and kept in `self.config`; `UNet(**net.config)` rebuilds it.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        channel_mults: list[int] | tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: list[int] | tuple[int, ...] = (16,),
        dropout: float = 0.1,
        cond_channels: int = 0,
        num_classes: int | None = None,
        time_embedding: str = "sinusoidal",
        time_embedding_scale: float | None = None,
        resolution: int = 32,
        norm_groups: int = 32,
        num_heads: int = 1,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        channel_mults = [int(m) for m in channel_mults]
        attention_resolutions = [int(r) for r in attention_resolutions]
        _validate_config(
            in_channels, out_channels, base_channels, channel_mults, num_res_blocks, attention_resolutions,
            dropout, cond_channels, num_classes, time_embedding, resolution, norm_groups, num_heads,
        )
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "base_channels": base_channels,
            "channel_mults": channel_mults,
            "num_res_blocks": num_res_blocks,
            "attention_resolutions": attention_resolutions,
            "dropout": float(dropout),
            "cond_channels": cond_channels,
            "num_classes": num_classes,
            "time_embedding": time_embedding,
            "time_embedding_scale": None if time_embedding_scale is None else float(time_embedding_scale),
            "resolution": resolution,
            "norm_groups": norm_groups,
            "num_heads": num_heads,
            "gradient_checkpointing": bool(gradient_checkpointing),
        }
        self.in_channels = in_channels
        self.cond_channels = cond_channels
        self.num_classes = num_classes
        self.num_levels = len(channel_mults)

        emb_dim = 4 * base_channels
        scale = _DEFAULT_TIME_SCALE[time_embedding] if time_embedding_scale is None else time_embedding_scale
        if time_embedding == "sinusoidal":
            self.time_features: nn.Module = SinusoidalEmbedding(base_channels, scale=scale)
        else:
            self.time_features = GaussianFourierFeatures(base_channels, scale=scale)
        self.time_mlp = TimeEmbedding(base_channels, emb_dim)
        self.class_embedding = nn.Embedding(num_classes, emb_dim) if num_classes is not None else None

        def stage(cin: int, cout: int, side: int) -> UNetStage:
            attn = SelfAttention2d(cout, num_heads, norm_groups) if side in attention_resolutions else None
            return UNetStage(ResBlock(cin, cout, emb_dim, dropout, norm_groups), attn, gradient_checkpointing)

        self.input_conv = nn.Conv2d(in_channels + cond_channels, base_channels, 3, padding=1)
        skip_channels = [base_channels]
        ch = base_channels
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mults):
            side = resolution // 2**level
            for _ in range(num_res_blocks):
                self.down.append(stage(ch, base_channels * mult, side))
                ch = base_channels * mult
                skip_channels.append(ch)
            if level != self.num_levels - 1:
                self.down.append(Downsample(ch))
                skip_channels.append(ch)

        self.mid_res1 = ResBlock(ch, ch, emb_dim, dropout, norm_groups)
        self.mid_attn = SelfAttention2d(ch, num_heads, norm_groups)
        self.mid_res2 = ResBlock(ch, ch, emb_dim, dropout, norm_groups)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            side = resolution // 2**level
            for _ in range(num_res_blocks + 1):
                self.up.append(stage(ch + skip_channels.pop(), base_channels * mult, side))
                ch = base_channels * mult
            if level != 0:
                self.up.append(Upsample(ch))

        self.out_norm = nn.GroupNorm(norm_groups, ch)
        self.out_conv = _zero_(nn.Conv2d(ch, out_channels, 3, padding=1))

    def forward(
        self, x_t: Tensor, t: Tensor, *, cond: Tensor | None = None, class_labels: Tensor | None = None
    ) -> Tensor:
        self._validate_inputs(x_t, t, cond, class_labels)
        dtype = self.input_conv.weight.dtype
        emb = self.time_mlp(self.time_features(t).to(dtype))  # (B, 4 * base)
        if self.class_embedding is not None and class_labels is not None:
            known = class_labels >= 0
            emb = emb + self.class_embedding(class_labels.clamp(min=0)) * known[:, None].to(dtype)
        emb = F.silu(emb)

        h = x_t if cond is None else torch.cat([x_t, cond.to(x_t.dtype)], dim=1)  # (B, C_in + C_cond, H, W)
        h = self.input_conv(h)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)
        for block in self.up:
            if isinstance(block, UNetStage):
                h = torch.cat([h, skips.pop()], dim=1)  # (B, C + C_skip, h, w)
            h = block(h, emb)
        return self.out_conv(F.silu(self.out_norm(h)))

    def _validate_inputs(
        self, x_t: Tensor, t: Tensor, cond: Tensor | None, class_labels: Tensor | None
    ) -> None:
        if x_t.ndim != 4 or x_t.shape[1] != self.in_channels:
            raise ValueError(
                f"x_t: expected shape (B, {self.in_channels}, H, W), got shape {tuple(x_t.shape)}"
            )
        B, _, H, W = x_t.shape
        factor = 2 ** (self.num_levels - 1)
        if H % factor or W % factor:
            raise ValueError(
                f"x_t: expected H and W divisible by {factor} (2 ** (len(channel_mults) - 1)), "
                f"got H={H}, W={W}"
            )
        if not isinstance(t, Tensor) or t.shape != (B,):
            got = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"t: expected a float tensor of shape ({B},) (one time per sample), got {got}")
        if not t.is_floating_point():
            raise ValueError(f"t: expected a float tensor of continuous times in [0, 1], got dtype {t.dtype}")
        if self.cond_channels:
            if cond is None:
                raise ValueError(
                    f"cond: expected a tensor of shape ({B}, {self.cond_channels}, {H}, {W}) "
                    f"(the net was built with cond_channels={self.cond_channels}), got None"
                )
            if tuple(cond.shape) != (B, self.cond_channels, H, W):
                raise ValueError(
                    f"cond: expected shape ({B}, {self.cond_channels}, {H}, {W}), "
                    f"got shape {tuple(cond.shape)}"
                )
        elif cond is not None:
            raise ValueError(f"cond: expected None (cond_channels=0), got shape {tuple(cond.shape)}")
        if class_labels is not None:
            if self.num_classes is None:
                raise ValueError("class_labels: expected None (num_classes=None), got a tensor")
            integer = not class_labels.is_floating_point() and class_labels.dtype != torch.bool
            if class_labels.shape != (B,) or not integer:
                raise ValueError(
                    f"class_labels: expected an integer tensor of shape ({B},), "
                    f"got shape {tuple(class_labels.shape)} dtype {class_labels.dtype}"
                )
            lo, hi = (int(class_labels.min()), int(class_labels.max())) if B else (0, 0)
            if lo < -1 or hi >= self.num_classes:
                raise ValueError(
                    f"class_labels: expected values in [-1, {self.num_classes - 1}] (-1 = no class), "
                    f"got values in [{lo}, {hi}]"
                )


def _validate_config(
    in_channels: int,
    out_channels: int,
    base_channels: int,
    channel_mults: list[int],
    num_res_blocks: int,
    attention_resolutions: list[int],
    dropout: float,
    cond_channels: int,
    num_classes: int | None,
    time_embedding: str,
    resolution: int,
    norm_groups: int,
    num_heads: int,
) -> None:
    for name, value, low in (
        ("in_channels", in_channels, 1),
        ("out_channels", out_channels, 1),
        ("base_channels", base_channels, 1),
        ("num_res_blocks", num_res_blocks, 1),
        ("cond_channels", cond_channels, 0),
        ("resolution", resolution, 1),
        ("norm_groups", norm_groups, 1),
        ("num_heads", num_heads, 1),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not channel_mults or any(m < 1 for m in channel_mults):
        raise ValueError(f"channel_mults: expected a non-empty list of integers >= 1, got {channel_mults}")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes: expected None or an integer >= 1, got {num_classes!r}")
    if time_embedding not in _DEFAULT_TIME_SCALE:
        raise ValueError(
            f"time_embedding: expected one of {sorted(_DEFAULT_TIME_SCALE)}, got {time_embedding!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a float in [0, 1), got {dropout}")
    if time_embedding == "fourier" and base_channels % 2:
        raise ValueError(
            f"base_channels: expected an even number for Fourier time features, got {base_channels}"
        )
    sides = [resolution // 2**level for level in range(len(channel_mults))]
    factor = 2 ** (len(channel_mults) - 1)
    if resolution % factor:
        raise ValueError(
            f"resolution: expected a multiple of {factor} for {len(channel_mults)} levels, got {resolution}"
        )
    bad = [r for r in attention_resolutions if r not in sides]
    if bad:
        raise ValueError(f"attention_resolutions: expected sides among the level sizes {sides}, got {bad}")
    for ch in sorted({base_channels * m for m in channel_mults} | {base_channels}):
        if ch % norm_groups:
            raise ValueError(f"norm_groups: expected a divisor of every level width {ch}, got {norm_groups}")
    attention_widths = [base_channels * channel_mults[-1]] + [
        base_channels * m for m, s in zip(channel_mults, sides, strict=True) if s in attention_resolutions
    ]
    if any(w % num_heads for w in attention_widths):
        raise ValueError(f"num_heads: expected a divisor of every attention width, got {num_heads}")
