"""Metrics against scikit-image and hand-worked cases; baselines against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import inpaint_biharmonic

from omnidiffusion.vision.baselines import biharmonic_fill, interpolate_sr, mean_fill
from omnidiffusion.vision.imaging import downsample, upsample
from omnidiffusion.vision.masks import box_mask
from omnidiffusion.vision.metrics import consistency_mse, hole_mse, hole_psnr, known_max_error, psnr, ssim


def _pair(c: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, c, size, size, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("c,size", [(1, 24), (3, 32), (1, 16)])
def test_psnr_ssim_match_scikit_image(c, size):
    x, y = _pair(c, size)
    ours_p, ours_s = psnr(y, x), ssim(y, x)
    for i in range(3):
        a, b = x[i].numpy(), y[i].numpy()
        ref_p = peak_signal_noise_ratio(a, b, data_range=1.0)
        win = 11 if size >= 11 else size - 1 + size % 2
        ref_s = structural_similarity(
            a,
            b,
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            win_size=win,
        )
        assert ours_p[i].item() == pytest.approx(ref_p, abs=1e-9)
        assert ours_s[i].item() == pytest.approx(ref_s, abs=1e-9)


def test_psnr_hand_case_and_identity():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    y = x + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(y, x).item() == pytest.approx(20.0)
    assert ssim(x + 0.3, x + 0.3).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, torch.zeros(1, 1, 4, 5))


def test_consistency_and_hole_metrics_hand_cases():
    hr = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    lr = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    # a constant image downsamples to the same constant: consistency 0, and 0.01 after a +0.1 shift
    assert consistency_mse(hr, lr, 4).item() == pytest.approx(0.0, abs=1e-12)
    assert consistency_mse(hr + 0.1, lr, 4).item() == pytest.approx(0.01)
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[:, :2] = False  # 16 hole pixels
    x = hr.clone()
    x[..., :, :2] += 0.2  # error 0.2 in the hole only
    x[..., 0, 7] += 0.0
    assert hole_mse(x, hr, mask).item() == pytest.approx(0.04)
    assert hole_psnr(x, hr, mask).item() == pytest.approx(10 * math.log10(1 / 0.04))
    assert known_max_error(x, hr, mask) == 0.0
    x[..., 3, 5] += 0.25
    assert known_max_error(x, hr, mask) == pytest.approx(0.25)


def test_downsample_upsample_conventions():
    x = torch.rand(2, 3, 24, 24)
    lr = downsample(x, 4)
    assert lr.shape == (2, 3, 6, 6)
    # anti-aliased bicubic of a constant image is that constant; upsampling keeps constants too
    c = torch.full((1, 1, 24, 24), 0.3)
    assert torch.allclose(downsample(c, 4), torch.full((1, 1, 6, 6), 0.3), atol=1e-6)
    assert torch.allclose(upsample(torch.full((1, 1, 6, 6), 0.3), 4, "bicubic"), c, atol=1e-6)
    # nearest upsampling replicates each pixel in a scale x scale block
    up = interpolate_sr(lr.clamp(0, 1), 4, "nearest")
    assert torch.equal(up[..., ::4, ::4], lr.clamp(0, 1))
    with pytest.raises(ValueError, match="not divisible by the scale factor 4"):
        downsample(torch.rand(1, 1, 10, 10), 4)


def test_inpainting_baselines():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64)
    mask = box_mask((16, 16), 0.25)
    filled = mean_fill(img, mask)
    for i in range(2):
        known_mean = img[i, 0][mask].mean()
        assert torch.allclose(filled[i, 0][~mask], known_mean.expand(int((~mask).sum())))
    assert torch.equal(filled[:, :, mask], img[:, :, mask])
    bih = biharmonic_fill(img, mask)
    ref = inpaint_biharmonic(img[1, 0].numpy(), (~mask).numpy())
    assert np.allclose(bih[1, 0].numpy(), np.clip(ref, 0, 1))
    assert torch.equal(bih[:, :, mask], img[:, :, mask])
