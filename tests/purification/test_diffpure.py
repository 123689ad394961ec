"""DiffPure mechanics: identity at t* = 0, range and shape, the core sampler it must equal, gradients, BPDA, seeds,
and the reverse process against exact Gaussian answers (core.testing oracles)."""

from __future__ import annotations

import math

import pytest
import torch

from omnidiffusion.core import ForwardProcess, LinearVP, sample
from omnidiffusion.core.testing import Gaussian
from omnidiffusion.purification import PURIFY_METHODS, DiffPure


def test_t_star_zero_returns_the_input(denoiser, images):
    dp = DiffPure(denoiser, t_star=0.0)
    x = images.clone().requires_grad_(True)
    out = dp(x)
    assert torch.equal(out, images)
    out.sum().backward()  # identity: gradient of sum is all ones
    assert torch.equal(x.grad, torch.ones_like(images))


@pytest.mark.parametrize("method", sorted(PURIFY_METHODS))
def test_output_shape_and_range(denoiser, images, method):
    out = DiffPure(denoiser, t_star=0.2, method=method, steps=5)(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, images)


def test_default_steps_follow_the_paper_dt(denoiser):
    assert DiffPure(denoiser, t_star=0.1).steps == 100  # dt = 1e-3 (torchsde default in DiffPure)
    assert DiffPure(denoiser, t_star=0.075).steps == 75


@pytest.mark.parametrize("method", sorted(PURIFY_METHODS))
def test_equals_core_sample_from_t_star(denoiser, images, method):
    """Purification = q_sample to t*, then core `sample(..., t_start=t*)`, with [0,1] <-> [-1,1] mapping."""
    t_star, steps, seed = 0.15, 6, 7
    out = DiffPure(denoiser, t_star=t_star, method=method, steps=steps, seed=seed)(images)
    gen = torch.Generator().manual_seed(seed)
    z = 2 * images - 1
    noise = torch.randn(z.shape, generator=gen)
    x_t = ForwardProcess(denoiser.schedule).q_sample(z, t_star, noise)
    core_name, options = PURIFY_METHODS[method]
    z0 = sample(denoiser, x_t, method=core_name, steps=steps, t_start=t_star, generator=gen, options=dict(options))
    assert torch.equal(out, ((z0 + 1) / 2).clamp(0, 1))


@pytest.mark.parametrize("method", sorted(PURIFY_METHODS))
def test_gradient_path_gives_the_same_output_and_nonzero_gradients(denoiser, images, method):
    dp = DiffPure(denoiser, t_star=0.2, method=method, steps=4, seed=3)
    with torch.no_grad():
        ref = dp(images)
    dp.reset_noise()
    x = images.clone().requires_grad_(True)
    out = dp(x)
    assert torch.equal(out, ref)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    # Not the identity's gradient: the purifier's Jacobian is contracting (alpha(t*) < 1 times the reverse map).
    assert not torch.allclose(x.grad, 2 * out.detach())


def test_gradient_matches_finite_differences(denoiser, images):
    """d/dx of a scalar through the deterministic (ODE) purifier against a central difference, in float64."""
    dp = DiffPure(denoiser, t_star=0.2, method="ode", steps=3, seed=0).double()
    denoiser.net.double()
    try:
        x = images.double().clamp(0.2, 0.8).requires_grad_(True)
        w = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

        def f(v):
            dp.reset_noise()
            return (w * dp(v)).sum()

        f(x).backward()
        d = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        h = 1e-5
        with torch.no_grad():
            fd = (f(x + h * d) - f(x - h * d)) / (2 * h)
        assert math.isclose((x.grad * d).sum().item(), fd.item(), rel_tol=1e-5, abs_tol=1e-8)
    finally:
        denoiser.net.float()


def test_checkpointing_gives_identical_gradients(denoiser, images):
    grads = []
    for ckpt in (False, True):
        dp = DiffPure(denoiser, t_star=0.2, method="sde", steps=4, seed=1, checkpointing=ckpt)
        x = images.clone().requires_grad_(True)
        dp(x).pow(3).sum().backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])


def test_bpda_backward_is_the_identity(denoiser, images):
    dp = DiffPure(denoiser, t_star=0.2, steps=4, gradient="bpda", seed=2)
    x = images.clone().requires_grad_(True)
    w = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    out = dp(x)
    (w * out).sum().backward()
    assert torch.equal(x.grad, w)
    dp.reset_noise()
    with torch.no_grad():
        assert torch.equal(out.detach(), dp(images))  # the forward pass is the real purifier


def test_gradient_mode_switches_and_restores(denoiser, images):
    dp = DiffPure(denoiser, t_star=0.2, steps=3)
    with dp.gradient_mode("bpda"):
        x = images.clone().requires_grad_(True)
        dp(x).sum().backward()
        assert torch.equal(x.grad, torch.ones_like(images))
    assert dp.gradient == "full"


