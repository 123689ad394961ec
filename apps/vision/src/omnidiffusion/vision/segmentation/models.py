"""Segmentation networks on core's `nn.UNet`: SegDiff's mask denoiser and the same-size UNet baseline.

- `ImageEncoder`: SegDiff's image encoder G (Amit et al. 2021, sec. 3): a stem conv, residual-in-residual dense
  blocks (RRDB, Wang et al. 2018 "ESRGAN": five 3x3 convs with dense connections, residual scaling 0.2, and an outer
  residual over three dense blocks), and an output conv to the UNet's base width, at full resolution.
- `SegDiff`: eps_theta(x_t, t, I) = UNet(F(x_t) + G(I), t) where F is the UNet's first conv on the noisy mask x_t in
  [-1, 1] (1 channel): the image features are ADDED to the mask features after the first block (SegDiff eq. 5,
  "fusion" = "add"). "concat" instead concatenates the image to x_t at the input (MedSegDiff / Wolleb et al.), "both"
  does both. The addition is a forward hook on the UNet's input conv, so core's UNet is used unchanged.
- `SegUNet`: the baseline, the same encoder + UNet with the image (not a noisy mask) at the input, a constant time
  and a 1-channel logit output, trained with BCE + Dice. Its parameter count equals SegDiff's for 1-channel images
  with fusion "add" (`count_parameters`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnidiffusion.core import Denoiser, clip_x0
from omnidiffusion.core.nn import UNet

from ..models import PretrainedModule, check_unet_kwargs, make_schedule

SEGDIFF_SCHEDULE = {"name": "linear", "timesteps": 100, "beta_start": 1e-3, "beta_end": 0.2}  # SegDiff: T=100, linear
FUSIONS = ("add", "concat", "both")


class _DenseBlock(nn.Module):
    """Five 3x3 convs, conv k sees the input and every earlier output (growth g each); out = x + 0.2 * conv5."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels + k * growth, growth, 3, padding=1) for k in range(4))
        self.out = nn.Conv2d(channels + 4 * growth, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))  # (B, C + k g, H, W) -> (B, g, H, W)
        return x + 0.2 * self.out(torch.cat(feats, 1))


class _RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and an outer residual scaled by 0.2 (ESRGAN)."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(_DenseBlock(channels, growth) for _ in range(3)))

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.blocks(x)


