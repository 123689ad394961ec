"""Grids start at the noise end, end explicitly at the data end and are strictly monotone."""

from __future__ import annotations

import pytest
import torch

from omnidiffusion.core import schedules as S
from omnidiffusion.core.timesteps import GRIDS, check_grid, make_grid


def _check(grid, steps, t_start=1.0, t_end=0.0):
    assert grid.dtype == torch.float64
    assert grid.shape == (steps + 1,)
    assert grid[0].item() == t_start and grid[-1].item() == t_end
    assert bool((grid[1:] < grid[:-1]).all())


@pytest.mark.parametrize("name", GRIDS)
def test_every_step_count_on_a_discrete_schedule(name):
    sched = S.DiscreteVP.linear(1000)
    for n in range(1, 1001):
        _check(make_grid(sched, name, n), n)


def test_trailing_is_diffusers_trailing_and_lands_on_the_table():
    """Lin et al. 2023 Table 2: round(T - i T/N) - 1 as 0-based indices (ties to even), then the data end.

    Checked against exact rational rounding for every N, and against diffusers' numpy expression
    np.round(np.arange(T, 0, -T/N)) - 1 where its float arange is exact (for N = 48 it is not)."""
    from fractions import Fraction

    import numpy as np

    T = 1000
    sched = S.DiscreteVP.linear(T)
    for n in range(1, T + 1):
        expected = [round(Fraction(T * (n - i), n)) - 1 for i in range(n)]
        grid = make_grid(sched, "trailing", n)
        idx = sched.index_of_t(grid[:-1])
        assert torch.allclose(idx, torch.tensor(expected, dtype=torch.float64), atol=1e-9), n
    for n in (1, 3, 7, 9, 16, 27, 50, 80, 333, 1000):
        numpy_expr = np.round(np.arange(T, 0, -T / n)).astype(int) - 1
        idx = sched.index_of_t(make_grid(sched, "trailing", n)[:-1]).round().long().numpy()
        assert (idx == numpy_expr).all(), n


@pytest.mark.parametrize("sched", [S.LinearVP(), S.VE(), S.EDM(), S.CosineVP()], ids=repr)
@pytest.mark.parametrize("name", GRIDS)
def test_continuous_schedules(sched, name):
    for n in (1, 2, 5, 18, 100):
        _check(make_grid(sched, name, n), n)
    _check(make_grid(sched, name, 10, t_start=0.5, t_end=0.1), 10, 0.5, 0.1)


def test_karras_and_logsnr_spacing():
    sched = S.EDM()
    g = make_grid(sched, "karras", 18)
    sig = sched.sigma_ve(g[:-1])
    rho = 7.0
    i = torch.arange(18, dtype=torch.float64)
    expected = (80 ** (1 / rho) + i / 17 * (0.002 ** (1 / rho) - 80 ** (1 / rho))) ** rho
    assert torch.allclose(sig, expected, rtol=1e-10)
    vp = S.LinearVP()
    lam = vp.log_snr(make_grid(vp, "logsnr", 10)[:-1])
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(9), rtol=1e-8)


def test_bad_grids():
    sched = S.LinearVP()
    with pytest.raises(ValueError, match="steps: expected an integer >= 1"):
        make_grid(sched, "time-uniform", 0)
    with pytest.raises(ValueError, match="grid: expected one of"):
        make_grid(sched, "leading", 10)
    with pytest.raises(ValueError, match="t_start, t_end"):
        make_grid(sched, "time-uniform", 10, t_start=1.5)
    with pytest.raises(ValueError, match="strictly decreasing"):
        check_grid(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="steps: 'trailing' allows at most"):
        make_grid(S.DiscreteVP.linear(10), "trailing", 11)
