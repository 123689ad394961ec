"""Side-by-side evaluation: a model against its baselines on held-out images, as one JSON-ready dict.

Both return {"model": {metric: value}, "baselines": {name: {metric: value}}, "protocol": {...}} (the shape
`omnidiffusion-vision evaluate` prints). Images are pixel-range tensors (N, C, H, W) in [0, 1]; metrics use
data range 1 (see metrics.py). With `samples` = k > 1 the model is scored both on its first draw ("single
sample") and on the mean of the k draws (keys with the suffix `_mean{k}`), since averaging draws estimates the
posterior mean, which is what PSNR rewards.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.samplers import nfe

from .baselines import INPAINT_BASELINES, inpaint_baseline, interpolate_sr
from .fid import feature_statistics, gaussian_frechet_distance, inception_outputs, inception_score
from .imaging import UPSAMPLE_MODES, check_images, check_scale, to_model_range, to_pixel_range
from .inpaint import network_calls, repaint_inpaint
from .masks import make_mask
from .metrics import consistency_mse, hole_mse, hole_psnr, known_max_error, mean_db, psnr, ssim
from .sr3 import make_lr, regression_upscale, sr3_upscale


def sr_metrics(sr: Tensor, hr: Tensor, lr: Tensor, scale: int) -> dict[str, float]:
    """PSNR (dB), SSIM and consistency MSE of SR outputs vs HR / LR, all (N, C, ., .) in [0, 1]."""
    return {
        "psnr": mean_db(psnr(sr, hr)),
        "ssim": float(ssim(sr, hr).mean()),
        "consistency_mse": float(consistency_mse(sr, lr, scale).mean()),
    }


def degrade(hr: Tensor, scale: int) -> Tensor:
    """The LR images (pixel range) of HR images (pixel range): anti-aliased bicubic downsampling, clamped."""
    return to_pixel_range(make_lr(to_model_range(hr), scale))


def evaluate_sr(
    model,
    hr: Tensor,
    *,
    regression=None,
    method: str = "ddpm",
    steps: int | None = None,
    grid: str = "trailing",
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    lr: Tensor | None = None,
    tile: int | str = "auto",
) -> dict:
    """SR3 vs nearest / bilinear / bicubic (and the regression UNet when given) on HR images (N, C, H, W) in [0, 1].

    LR inputs are made by anti-aliased bicubic downsampling unless `lr` (pixel range) is given (paired data).
    `tile`: SR3's patch-wise sampling for large images (sr3.choose_tile).
    """
    check_images(hr, "hr", channels=model.channels, low=0.0, high=1.0)
    scale = model.scale
    check_scale(tuple(hr.shape[-2:]), scale, "hr")
    lr = degrade(hr, scale) if lr is None else check_images(lr, "lr", channels=model.channels, low=0.0, high=1.0)
    steps = model.schedule.T if steps is None else positive_int(steps, "steps")
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    draws = to_pixel_range(
        sr3_upscale(
            model,
            to_model_range(lr),
            method=method,
            steps=steps,
            grid=grid,
            samples=samples,
            generator=gen,
            batch_size=batch_size,
            tile=tile,
        )
    )  # (k, N, C, H, W)
    elapsed = time.perf_counter() - t0
    result_model = sr_metrics(draws[0], hr, lr, scale)
    if samples > 1:
        result_model.update({f"{k}_mean{samples}": v for k, v in sr_metrics(draws.mean(0), hr, lr, scale).items()})
    result_model["seconds_per_image"] = elapsed / (hr.shape[0] * samples)
    baselines = {mode: sr_metrics(interpolate_sr(lr, scale, mode), hr, lr, scale) for mode in UPSAMPLE_MODES}
    if regression is not None:
        reg = to_pixel_range(regression_upscale(regression, to_model_range(lr)))
        baselines["regression"] = sr_metrics(reg, hr, lr, scale)
    protocol = {
        "images": list(hr.shape),
        "scale": scale,
        "lr": "anti-aliased bicubic downsampling (torch interpolate, antialias=True), clamped",
        "sampler": method,
        "steps": steps,
        "grid": grid,
        "network_calls_per_sample": nfe(method, steps),
        "samples": samples,
        "seed": seed,
        "data_range": 1.0,
        "psnr": "per image, averaged over images",
        "consistency": "MSE(downsample(SR), LR), pixel range [0, 1]",
    }
    return {"model": result_model, "baselines": baselines, "protocol": protocol}


def evaluate_inpaint(
    model,
    images: Tensor,
    mask: str | Tensor = "box",
    *,
    steps: int = 100,
    jump_length: int = 5,
    jump_n_sample: int = 5,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    compare_no_resampling: bool = True,
) -> dict:
    """RePaint with `model` vs mean fill and biharmonic (and RePaint with r = 1) on images (N, C, H, W) in [0, 1].

    `mask`: box | half | lines | strokes | a mask image path | an (H, W) tensor (True = keep), one mask for all.
    """
    from .priors import as_image_prior

    model = as_image_prior(model)
    check_images(images, "images", channels=model.channels, low=0.0, high=1.0)
    m = make_mask(mask, tuple(images.shape[-2:]), seed=seed)

    def run(r: int) -> tuple[dict, float]:
        gen = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        draws = to_pixel_range(
            repaint_inpaint(
                model,
                to_model_range(images),
                m,
                steps=steps,
                jump_length=jump_length,
                jump_n_sample=r,
                samples=samples,
                generator=gen,
                batch_size=batch_size,
            )
        )
        elapsed = time.perf_counter() - t0
        out = _inpaint_metrics(draws[0], images, m)
        if samples > 1:
            out.update({f"{k}_mean{samples}": v for k, v in _inpaint_metrics(draws.mean(0), images, m).items()})
        out["known_max_abs_error"] = max(known_max_error(d, images, m) for d in draws)
        out["seconds_per_image"] = elapsed / (images.shape[0] * samples)
        return out, elapsed

    result_model, _ = run(jump_n_sample)
    baselines = {name: _inpaint_metrics(inpaint_baseline(name, images, m), images, m) for name in INPAINT_BASELINES}
    if compare_no_resampling and jump_n_sample > 1:
        baselines["repaint-r1"], _ = run(1)
    protocol = {
        "images": list(images.shape),
        "mask": mask if isinstance(mask, str) else "tensor",
        "hole_fraction": float((~m).double().mean()),
        "sampler": "repaint (core.repaint: ancestral steps, fixed-small variance)",
        "steps": steps,
        "jump_length": jump_length,
        "jump_n_sample": jump_n_sample,
        "network_calls_per_sample": network_calls(steps, jump_length, jump_n_sample),
        "samples": samples,
        "seed": seed,
        "data_range": 1.0,
        "hole_metrics": "over hole pixels only, per image, averaged over images",
    }
    return {"model": result_model, "baselines": baselines, "protocol": protocol}


def _inpaint_metrics(x: Tensor, ref: Tensor, mask: Tensor) -> dict[str, float]:
    return {
        "hole_psnr": mean_db(hole_psnr(x, ref, mask)),
        "hole_mse": float(hole_mse(x, ref, mask).mean()),
        "psnr": mean_db(psnr(x, ref)),
    }


def evaluate_fid(
    model,
    inception,
    reference: Tensor | tuple,
    *,
    n: int = 50_000,
    method: str = "ddpm",
    steps: int | None = None,
    grid: str = "trailing",
    seed: int = 0,
    batch_size: int = 256,
    splits: int = 10,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """FID and IS of `n` images drawn from an unconditional image model against `reference`: real images (N, C, H,
    W) in [0, 1] (their IS is reported too) or stored Inception statistics (mu, sigma). `inception`: a
    fid.FIDInception with the user's weights. DDPM's protocol is n = 50,000 against CIFAR-10's training images."""
    n, batch_size = positive_int(n, "n"), positive_int(batch_size, "batch_size")
    if n < max(2, splits):
        raise ValueError(f"n: expected at least {max(2, splits)} images (the IS splits), got {n}")
    steps = model.schedule.T if steps is None else positive_int(steps, "steps")
    result_reference: dict = {}
    if isinstance(reference, Tensor):
        check_images(reference, "reference", low=0.0, high=1.0)
        with tqdm(total=reference.shape[0], desc="inception (reference)", disable=not progress) as bar:
            feats, logits = inception_outputs(inception, reference, device=device, progress=bar.update)
        mu_ref, sigma_ref = feature_statistics(feats)
        result_reference = dict(zip(("is_mean", "is_std"), inception_score(logits, splits), strict=True))
        result_reference["images"] = int(reference.shape[0])
    else:
        mu_ref, sigma_ref = reference
    gen = torch.Generator().manual_seed(seed)
    feats, logits = [], []
    t0 = time.perf_counter()
    with tqdm(total=n, desc=f"sampling ({method}, {steps} steps)", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            k = min(batch_size, n - start)
            x = to_pixel_range(model.generate(k, method=method, steps=steps, grid=grid, generator=gen))
            f, z = inception_outputs(inception, x, device=device)
            feats.append(f)
            logits.append(z)
            bar.update(k)
    elapsed = time.perf_counter() - t0
    feats_all, logits_all = np.concatenate(feats), np.concatenate(logits)
    mu, sigma = feature_statistics(feats_all)
    is_mean, is_std = inception_score(logits_all, splits)
    result_model = {
        "fid": gaussian_frechet_distance(mu, sigma, mu_ref, sigma_ref),
        "is_mean": is_mean,
        "is_std": is_std,
        "seconds_per_image": elapsed / n,
    }
    protocol = {
        "samples": n,
        "sampler": method,
        "steps": steps,
        "grid": grid,
        "network_calls_per_sample": nfe(method, steps),
        "seed": seed,
        "features": "Inception pool3 (2048-d) of the 2015-12-05 graph, 299 px bilinear, inputs scaled to [-1, 1]",
        "is_splits": splits,
        "reference": "images" if isinstance(reference, Tensor) else "statistics",
    }
    return {"model": result_model, "reference": result_reference, "protocol": protocol}