class ImageEncoder(nn.Module):
    """SegDiff's G: (B, C, H, W) image in [-1, 1] -> (B, out_channels, H, W) features (stem, RRDBs, out conv)."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, blocks: int = 1, growth: int = 16):
        super().__init__()
        if blocks < 0 or width < 1 or growth < 1:
            raise ValueError(f"encoder: expected blocks >= 0, width >= 1, growth >= 1, got {blocks}, {width}, {growth}")
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.body = nn.Sequential(*(_RRDB(width, growth) for _ in range(blocks)))
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, image: Tensor) -> Tensor:
        h = self.stem(image)
        return self.out(F.leaky_relu(h + self.body(h), 0.2))


def _check_image(image: Tensor, channels: int, like: Tensor) -> None:
    if image is None or image.ndim != 4 or image.shape[1] != channels or image.shape[-2:] != like.shape[-2:]:
        got = None if image is None else tuple(image.shape)
        raise ValueError(f"image: expected shape (B, {channels}, {like.shape[-2]}, {like.shape[-1]}), got {got}")


def _with_added_features(net: UNet, feats: Tensor | None, x: Tensor, t: Tensor, cond: Tensor | None) -> Tensor:
    """net(x, t, cond) with `feats` (B, base, H, W) added to the output of its first conv (SegDiff's F + G)."""
    if feats is None:
        return net(x, t, cond=cond)
    handle = net.input_conv.register_forward_hook(lambda module, inputs, out: out + feats.to(out.dtype))
    try:
        return net(x, t, cond=cond)
    finally:
        handle.remove()


class _SelfConditioning:
    """Self-conditioning at sampling time (Chen et al. 2022, "Analog Bits"): calls the SegDiff with the x0_hat that
    the Denoiser's last call produced (recorded by `record`, an x0 hook placed after clipping)."""

    def __init__(self, model: SegDiff) -> None:
        self.model, self.prev = model, None

    def __call__(self, x_t: Tensor, t: Tensor, **cond) -> Tensor:
        prev = self.prev if self.prev is not None and self.prev.shape == x_t.shape else None
        return self.model(x_t, t, x0_prev=prev, **cond)

    def record(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        self.prev = x0.detach()
        return x0


class SegDiff(PretrainedModule):
    """Mask denoiser eps_theta(x_t, t, image): x_t (B, 1, H, W) noisy mask in [-1, 1], image (B, C, H, W) in [-1, 1].

    Args: image_size, channels of the image; `unet` = core UNet kwargs (base_channels, channel_mults, ...);
    `schedule` (default SegDiff's linear T = 100, betas 1e-3..0.2 = DDPM's rescaled by 1000 / T); `prediction`
    eps | x0 | v; `fusion` add | concat | both; `encoder_blocks` RRDBs of `encoder_growth` in the image encoder.
    `mask_head` "sigmoid" (x0-prediction only) maps the network output o to x0 = 2 sigmoid(o) - 1 = tanh(o / 2), so
    (x0 + 1) / 2 = sigmoid(o) is a foreground probability and can take a BCE term; "linear" returns o as it is.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        unet: dict | None = None,
        schedule: dict | None = None,
        prediction: str = "eps",
        fusion: str = "add",
        encoder_blocks: int = 1,
        encoder_growth: int = 16,
        self_condition: bool = False,
        mask_head: str = "linear",
    ) -> None:
        super().__init__()
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"prediction: expected 'eps', 'x0' or 'v', got {prediction!r}")
        if mask_head not in ("linear", "sigmoid"):
            raise ValueError(f"mask_head: expected 'linear' or 'sigmoid', got {mask_head!r}")
        if mask_head == "sigmoid" and prediction != "x0":
            raise ValueError(f"mask_head 'sigmoid' bounds x0_hat: it needs prediction 'x0', got {prediction!r}")
        self.mask_head = mask_head
        if fusion not in FUSIONS:
            raise ValueError(f"fusion: expected one of {FUSIONS}, got {fusion!r}")
        self.image_size, self.channels, self.prediction, self.fusion = (
            int(image_size),
            int(channels),
            prediction,
            fusion,
        )
        self.self_condition = bool(self_condition)
        self.schedule_spec = dict(SEGDIFF_SCHEDULE if schedule is None else schedule)
        self.schedule = make_schedule(self.schedule_spec)
        kwargs = check_unet_kwargs(unet)
        cond = (self.channels if fusion in ("concat", "both") else 0) + int(self.self_condition)
        self.net = UNet(in_channels=1, out_channels=1, cond_channels=cond, resolution=image_size, **kwargs)
        base = self.net.config["base_channels"]
        self.encoder = (
            ImageEncoder(channels, base, base, encoder_blocks, encoder_growth) if fusion in ("add", "both") else None
        )

    def encode(self, image: Tensor) -> Tensor | None:
        """G(image): (B, C, H, W) -> (B, base, H, W), or None for fusion "concat" (computed once per sampling run)."""
        return None if self.encoder is None else self.encoder(image)

    def forward(
        self, x_t: Tensor, t: Tensor, *, image: Tensor, features: Tensor | None = None, x0_prev: Tensor | None = None
    ) -> Tensor:
        """(B, 1, H, W) noisy mask, t (B,) in [0, 1], image (B, C, H, W) -> prediction (B, 1, H, W).

        `features` = self.encode(image) may be passed to skip re-encoding the image at every sampler step.
        `x0_prev` (B, 1, H, W): with self-conditioning, the previous estimate of the mask (None = zeros).
        """
        _check_image(image, self.channels, x_t)
        feats = features if features is not None or self.encoder is None else self.encoder(image)
        parts = [image] if self.fusion in ("concat", "both") else []
        if self.self_condition:
            parts.append(torch.zeros_like(x_t) if x0_prev is None else x0_prev.to(x_t.dtype))
        cond = torch.cat(parts, 1) if parts else None
        out = _with_added_features(self.net, feats, x_t, t, cond)
        return torch.tanh(out / 2) if self.mask_head == "sigmoid" else out

    def denoiser(self, clip: bool = True) -> Denoiser:
        """The core Denoiser (x0_hat clamped to [-1, 1]); pass image= (and features=) to the sampler as conditioning.

        With self-conditioning the denoiser is stateful: each call feeds the network the x0_hat of the call before
        (zeros on the first), so use a fresh one per sampling run.
        """
        hooks = [clip_x0()] if clip else []
        if not self.self_condition:
            return Denoiser(self, self.schedule, self.prediction, x0_hooks=hooks)
        state = _SelfConditioning(self)
        return Denoiser(state, self.schedule, self.prediction, x0_hooks=[*hooks, state.record])

    @torch.no_grad()
    def sample_masks(
        self,
        image: Tensor,
        n_samples: int = 5,
        *,
        method: str = "ddpm",
        steps: int | None = None,
        grid: str = "trailing",
        generator: torch.Generator | None = None,
        batch_size: int = 256,
    ) -> Tensor:
        """n_samples masks per image through core `sample`: image (B, C, H, W) in [-1, 1] -> (n, B, 1, H, W) in [-1, 1].

        Default: the paper's ancestral chain over all T steps; "dpm++2m" with 10-25 steps is the fast option.
        """
        from omnidiffusion.core import sample

        if n_samples < 1:
            raise ValueError(f"n_samples: expected at least 1, got {n_samples}")
        _check_image(image, self.channels, image)
        device = next(self.parameters()).device
        b, _, h, w = image.shape
        image = image.to(device)
        feats = self.encode(image)
        noise = torch.randn((n_samples * b, 1, h, w), generator=generator).to(device)  # (n B, 1, H, W)
        out = []
        for lo in range(0, n_samples * b, batch_size):
            idx = torch.arange(lo, min(lo + batch_size, n_samples * b), device=device) % b
            kwargs = {"image": image[idx]} | ({} if feats is None else {"features": feats[idx]})
            x = sample(self.denoiser(), noise[lo : lo + len(idx)], method, steps or self.schedule.T, grid,
                       generator=generator, **kwargs)  # fmt: skip
            out.append(x.clamp(-1, 1))
        return torch.cat(out).reshape(n_samples, b, 1, h, w).cpu()


class SegUNet(PretrainedModule):
    """Baseline: logits (B, 1, H, W) = UNet(image + G(image) after the first conv, t = 0), trained with BCE + Dice.

    Same constructor arguments as SegDiff where they apply, so `SegUNet(**kwargs)` is SegDiff's same-size network.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        unet: dict | None = None,
        encoder_blocks: int = 1,
        encoder_growth: int = 16,
    ) -> None:
        super().__init__()
        self.image_size, self.channels = int(image_size), int(channels)
        self.net = UNet(in_channels=channels, out_channels=1, resolution=image_size, **check_unet_kwargs(unet))
        base = self.net.config["base_channels"]
        self.encoder = ImageEncoder(channels, base, base, encoder_blocks, encoder_growth)

    def forward(self, image: Tensor) -> Tensor:
        """(B, C, H, W) image in [-1, 1] -> foreground logits (B, 1, H, W)."""
        _check_image(image, self.channels, image)
        t = torch.zeros(image.shape[0], dtype=image.dtype, device=image.device)  # constant: no noise level here
        return _with_added_features(self.net, self.encoder(image), image, t, None)

    @torch.no_grad()
    def probabilities(self, image: Tensor, batch_size: int = 256) -> Tensor:
        """sigmoid(logits): (B, C, H, W) in [-1, 1] -> foreground probabilities (B, 1, H, W) on CPU."""
        device = next(self.parameters()).device
        out = [torch.sigmoid(self(image[i : i + batch_size].to(device))) for i in range(0, image.shape[0], batch_size)]
        return torch.cat(out).cpu()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
