"""Degrade held-out images, restore them with one solver and the task's classical baseline, score both.

Images are pixel range [0, 1] (N, C, H, W); the solvers work in the model range [-1, 1], where a measurement is
y_m = 2 y - A 1 and the noise std doubles (A is linear). Metrics at data range 1: PSNR and SSIM (metrics.py),
consistency = RMS of A x - y over the measurement (pixel range; for inpainting over the known pixels), seconds
per image. Baselines: bicubic upsampling (sr4), scikit-image biharmonic inpainting, Wiener deconvolution (deblur,
noise-to-signal ratio `wiener_nsr`), grey copy (colorize). With `samples` = k > 1 the solver draws k restorations
per image and is scored on its first draw and on the mean of the k draws (keys with the suffix `_mean{k}`), as
the SR and inpainting evaluations do: the mean estimates the posterior mean, which is what PSNR rewards.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from omnidiffusion.core.checks import positive_int, real_number

from ..baselines import biharmonic_fill, interpolate_sr
from ..imaging import check_images
from ..metrics import mean_db, psnr, ssim
from .operators import Downsample, GaussianBlur, Grey, Inpaint, LinearOperator, consistency, measure, pixel_offset

BASELINES = {"sr4": "bicubic", "sr4-noisy": "bicubic", "inpaint": "biharmonic", "deblur": "wiener",
             "colorize": "grey-copy"}


def wiener_deconvolve(y: Tensor, op: GaussianBlur, nsr: float = 1e-3) -> Tensor:
    """Wiener filter X = conj(K) Y / (|K|^2 + nsr) in the 2-D DFT (circular blur), pixel range, clamped."""
    Y = torch.fft.fft2(y.to(torch.float64))
    k = op.k.to(y.device)
    return torch.fft.ifft2(Y * k / (k**2 + nsr)).real.to(y.dtype).clamp(0.0, 1.0)


def baseline(task: str, op: LinearOperator, y: Tensor, *, wiener_nsr: float = 1e-3) -> Tensor:
    """The classical restoration of a pixel-range measurement y (no learning): see the module docstring."""
    if isinstance(op, Downsample):
        return interpolate_sr(y, op.factor, "bicubic")
    if isinstance(op, Inpaint):
        mask = op.mask.expand(y.shape[0], 1, *y.shape[-2:]) if op.mask.shape[0] == 1 else op.mask
        return biharmonic_fill(y.clamp(0.0, 1.0), mask)
    if isinstance(op, GaussianBlur):
        return wiener_deconvolve(y, op, wiener_nsr)
    if isinstance(op, Grey):
        return y.clamp(0.0, 1.0).expand(-1, op.w.numel(), -1, -1).contiguous()
    raise ValueError(f"op: no classical baseline for {type(op).__name__} (task {task!r})")


def score(x: Tensor, truth: Tensor, op: LinearOperator, y: Tensor) -> dict[str, float]:
    """PSNR (dB, per image then averaged), SSIM and consistency RMS ||A x - y|| of pixel-range restorations."""
    return {
        "psnr": mean_db(psnr(x, truth)),
        "ssim": float(ssim(x, truth).mean()),
        "consistency": float(consistency(op, x, y).mean()),
    }


def score_draws(draws: Tensor, truth: Tensor, op: LinearOperator, y: Tensor) -> dict[str, float]:
    """`score` of the first of k draws (k, N, C, H, W), and for k > 1 of their mean (keys suffixed `_mean{k}`)."""
    k = draws.shape[0]
    out = score(draws[0], truth, op, y)
    if k > 1:
        out.update({f"{name}_mean{k}": v for name, v in score(draws.mean(0), truth, op, y).items()})
    return out


def degrade(images: Tensor, op: LinearOperator, sigma_y: float = 0.0, seed: int = 0) -> Tensor:
    """Pixel-range measurements y = A x + sigma_y n of pixel-range images (seeded noise)."""
    return measure(op, images, sigma_y, torch.Generator().manual_seed(seed + 12345))


def evaluate_inverse(
    model,
    images: Tensor,
    op: LinearOperator,
    *,
    task: str = "inverse",
    solver: str = "ddnm",
    steps: int = 50,
    sigma_y: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
    samples: int = 1,
    with_baseline: bool = True,
    wiener_nsr: float = 1e-3,
    y: Tensor | None = None,
    **options,
) -> tuple[dict, Tensor]:
    """Restore `images` (N, C, H, W in [0, 1]) from their measurements with `solver` on the prior `model`.

    Returns ({"model": metrics + seconds_per_image, "baseline": {name: metrics}, "protocol": {...}}, the restored
    draws (samples, N, C, H, W) in [0, 1]). seconds_per_image counts one draw.
    `y` (pixel range) replaces the seeded degradation when given (the same measurements for several solvers).
    """
    from . import as_denoiser, restore

    check_images(images, "images", low=0.0, high=1.0)
    steps, batch_size = positive_int(steps, "steps"), positive_int(batch_size, "batch_size")
    samples = positive_int(samples, "samples")
    sigma_y = real_number(sigma_y, "sigma_y", low=0.0)
    den = as_denoiser(model, "model")
    y = degrade(images, op, sigma_y, seed) if y is None else y
    offset = pixel_offset(op, tuple(images.shape[1:]))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    draws = []
    for _ in range(samples):
        outs = []
        for lo in range(0, images.shape[0], batch_size):
            y_m = 2.0 * y[lo : lo + batch_size] - offset
            x = restore(den, y_m, op, solver, steps, gen, sigma_y=2.0 * sigma_y, **options)
            outs.append((x.detach().cpu().float().clamp(-1.0, 1.0) + 1.0) / 2.0)
        draws.append(torch.cat(outs))
    elapsed = time.perf_counter() - t0
    restored = torch.stack(draws)
    result = {"model": {**score_draws(restored, images, op, y),
                        "seconds_per_image": elapsed / (images.shape[0] * samples)}}
    if with_baseline:
        name = BASELINES.get(task, "baseline")
        t1 = time.perf_counter()
        base = baseline(task, op, y, wiener_nsr=wiener_nsr)
        result["baseline"] = {name: {**score(base, images, op, y),
                                     "seconds_per_image": (time.perf_counter() - t1) / images.shape[0]}}
    result["protocol"] = {
        "images": list(images.shape),
        "operator": op.name,
        "solver": solver,
        "steps": steps,
        "sigma_y": sigma_y,
        "options": {k: v for k, v in options.items() if isinstance(v, (int, float, str, bool))},
        "seed": seed,
        "samples": samples,
        "data_range": 1.0,
        "consistency": "per-image RMS of A x - y over the measurement (inpainting: the known pixels), pixel range",
    }
    return result, restored


__all__ = ["BASELINES", "baseline", "degrade", "evaluate_inverse", "score", "score_draws", "wiener_deconvolve"]