def test_seeded_runs_repeat_and_seeds_differ(denoiser, images):
    a = DiffPure(denoiser, t_star=0.2, steps=4, seed=11)(images)
    b = DiffPure(denoiser, t_star=0.2, steps=4, seed=11)(images)
    c = DiffPure(denoiser, t_star=0.2, steps=4, seed=12)(images)
    assert torch.equal(a, b) and not torch.equal(a, c)
    dp = DiffPure(denoiser, t_star=0.2, steps=4, seed=11)
    first, second = dp(images), dp(images)
    assert torch.equal(first, a) and not torch.equal(first, second)  # fresh noise on each call
    torch.manual_seed(0)  # the global RNG does not drive the purifier (APGD reseeds it)
    fixed = DiffPure(denoiser, t_star=0.2, steps=4, seed=11, fixed_noise=True)
    assert torch.equal(fixed(images), fixed(images))


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan")])
def test_inputs_outside_unit_range_raise(denoiser, images, bad):
    x = images.clone()
    x[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\]"):
        DiffPure(denoiser, t_star=0.1, steps=2)(x)


def test_bad_arguments_raise(denoiser, images):
    with pytest.raises(ValueError, match="t_star"):
        DiffPure(denoiser, t_star=1.0)
    with pytest.raises(ValueError, match="method"):
        DiffPure(denoiser, method="langevin")
    with pytest.raises(ValueError, match="gradient"):
        DiffPure(denoiser, gradient="adjoint")
    with pytest.raises(ValueError, match="steps"):
        DiffPure(denoiser, steps=0)
    with pytest.raises(ValueError, match="diffusion"):
        DiffPure(object())
    with pytest.raises(ValueError, match="x: expected a floating"):
        DiffPure(denoiser, steps=2)((images * 255).to(torch.uint8))


def _gaussian_purifier(method, steps, t_star, mean=0.1, std=0.3):
    schedule = LinearVP()
    oracle = Gaussian(torch.full((1, 4, 4), mean), torch.full((1, 4, 4), std))
    return DiffPure(oracle.denoiser(schedule, "eps"), t_star=t_star, method=method, steps=steps, seed=0), oracle


def test_ode_purification_converges_to_the_exact_probability_flow_map():
    """With the exact denoiser of Gaussian data, the ODE purifier tends to the closed-form PF-ODE map from t* to 0
    at first order in the step (DDIM is a first-order solver)."""
    t_star = 0.3
    x = 0.5 + 0.1 * torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = []
    for steps in (100, 400):
        dp, oracle = _gaussian_purifier("ode", steps, t_star)
        out = dp(x)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x_t = ForwardProcess(dp.denoiser.schedule).q_sample(2 * x - 1, t_star, noise)
        exact = ((oracle.ode_endpoint(x_t, dp.denoiser.schedule, t_star, 0.0) + 1) / 2).clamp(0, 1)
        errors.append((out - exact).abs().max().item())
    assert errors[1] < 3e-3
    assert 3.0 < errors[0] / errors[1] < 5.0  # first order: 4x the steps, about 4x less error


@pytest.mark.parametrize(("method", "std_tol"), [("sde", 0.01), ("ddpm", 0.015)])
def test_stochastic_purification_keeps_the_data_distribution(method, std_tol):
    """Inputs drawn from the data law come out with the same law (the reverse process inverts the forward one)."""
    mean, std = 0.1, 0.3  # in [-1, 1] model units
    dp, oracle = _gaussian_purifier(method, 100, 0.3, mean, std)
    z = oracle.sample(4000, torch.Generator().manual_seed(1)).to(torch.float32)
    out = dp(((z + 1) / 2).clamp(0, 1)) * 2 - 1  # back to model units; clamping touches < 0.1% of values
    assert abs(out.mean().item() - mean) < 0.01
    # DDPM's fixed-small ancestral steps under-disperse slightly at 100 steps over [0, 0.3] (first-order bias).
    assert abs(out.std().item() - std) < std_tol


def test_accepts_a_vision_image_ddpm_and_registers_its_weights(images):
    vision = pytest.importorskip("omnidiffusion.vision")
    torch.manual_seed(0)
    unet = {"base_channels": 8, "channel_mults": [1, 2], "norm_groups": 4, "attention_resolutions": []}
    ddpm = vision.ImageDDPM(8, 1, unet)
    dp = DiffPure(ddpm, t_star=0.1, steps=2)
    names = {n for n, _ in dp.named_parameters()}
    assert names and all(n.startswith("diffusion.") for n in names)
    out = dp(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
