"""Simplex noise: lattice zeros, range, statistics of the AnoDDPM fields, spatial correlation, seeding."""

from __future__ import annotations

import pytest
import torch

from omnidiffusion.vision.anomaly.simplex import (
    G2,
    G3,
    octave_noise,
    permutation_tables,
    simplex2,
    simplex3,
    simplex_like,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_permutation_tables_are_permutations():
    perm = permutation_tables(3, _gen())
    assert perm.shape == (3, 512)
    for row in perm:
        assert torch.equal(torch.sort(row[:256]).values, torch.arange(256))
        assert torch.equal(row[:256], row[256:])


def test_zero_at_every_lattice_point():
    # At a lattice vertex the vertex's own offset is 0 and every other corner of the cell is at squared
    # distance 2/3 (2-D) or 3/4 (3-D) in unskewed space, beyond the kernel radii 0.5 / 0.6: the noise is 0.
    perm = permutation_tables(2, _gen(1))
    ijk = torch.randint(-40, 40, (2, 500, 3), generator=_gen(2)).double()
    p3 = ijk - ijk.sum(-1, keepdim=True) * G3  # unskew
    assert simplex3(p3[..., 0], p3[..., 1], p3[..., 2], perm).abs().max() < 1e-12
    ij = ijk[..., :2]
    p2 = ij - ij.sum(-1, keepdim=True) * G2
    assert simplex2(p2[..., 0], p2[..., 1], perm).abs().max() < 1e-12


def test_range_mean_and_continuity():
    perm = permutation_tables(1, _gen(3))
    p = torch.rand(1, 50000, 3, generator=_gen(4), dtype=torch.float64) * 40 - 20
    v3 = simplex3(p[..., 0], p[..., 1], p[..., 2], perm)
    v2 = simplex2(p[..., 0], p[..., 1], perm)
    for v in (v3, v2):
        assert v.abs().max() <= 1.0
        assert abs(v.mean().item()) < 0.02  # gradient noise is zero-mean
        assert v.std() > 0.2
    # Lipschitz-like: a step of 1e-4 changes the value by far less than the value's spread.
    d = simplex3(p[..., 0] + 1e-4, p[..., 1], p[..., 2], perm) - v3
    assert d.abs().max() < 1e-2


@pytest.mark.parametrize("dims", [2, 3])
def test_standardised_fields_have_zero_mean_unit_variance_across_fields(dims):
    x = torch.zeros(256, 1, 16, 16)
    eps = simplex_like(x, torch.randint(0, 800, (256,), generator=_gen(5)), frequency=4.0, dims=dims, generator=_gen(6))
    assert eps.shape == x.shape
    # Ensemble statistics per pixel (independent fields), not the per-field standardisation itself.
    pixel_mean, pixel_var = eps.mean(dim=0), eps.var(dim=0)
    assert pixel_mean.abs().mean() < 0.1
    assert 0.8 < pixel_var.mean() < 1.2
    per_field = eps.flatten(1)
    assert torch.allclose(per_field.mean(1), torch.zeros(256), atol=1e-5)
    assert torch.allclose(per_field.std(1), torch.ones(256), atol=1e-4)


def _lag_corr(a: torch.Tensor, lag: int) -> float:
    a = (a - a.mean()) / a.std()
    return float((a[..., lag:] * a[..., :-lag]).mean())


def test_short_lag_correlation_far_above_white_noise():
    x = torch.zeros(64, 1, 32, 32)
    eps = simplex_like(x, torch.zeros(64), generator=_gen(7))  # AnoDDPM defaults scaled to 32 px
    white = torch.randn(64, 1, 32, 32, generator=_gen(8))
    assert abs(_lag_corr(white, 1)) < 0.03
    assert _lag_corr(eps, 1) > 0.3
    # A single low octave is smooth: correlation at lag 1 of a frequency-8 field is high.
    smooth = octave_noise(32, (32, 32), octaves=1, frequency=8.0, generator=_gen(9))
    assert _lag_corr(smooth, 1) > 0.7


def test_deterministic_by_seed_and_independent_fields():
    x = torch.zeros(4, 2, 16, 16)
    t = torch.tensor([0, 10, 100, 500])
    a = simplex_like(x, t, generator=_gen(11))
    b = simplex_like(x, t, generator=_gen(11))
    c = simplex_like(x, t, generator=_gen(12))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0, 0], a[0, 1])  # one field per channel
    # The global RNG is used (and advanced) without a generator, so fit's checkpoints replay it.
    torch.manual_seed(0)
    d = simplex_like(x, t)
    torch.manual_seed(0)
    assert torch.equal(d, simplex_like(x, t))


def test_depth_changes_the_3d_field_smoothly():
    perm = permutation_tables(1, _gen(13))
    xs = torch.rand(1, 2000, generator=_gen(14), dtype=torch.float64) * 8
    ys = torch.rand(1, 2000, generator=_gen(15), dtype=torch.float64) * 8
    v0 = simplex3(xs, ys, torch.zeros_like(xs), perm)
    v_near = simplex3(xs, ys, torch.full_like(xs, 0.05), perm)
    v_far = simplex3(xs, ys, torch.full_like(xs, 5.0), perm)
    assert torch.corrcoef(torch.stack([v0[0], v_near[0]]))[0, 1] > 0.95
    assert abs(torch.corrcoef(torch.stack([v0[0], v_far[0]]))[0, 1]) < 0.2


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="octaves"):
        octave_noise(1, (8, 8), octaves=0)
    with pytest.raises(ValueError, match="persistence"):
        octave_noise(1, (8, 8), persistence=1.5)
    with pytest.raises(ValueError, match="frequency"):
        octave_noise(1, (8, 8), frequency=0.0)
    with pytest.raises(ValueError, match="dims"):
        octave_noise(1, (8, 8), dims=4)
    with pytest.raises(ValueError, match="t_index"):
        simplex_like(torch.zeros(2, 1, 8, 8), torch.zeros(3))
    with pytest.raises(ValueError, match="perm"):
        simplex2(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(3, 512, dtype=torch.long))
