"""SR3 (Saharia et al. 2021): continuous noise-level training and iterative-refinement sampling.

Training (SR3 sec. 2.4; WaveGrad's continuous noise level, Chen et al. 2021): draw a step n uniformly from the
T steps, then gamma = sqrt(alpha_bar) uniformly between the two adjacent levels sqrt(alpha_bar_n) and
sqrt(alpha_bar_{n-1}) (sqrt(alpha_bar_0) = 1), set y_gamma = gamma y + sqrt(1 - gamma^2) eps and regress eps with
an L1 or L2 norm. Because the network sees gamma (not n), any grid of the schedule can be used at inference.

In core's coordinates gamma is alpha(t); `sample_noise_level` also returns the continuous time t with
alpha(t) = gamma (DiscreteVP's log alpha is linear in t between table points), so the network is called through the
core contract net(x_t, t, lr_up=...). Sampling is core's `sample`: the paper's ancestral chain ("ddpm", posterior
variance, x0_hat clipped to [-1, 1]) over all T steps or a trailing sub-grid, or "dpm++2m" in few steps.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor, nn

from omnidiffusion.core import DiscreteVP, sample
from omnidiffusion.core.checks import positive_int

from .data import random_crop_flip
from .imaging import check_images, downsample, note, upsample
from .tiling import TiledNetwork, tile_count


def sample_noise_level(
    schedule: DiscreteVP, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw n continuous noise levels: (gamma, t, step), each (n,) float64 / int64.

    step ~ U{0..T-1} (0-based table step), gamma ~ U(sqrt(abar_step), sqrt(abar_{step-1})) with sqrt(abar_{-1}) = 1
    (SR3 sec. 2.4), and t the continuous time with schedule.alpha(t) = gamma.
    """
    if not isinstance(schedule, DiscreteVP):
        raise ValueError(f"schedule: expected a DiscreteVP, got {type(schedule).__name__}")
    levels = torch.from_numpy(np.sqrt(np.concatenate([[1.0], schedule.alphas_cumprod])))  # (T+1,), decreasing
    step = torch.randint(0, schedule.T, (n,), generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    hi, lo = levels[step], levels[step + 1]
    gamma = (lo + u * (hi - lo)).clamp(max=1.0 - 1e-12)
    log_snr = torch.log(gamma) - 0.5 * torch.log1p(-(gamma**2))
    t = schedule.t_from_log_snr(log_snr).clamp(0.0, 1.0)
    return gamma.to(device), t.to(device), step.to(device)


def make_lr(hr: Tensor, scale: int) -> Tensor:
    """The LR input of an HR batch in [-1, 1]: anti-aliased bicubic downsampling, clamped to [-1, 1]."""
    return downsample(hr, scale).clamp(-1.0, 1.0)


def lr_condition(hr: Tensor, scale: int) -> Tensor:
    """What the networks see of an HR batch (B, C, H, W): its LR version bicubic-upsampled back to (H, W)."""
    return upsample(make_lr(hr, scale), scale, "bicubic")


def sr3_loss(model: nn.Module, hr: Tensor, schedule: DiscreteVP, scale: int, norm: str = "l1") -> Tensor:
    """SR3 training loss on an HR batch (B, C, H, W) in [-1, 1]: mean |eps_hat - eps|^p, p = 1 ("l1") or 2 ("l2")."""
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm: expected 'l1' or 'l2', got {norm!r}")
    lr_up = lr_condition(hr, scale)  # (B, C, H, W)
    gamma, t, _ = sample_noise_level(schedule, hr.shape[0], device=hr.device)
    g = gamma.to(hr.dtype)[:, None, None, None]
    eps = torch.randn_like(hr)
    x_t = g * hr + torch.sqrt(1.0 - g**2) * eps
    err = model(x_t, t.to(hr.dtype), lr_up=lr_up) - eps
    return err.abs().mean() if norm == "l1" else err.pow(2).mean()


class SR3Loss:
    """loss_fn(model, batch) for core `fit`: random crop + flip of the HR batch, then `sr3_loss`."""

    def __init__(self, schedule: DiscreteVP, size: int, scale: int, norm: str = "l1", hflip: bool = True) -> None:
        self.schedule, self.size, self.scale, self.norm, self.hflip = schedule, size, scale, norm, hflip

    def __call__(self, model: nn.Module, batch) -> Tensor:
        hr = batch[0] if isinstance(batch, list | tuple) else batch
        return sr3_loss(model, random_crop_flip(hr, self.size, self.hflip), self.schedule, self.scale, self.norm)


class SR3Pairs:
    """batch_fn of consistency distillation (training.distil_sr3): random crop + flip of the HR batch ->
    (HR, {"lr_up": ...}), the pairs `SR3Loss` trains on."""

    def __init__(self, size: int, scale: int, hflip: bool = True) -> None:
        self.size, self.scale, self.hflip = size, scale, hflip

    def __call__(self, batch) -> tuple[Tensor, dict]:
        hr = batch[0] if isinstance(batch, list | tuple) else batch
        hr = random_crop_flip(hr, self.size, self.hflip)
        return hr, {"lr_up": lr_condition(hr, self.scale)}


class RegressionLoss:
    """loss_fn(model, batch): L2 between RegressionSR(upsample(LR)) and the HR crop (SR3's regression baseline)."""

    def __init__(self, size: int, scale: int, hflip: bool = True) -> None:
        self.size, self.scale, self.hflip = size, scale, hflip

    def __call__(self, model: nn.Module, batch) -> Tensor:
        hr = batch[0] if isinstance(batch, list | tuple) else batch
        hr = random_crop_flip(hr, self.size, self.hflip)
        lr_up = lr_condition(hr, self.scale)
        return (model(lr_up) - hr).pow(2).mean()


MAX_ATTENTION_TOKENS = 4096  # feature-map pixels one self-attention may see untiled: a 64 MiB map (float32)


def network_factor(model: nn.Module) -> int:
    """How many times the UNet halves its input: H and W of a network call must be multiples of this."""
    return 2 ** (model.net.num_levels - 1)


def attention_tokens(model: nn.Module, height: int, width: int) -> int:
    """Pixels of the largest feature map a self-attention of the UNet sees for an (height, width) input."""
    cfg = model.net.config
    levels = [lv for lv in range(model.net.num_levels) if cfg["resolution"] // 2**lv in cfg["attention_resolutions"]]
    shallowest = min([*levels, model.net.num_levels - 1])  # the middle block always attends
    return (height // 2**shallowest) * (width // 2**shallowest)


def check_lr_size(model: nn.Module, height: int, width: int, name: str = "lr") -> None:
    """Refuse an LR image too small for the network (output side < its factor) or a 1-pixel side."""
    factor, scale = network_factor(model), model.scale
    least = max(2, -(-factor // scale))
    if height < least or width < least:
        raise ValueError(
            f"{name}: expected a low-resolution image of at least {least}x{least} pixels (the {scale}x output must "
            f"be at least {factor} px, the network's downsampling factor), got {height}x{width}"
        )


def choose_tile(
    model: nn.Module, height: int, width: int, tile: int | str = "auto", name: str = "tile", image: str = "lr"
) -> int:
    """The tile side for an (height, width) output: 0 = whole image. `tile`: "auto" | 0 (off) | a side in pixels.

    "auto" tiles (announced on stderr) when the whole image would give a self-attention over more than
    MAX_ATTENTION_TOKENS pixels, with tiles of that size; 0 refuses, up front, an image whose attention map would
    not fit in the free memory, and needs sides divisible by the network factor (as any untiled call).
    """
    factor = network_factor(model)
    if tile != "auto" and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0 or tile % factor):
        raise ValueError(
            f"{name}: expected 'auto', 0 (off) or a tile side in pixels that is a positive multiple of {factor} "
            f"(the network's downsampling factor), got {tile!r}"
        )
    tokens = attention_tokens(model, height, width)
    if tile == "auto":
        if tokens <= MAX_ATTENTION_TOKENS:
            tile = 0
        else:
            side = int(math.isqrt(MAX_ATTENTION_TOKENS * height * width // tokens))
            tile = max(factor, side - side % factor)
            n = tile_count(height, width, tile, default_overlap(tile, factor), factor)
            note(
                f"a {height}x{width} output would need a self-attention over {tokens} pixels; sampling in {n} "
                f"overlapping {tile}x{tile} tiles ({name} = 0, sampler.tile on the command line, turns tiling off; "
                "a number sets the side)"
            )
    if tile == 0 or tile >= max(height, width):
        if height % factor or width % factor:
            raise ValueError(
                f"{image}: an untiled {height}x{width} output needs sides divisible by {factor} (the network's "
                f"downsampling factor); use an LR image whose {model.scale}x size is, or set {name} to a multiple "
                f"of {factor} smaller than the output"
            )
        need = 4 * tokens**2 * model.net.config["num_heads"]
        free = _free_bytes(next(model.parameters()).device)
        if tile == 0 and free is not None and need > free:
            raise ValueError(
                f"{name}: sampling a {height}x{width} output untiled needs a {need / 2**30:.1f} GiB attention map, "
                f"more than the {free / 2**30:.1f} GiB free; set {name} to 'auto' or a side in pixels"
            )
        return 0
    return tile


def default_overlap(side: int, factor: int) -> int:
    """The overlap of neighbouring tiles: a quarter of the side, rounded down to the network factor."""
    return side // 4 - (side // 4) % factor


def _free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@torch.no_grad()
def sr3_upscale(
    model: nn.Module,
    lr: Tensor,
    *,
    method: str = "ddpm",
    steps: int | None = None,
    grid: str = "trailing",
    samples: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    progress: bool = False,
    tile: int | str = "auto",
) -> Tensor:
    """Super-resolve LR images (B, C, h, w) in [-1, 1] -> `samples` draws (samples, B, C, h*scale, w*scale).

    method "ddpm" is SR3's ancestral chain (steps = None: all T steps of the training schedule); "dpm++2m" etc.
    use core's solvers. Each draw starts from its own N(0, I); x0_hat is clipped to [-1, 1] at every step.
    `tile` ("auto" | 0 | side in HR pixels, see `choose_tile`): large outputs run the network on overlapping tiles
    at every step (tiling.py), with a quarter of the tile as overlap.
    """
    check_images(lr, "lr", channels=model.channels)
    samples = positive_int(samples, "samples")
    batch_size = positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    scale, T = model.scale, model.schedule.T
    steps = T if steps is None else positive_int(steps, "steps")
    check_lr_size(model, lr.shape[-2], lr.shape[-1], "lr")
    side = choose_tile(model, lr.shape[-2] * scale, lr.shape[-1] * scale, tile)
    if side:
        factor = network_factor(model)
        per_call = max(1, batch_size // lr.shape[0])  # tiles per network call
        net = TiledNetwork(model, side, default_overlap(side, factor), factor, batch_size=per_call)
        den = model.denoiser(net=net)
    else:
        den = model.denoiser()
    outs = []
    for _ in range(samples):
        chunks = []
        for lo in range(0, lr.shape[0], batch_size):
            lr_up = upsample(lr[lo : lo + batch_size], scale, "bicubic").to(device)
            x_T = torch.randn(lr_up.shape, generator=generator).to(device)
            y = sample(den, x_T, method, steps, grid, generator=generator, progress=progress, lr_up=lr_up)
            chunks.append(y.clamp(-1.0, 1.0).cpu())
        outs.append(torch.cat(chunks))
    return torch.stack(outs)


@torch.no_grad()
def regression_upscale(model: nn.Module, lr: Tensor, batch_size: int = 256) -> Tensor:
    """One pass of a RegressionSR: LR (B, C, h, w) in [-1, 1] -> HR estimate (B, C, H, W) clamped to [-1, 1]."""
    check_images(lr, "lr", channels=model.channels)
    device = next(model.parameters()).device
    out = [
        model(upsample(lr[i : i + batch_size], model.scale, "bicubic").to(device)).clamp(-1, 1).cpu()
        for i in range(0, lr.shape[0], batch_size)
    ]
    return torch.cat(out)

