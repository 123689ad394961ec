"""Zero-shot inverse problems against exact truth: operators' pinv vs numpy lstsq / a dense SVD, DDNM's A x = y
to float precision, DPS and SDEdit against the closed-form Gaussian posterior, RePaint equal to core.repaint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnidiffusion.core import repaint as core_repaint
from omnidiffusion.core.schedules import DiscreteVP
from omnidiffusion.core.testing import Gaussian
from omnidiffusion.vision.inverse import (
    Downsample,
    GaussianBlur,
    Grey,
    Inpaint,
    consistency,
    measure,
    restore,
)

SCHED = DiscreteVP.named("linear", 1000)


def _dense(op, shape):
    """The matrix of `op` on images of `shape` (C, H, W), from its forward map of the basis images."""
    n = int(np.prod(shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return op.forward(eye).reshape(n, -1).T.numpy()  # (M, N)


def _ops():
    mask = torch.ones(6, 6, dtype=torch.bool)
    mask[1:4, 2:5] = False
    return [
        (Downsample(2, (6, 6), "box"), (1, 6, 6)),
        (Downsample(3, (6, 6), "bicubic"), (2, 6, 6)),
        (GaussianBlur(1.0, (6, 6), rcond=1e-3), (1, 6, 6)),
        (Inpaint(mask), (1, 6, 6)),
        (Grey(), (3, 4, 5)),
    ]


@pytest.mark.parametrize("k", range(5))
def test_pinv_equals_lstsq_and_weighted_pinv_equals_dense_svd(k):
    op, shape = _ops()[k]
    A = _dense(op, shape)
    gen = torch.Generator().manual_seed(k)
    y = torch.randn((2, *op.measurement_shape((1, *shape))), generator=gen, dtype=torch.float64)
    rcond = getattr(op, "rcond", 1e-6)
    ref = np.stack([np.linalg.lstsq(A, yi.reshape(-1).numpy(), rcond=rcond)[0] for yi in y])
    got = op.pinv(y).reshape(2, -1).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-10)
    # DDNM+'s shrunk pinv V diag(w(s)/s) U^T and range filter V diag(g(s)) V^T against numpy's SVD of A
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    keep = S > rcond * S.max()
    U, S, Vt = U[:, keep], S[keep], Vt[keep]
    w = lambda s: s / (s + 0.3)  # noqa: E731
    g = lambda s: 1.0 / (1.0 + s)  # noqa: E731
    ref_w = (Vt.T * (w(S) / S)) @ U.T @ y.reshape(2, -1).numpy().T
    np.testing.assert_allclose(op.pinv(y, w).reshape(2, -1).numpy(), ref_w.T, atol=1e-10)
    x = torch.randn((2, *shape), generator=gen, dtype=torch.float64)
    ref_g = (Vt.T * g(S)) @ Vt @ x.reshape(2, -1).numpy().T
    np.testing.assert_allclose(op.range_part(x, g).reshape(2, -1).numpy(), ref_g.T, atol=1e-10)
    np.testing.assert_allclose(np.unique(op.singular_values().numpy().round(10)), np.unique(S.round(10)))
    assert op.image_shape(tuple(y.shape)) == shape


def test_box_pinv_repeats_each_block_and_bicubic_matrix_is_torch_interpolate():
    op = Downsample(2, (4, 4), "box")
    y = torch.arange(4.0, dtype=torch.float64).reshape(1, 1, 2, 2)
    np.testing.assert_allclose(op.pinv(y)[0, 0].numpy(), np.kron(y[0, 0].numpy(), np.ones((2, 2))))
    bic = Downsample(2, (8, 8), "bicubic")
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    ref = torch.nn.functional.interpolate(x, size=(4, 4), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(bic.forward(x), ref, atol=1e-12, rtol=0)


def test_grey_lifts_by_the_grey_copy_and_keeps_colour_differences():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    y = torch.rand(2, 1, 4, 5, generator=gen, dtype=torch.float64)
    weights = (0.2, 0.5, 0.1)  # sum 0.8: the copy is y / 0.8 in every channel
    for op in (Grey(), Grey(weights)):
        total = float(op.w.sum())
        lifted = op.lift(y)
        torch.testing.assert_close(lifted, y.expand(2, 3, 4, 5) / total, atol=1e-15, rtol=0)
        torch.testing.assert_close(op.forward(lifted), y, atol=1e-15, rtol=0)  # a right inverse: A B = I
        part = op.lift_part(x)
        torch.testing.assert_close(op.lift_part(part), part, atol=1e-15, rtol=0)  # B A is a projection
        # x - B A x has no luminance and is x's colour differences x_c - Y / sum(w), in every channel
        rest = x - part
        torch.testing.assert_close(op.forward(rest), torch.zeros_like(y), atol=1e-15, rtol=0)
        torch.testing.assert_close(rest, x - op.forward(x) / total, atol=1e-15, rtol=0)
        # a DDNM correction x - B (A x - y) meets y and changes every channel by the same amount
        fixed = x - op.lift(op.forward(x) - y)
        torch.testing.assert_close(op.forward(fixed), y, atol=1e-14, rtol=0)
        diff = fixed - x
        torch.testing.assert_close(diff, diff[:, :1].expand_as(diff), atol=1e-15, rtol=0)
    pinv = Grey(lift="pinv")
    torch.testing.assert_close(pinv.lift(y), pinv.pinv(y), atol=0, rtol=0)
    torch.testing.assert_close(pinv.lift_part(x), pinv.project(x), atol=0, rtol=0)
    with pytest.raises(ValueError, match="lift: expected 'copy' or 'pinv', got 'svd'"):
        Grey(lift="svd")


def _oracle(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mean = 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
    std = 0.2 + 0.5 * torch.rand(shape, generator=gen, dtype=torch.float64)
    return Gaussian(mean, std)


@pytest.mark.parametrize("k", range(6))
def test_ddnm_output_satisfies_a_x_equals_y_to_float_precision(k):
    op, shape = (*_ops(), (Grey(lift="pinv"), (3, 4, 5)))[k]
    if isinstance(op, GaussianBlur):
        op = GaussianBlur(1.0, shape[1:], rcond=1e-12)  # every frequency kept: A A^+ = I
    data = _oracle(shape, k)
    den = data.denoiser(SCHED, "eps")
    gen = torch.Generator().manual_seed(1)
    x_true = data.sample(3, gen)
    y = measure(op, x_true)
    for solver in ("ddnm", "ddnm+"):
        x = restore(den, y, op, solver, steps=20, generator=torch.Generator().manual_seed(2))
        assert x.dtype == torch.float64 and tuple(x.shape) == (3, *shape)
        assert float(consistency(op, x, y).max()) < 1e-10
        assert float((op.forward(x) - y).abs().max()) < 1e-10


def test_ddnm_plus_equals_ddnm_without_noise_and_stays_at_the_noise_floor_with_it():
    op, shape = Downsample(2, (6, 6), "box"), (1, 6, 6)
    data = _oracle(shape, 3)
    den = data.denoiser(SCHED, "x0")
    x_true = data.sample(4, torch.Generator().manual_seed(0))
    y = measure(op, x_true)
    a = restore(den, y, op, "ddnm", steps=10, generator=torch.Generator().manual_seed(5))
    b = restore(den, y, op, "ddnm+", steps=10, generator=torch.Generator().manual_seed(5), sigma_y=0.0)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    sigma_y = 0.2
    y_noisy = measure(op, x_true, sigma_y, torch.Generator().manual_seed(9))
    x = restore(den, y_noisy, op, "ddnm+", steps=50, sigma_y=sigma_y, generator=torch.Generator().manual_seed(5))
    # DDNM+ does not fit the noise: its residual is of the size of the noise, not 0 (plain DDNM fits it exactly)
    res = float(consistency(op, x, y_noisy).mean())
    assert 0.3 * sigma_y < res < 2.0 * sigma_y
    assert float(consistency(op, restore(den, y_noisy, op, "ddnm", steps=50), y_noisy).max()) < 1e-10


def _posterior_inpaint(data: Gaussian, y: torch.Tensor, mask: torch.Tensor, sigma_y: float):
    """Closed-form posterior of x ~ N(mu, s^2) given y = x[mask] + sigma_y n (diagonal: per coordinate)."""
    v = data.std**2
    gain = v / (v + sigma_y**2)
    mean = torch.where(mask, data.mean + gain * (y - data.mean), data.mean)
    var = torch.where(mask, v * sigma_y**2 / (v + sigma_y**2), v)
    return mean, var


def test_dps_gaussian_likelihood_samples_the_exact_posterior_of_a_unit_gaussian_prior():
    # unit variance prior and A A^T = I: the Pi-GDM variance sigma_y^2 + sigma_t^2 / (alpha^2 + sigma^2) is exact,
    # so DPS's guided ancestral chain samples the posterior (up to the discretisation of 200 steps)
    shape = (1, 1, 4)
    data = Gaussian(torch.tensor([0.5, -0.3, 0.2, 0.0], dtype=torch.float64).reshape(shape), 1.0)
    mask = torch.tensor([True, True, False, True]).reshape(1, 1, 1, 4)
    op = Inpaint(mask)
    sigma_y, n = 0.5, 3000
    y1 = torch.tensor([1.5, 0.4, 0.0, -1.0], dtype=torch.float64).reshape(1, *shape)
    y = op.forward(y1).expand(n, *shape).contiguous()
    x = restore(data.denoiser(SCHED, "eps"), y, op, "dps", steps=200, sigma_y=sigma_y, likelihood="gaussian",
                generator=torch.Generator().manual_seed(0))
    mean, var = _posterior_inpaint(data, y1[0], mask[0], sigma_y)
    emp_mean, emp_var = x.mean(0), x.var(0)
    se = (var / n).sqrt()
    assert float(((emp_mean - mean).abs() / se).max()) < 4.5, (emp_mean, mean)
    # sample variance: relative standard error sqrt(2 / n) ~ 2.6%; allow 5 of them plus the discretisation
    assert float(((emp_var / var) - 1).abs().max()) < 0.15, (emp_var, var)


def test_dps_paper_step_pulls_samples_towards_the_measurement():
    shape = (1, 4, 4)
    data = _oracle(shape, 4)
    op = Downsample(2, (4, 4), "box")
    x_true = data.sample(64, torch.Generator().manual_seed(0))
    y = measure(op, x_true)
    den = data.denoiser(SCHED, "eps")
    free = restore(den, y, op, "dps", steps=30, zeta=0.0, generator=torch.Generator().manual_seed(1))
    guided = restore(den, y, op, "dps", steps=30, zeta=0.5, generator=torch.Generator().manual_seed(1))
    assert float(consistency(op, guided, y).mean()) < 0.5 * float(consistency(op, free, y).mean())


def test_sdedit_with_the_ddpm_sampler_matches_its_closed_form_output_law():
    # x_t0 = alpha g + sigma z, then exact ancestral sampling: x0 ~ N(mu + k (g - mu), (k sigma / alpha)^2 ... )
    shape = (1, 1, 3)
    data = _oracle(shape, 5)
    op = GaussianBlur(1.0, (1, 3), rcond=1e-12)
    guide = torch.tensor([0.8, -0.5, 0.1], dtype=torch.float64).reshape(1, *shape)
    n, t0 = 3000, 0.4
    y = op.forward(guide).expand(n, *shape).contiguous()
    x = restore(data.denoiser(SCHED, "eps"), y, op, "sdedit", steps=100, t0=t0,
                generator=torch.Generator().manual_seed(0))
    a, s = SCHED.alpha(t0).item(), SCHED.sigma(t0).item()
    v = data.std**2
    gain = a * v / (a**2 * v + s**2)  # E[x0 | x_t] = mu + gain (x_t - a mu)
    mean = data.mean + gain * a * (guide[0] - data.mean)
    var = gain**2 * s**2 + v * s**2 / (a**2 * v + s**2)  # spread of E[x0|x_t] over z + posterior variance
    se = (var / n).sqrt()
    assert float(((x.mean(0) - mean).abs() / se).max()) < 4.5
    assert float(((x.var(0) / var) - 1).abs().max()) < 0.15


def test_repaint_on_a_mask_is_core_repaint_and_keeps_known_pixels():
    shape = (1, 6, 6)
    data = _oracle(shape, 6)
    mask = torch.ones(6, 6, dtype=torch.bool)
    mask[2:5, 1:4] = False
    op = Inpaint(mask)
    x_true = data.sample(2, torch.Generator().manual_seed(0))
    y = measure(op, x_true)
    den = data.denoiser(SCHED, "eps")
    x_T = torch.randn((2, *shape), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = restore(den, y, op, "repaint", steps=10, jump_length=3, jump_n_sample=2, x_T=x_T,
                   generator=torch.Generator().manual_seed(4))
    ref = core_repaint(den, x_true, mask, steps=10, grid="trailing", jump_length=3, jump_n_sample=2, x_T=x_T,
                       generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours[:, :, mask], x_true[:, :, mask], atol=0, rtol=0)


def test_restore_rejects_bad_input_naming_the_argument():
    op = Downsample(2, (4, 4))
    den = _oracle((1, 4, 4)).denoiser(SCHED)
    y = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="solver: expected one of"):
        restore(den, y, op, "magic")
    with pytest.raises(ValueError, match=r"y: expected a measurement of shape \(B, 1, 2, 2\)"):
        restore(den, torch.zeros(1, 1, 3, 3), op)
    with pytest.raises(ValueError, match="operator: expected"):
        restore(den, y, "sr4")
    with pytest.raises(ValueError, match="denoiser: expected a core Denoiser"):
        restore(object(), y, op)
    with pytest.raises(ValueError, match="sigma_y: likelihood='gaussian' needs"):
        restore(den, y, op, "dps", likelihood="gaussian")
    with pytest.raises(ValueError, match="eta: expected a finite number in"):
        restore(den, y, op, "ddnm", eta=2.0)
    with pytest.raises(ValueError, match="factor"):
        Downsample(3, (4, 4))
    with pytest.raises(ValueError, match="mask: expected at least one hole"):
        Inpaint(torch.ones(4, 4, dtype=torch.bool))
