"""Network layout, noise levels and schedules, and sampling through core against WaveGrad's Algorithm 2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnidiffusion.audio.noise import (
    decade_betas,
    draw_noise_levels,
    fibonacci_betas,
    inference_betas,
    levels_from_betas,
    search_schedule,
    training_levels,
)
from omnidiffusion.audio.settings import AudioConfig
from omnidiffusion.audio.task import vocode_mel
from omnidiffusion.audio.wavegrad import WaveGradNet, noise_level_encoding
from omnidiffusion.core.config import load_config

TINY = dict(
    n_mels=80, factors=(4, 4, 4, 2, 2), mel_channels=16, up_channels=(16, 16, 8, 8, 8), down_channels=(4, 8, 8, 8, 16)
)


@pytest.mark.parametrize("name", ["default", "paper", "tiny"])
def test_upsampling_factors_multiply_to_the_hop(name):
    cfg = load_config(AudioConfig, name, package="omnidiffusion.audio")
    net = WaveGradNet(**cfg.model_kwargs())
    assert math.prod(cfg.model.factors) == cfg.mel.hop_length == net.hop_length
    frames = 3
    y = net(torch.randn(2, 1, frames * cfg.mel.hop_length), torch.rand(2), torch.randn(2, cfg.mel.n_mels, frames))
    assert y.shape == (2, 1, frames * cfg.mel.hop_length)
    with pytest.raises(ValueError, match="model.factors"):
        load_config(AudioConfig, name, ["model.factors=5,5,3,2,3"], package="omnidiffusion.audio").check()
    if name == "paper":
        assert cfg.model.factors == [5, 5, 3, 2, 2] and cfg.mel.n_mels == 128
        n = sum(p.numel() for p in net.parameters())
        assert 15.0e6 < n < 16.5e6  # WaveGrad Base: about 15 M (paper), 15.9 M in lmnt's implementation


def test_noise_level_encoding_closed_form():
    enc = noise_level_encoding(torch.tensor([0.0, 0.5]), 8, scale=5000.0)
    assert torch.equal(enc[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    k = torch.arange(4)
    arg = 5000.0 * 0.5 * 10.0 ** (-4.0 * k / 4)
    # float32 arguments up to 2,500 rad carry about 1e-4 rad of rounding
    torch.testing.assert_close(enc[1], torch.cat([torch.sin(arg), torch.cos(arg)]).float(), atol=1e-4, rtol=0)


def test_noise_level_draws_lie_between_adjacent_levels():
    levels = training_levels()
    assert levels.numel() == 1001 and levels[0] == 1.0
    prod = np.prod(1.0 - np.linspace(1e-6, 0.01, 1000))
    assert levels[-1].item() == pytest.approx(math.sqrt(prod), rel=1e-12)
    level, s = draw_noise_levels(20000, levels, generator=torch.Generator().manual_seed(0))
    lo, hi = levels[s].float(), levels[s - 1].float()
    assert bool(((level >= lo - 1e-7) & (level <= hi + 1e-7)).all())
    assert s.min() == 1 and s.max() == 1000
    assert level.min() < 0.1 and level.max() > 0.99


def test_schedules():
    assert fibonacci_betas(5).tolist() == pytest.approx([1e-6, 2e-6, 3e-6, 5e-6, 8e-6])
    for n in (1000, 50, 25, 6):
        assert inference_betas(n).numel() == n
    with pytest.raises(ValueError, match="iterations"):
        inference_betas(7)
    # The few-step schedule starts its chain near full noise (sqrt(alpha_bar_N) well below 1), unlike the
    # six betas summing to 0.072 that leave it at 0.96 and make the sampler mistake pure noise for a signal.
    assert levels_from_betas(inference_betas(6))[-1] < 0.5
    assert levels_from_betas([1e-6, 1.89e-5, 1.19e-4, 1e-3, 1.11e-2, 6e-2])[-1] > 0.95


def test_search_finds_the_optimum_of_a_separable_score():
    target = decade_betas([2, 7, 3, 9, 1, 6])

    def score(betas):
        return float((betas.log10() - target.log10()).abs().sum())

    betas, best, trials = search_schedule(score, 6, progress=False)
    torch.testing.assert_close(betas, target)
    assert best == pytest.approx(0.0, abs=1e-12)
    assert 1 + 6 * 8 <= len(trials) <= 1 + 6 * 9  # the start, then every other mantissa at each of the 6 steps


def test_core_ddpm_equals_wavegrad_algorithm_2():
    torch.manual_seed(0)
    net = WaveGradNet(**TINY).eval()
    mel = torch.randn(2, 80, 3)
    betas = torch.tensor([1e-4, 1e-3, 1e-2, 0.1, 0.5], dtype=torch.float64)
    ours = vocode_mel(net, mel, betas=betas, generator=torch.Generator().manual_seed(7), clip=False)

    # Chen et al. 2021, Algorithm 2, written out: y_N ~ N(0, I); y <- (y - beta_n / sqrt(1 - abar_n) eps) /
    # sqrt(alpha_n) + sigma_n z (n > 1), sigma_n^2 = beta_n (1 - abar_{n-1}) / (1 - abar_n).
    g = torch.Generator().manual_seed(7)
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    y = torch.randn(2, 1, 3 * 256, generator=g).double()
    with torch.no_grad():
        for n in reversed(range(5)):
            level = torch.full((2,), abar[n].sqrt().item())
            eps = net(y.float(), level, mel).double()
            y = (y - betas[n] / (1 - abar[n]).sqrt() * eps) / alphas[n].sqrt()
            if n > 0:
                sigma = (betas[n] * (1 - abar[n - 1]) / (1 - abar[n])).sqrt()
                y = y + sigma * torch.randn(y.shape, generator=g).double()
    torch.testing.assert_close(ours.double(), y, rtol=1e-4, atol=1e-4)


def test_dpm_solver_option_runs_through_core():
    net = WaveGradNet(**TINY).eval()
    out = vocode_mel(net, torch.randn(1, 80, 2), method="dpm++2m", steps=6, generator=torch.Generator())
    assert out.shape == (1, 1, 512) and out.abs().max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="method"):
        vocode_mel(net, torch.randn(1, 80, 2), method="euler")


def _reference_forward(net: WaveGradNet, y, level, mel):
    """The network written with the Conv1d modules' own forward (1-D, usual layout): the oracle for the 2-D path."""
    import torch.nn.functional as F

    lrelu = lambda x: F.leaky_relu(x, 0.2)  # noqa: E731

    def film(block, h):
        h = lrelu(block.in_conv(h)) + noise_level_encoding(level, h.shape[1])[:, :, None]
        return block.out_conv(h).chunk(2, dim=1)

    h = net.stem(y)
    conds = [film(net.films[0], h)]
    for i, down in enumerate(net.downs):
        size = h.shape[-1] // down.factor
        skip = down.skip(F.interpolate(h, size=size))
        h = F.interpolate(h, size=size)
        for conv in down.convs:
            h = conv(lrelu(h))
        h = h + skip
        conds.append(film(net.films[i + 1], h))
    x = net.mel_conv((mel + net.mel_offset) / net.mel_scale)
    for up, (shift, scale) in zip(net.ups, reversed(conds), strict=True):
        size = x.shape[-1] * up.factor
        skip = up.skip(F.interpolate(x, size=size))
        h = up.convs[0](F.interpolate(lrelu(x), size=size))
        h = up.convs[1](lrelu(shift + scale * h))
        x = h + skip
        h = up.convs[2](lrelu(shift + scale * x))
        x = x + up.convs[3](lrelu(shift + scale * h))
    return net.out_conv(lrelu(x))


def test_two_d_execution_equals_the_conv1d_network_in_fp32_and_bf16():
    torch.manual_seed(0)
    net = WaveGradNet(n_mels=16, factors=(4, 2), mel_channels=24, up_channels=(16, 8), up_dilations=((1, 2, 1, 2),
                      (1, 2, 4, 8)), down_channels=(4, 8))  # fmt: skip
    y, level, mel = torch.randn(2, 1, 5 * 8), torch.rand(2), torch.randn(2, 16, 5)
    with torch.no_grad():
        ref = _reference_forward(net, y, level, mel)
        out = net(y, level, mel)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert out.shape == (2, 1, 40) and out.is_contiguous()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the channels-last path
            low = net(y, level, mel).float()
    assert (low - ref).abs().max() < 0.05 * ref.abs().max()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # it trains too
        net(y, level, mel).float().abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
