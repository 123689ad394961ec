"""Denoiser: prediction conversions round-trip exactly on VP and VE; hooks; bad input."""

from __future__ import annotations

import pytest
import torch

from omnidiffusion.core import Denoiser, clip_x0, convert_prediction
from omnidiffusion.core import schedules as S
from omnidiffusion.core.testing import Gaussian

F64 = torch.float64
PREDS = ("eps", "x0", "v", "score")


@pytest.mark.parametrize("sched", [S.LinearVP(), S.DiscreteVP.cosine(1000), S.VE(), S.EDM(), S.SubVP()], ids=repr)
def test_every_prediction_type_gives_the_same_x0_and_eps(sched):
    """The exact oracle expressed as eps, x0, v or score must convert back to one (x0, eps) pair."""
    g = Gaussian(torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.5, 1.5, 0.1]))
    gen = torch.Generator().manual_seed(0)
    x0 = g.sample(64, gen)
    t = torch.rand(64, generator=gen, dtype=F64) * 0.98 + 0.01
    a, s = sched.alpha(t)[:, None], sched.sigma(t)[:, None]
    x_t = a * x0 + s * torch.randn(x0.shape, generator=gen, dtype=F64)
    ref = g.denoiser(sched, "x0").predict(x_t, t)
    expected_x0 = g.posterior_mean(x_t, t, sched)
    assert torch.allclose(ref.x0, expected_x0, atol=1e-12)
    for p in PREDS:
        out = g.denoiser(sched, p).predict(x_t, t)
        assert torch.allclose(out.x0, ref.x0, atol=1e-9, rtol=1e-9), p
        assert torch.allclose(out.eps, ref.eps, atol=1e-9, rtol=1e-9), p


@pytest.mark.parametrize("sched", [S.LinearVP(), S.VE()], ids=repr)
def test_convert_prediction_round_trips(sched):
    gen = torch.Generator().manual_seed(1)
    x_t = torch.randn(16, 2, 3, generator=gen, dtype=F64) * 3
    t = torch.rand(16, generator=gen, dtype=F64) * 0.9 + 0.05
    value = torch.randn(16, 2, 3, generator=gen, dtype=F64)
    for src in PREDS:
        for dst in PREDS:
            there = convert_prediction(value, x_t, t, sched, src, dst)
            back = convert_prediction(there, x_t, t, sched, dst, src)
            assert torch.allclose(back, value, atol=1e-10, rtol=1e-10), (src, dst)


def test_v_definition_on_vp():
    """v = alpha eps - sigma x0 (Salimans & Ho 2022) and x0 = alpha x_t - sigma v on VP."""
    sched = S.LinearVP()
    gen = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(8, 4, generator=gen, dtype=F64), torch.randn(8, 4, generator=gen, dtype=F64)
    t = torch.full((8,), 0.4, dtype=F64)
    a, s = sched.alpha(t)[:, None], sched.sigma(t)[:, None]
    x_t = a * x0 + s * eps
    v = convert_prediction(eps, x_t, t, sched, "eps", "v")
    assert torch.allclose(v, a * eps - s * x0, atol=1e-12)
    assert torch.allclose(a * x_t - s * v, x0, atol=1e-12)


def test_edm_preconditioning_matches_karras_formulas():
    sched = S.EDM()
    captured = {}

    def net(x_in, t):
        captured["x_in"], captured["t"] = x_in, t
        return torch.ones_like(x_in)

    den = Denoiser(net, sched, "edm")
    x = torch.full((2, 3), 2.0, dtype=F64)
    t = torch.tensor([0.1, 0.5], dtype=F64)
    out = den.predict(x, t)
    sig = t * 80.0
    sd = 0.5
    c_in = 1 / torch.sqrt(sig**2 + sd**2)
    c_skip = sd**2 / (sig**2 + sd**2)
    c_out = sig * sd / torch.sqrt(sig**2 + sd**2)
    assert torch.allclose(captured["x_in"], 2.0 * c_in[:, None])
    assert torch.allclose(captured["t"], t)
    assert torch.allclose(out.x0, c_skip[:, None] * 2.0 + c_out[:, None])


def test_x0_hook_clips_and_eps_follows():
    sched = S.LinearVP()
    den = Denoiser(lambda x, t: torch.full_like(x, 5.0), sched, "x0", x0_hooks=[clip_x0(-1, 1)])
    x = torch.zeros(3, 2, dtype=F64)
    out = den.predict(x, 0.5)
    assert torch.all(out.x0 == 1.0)
    a, s = sched.alpha(0.5).item(), sched.sigma(0.5).item()
    assert torch.allclose(out.eps, (x - a * out.x0) / s)


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.seen = {}

    def forward(self, x, t):
        self.seen = {"x": x.dtype, "t": (t.dtype, tuple(t.shape))}
        return self.lin(x)


def test_network_is_called_in_its_own_dtype_with_one_time_per_row():
    net = _Recorder()  # float32 parameters
    out = Denoiser(net, S.LinearVP(), "eps").predict(torch.randn(5, 4, dtype=F64), 0.3)
    assert net.seen == {"x": torch.float32, "t": (torch.float32, (5,))}
    assert out.x0.dtype == F64 and out.eps.dtype == F64


def test_bad_input_names_the_argument():
    den = Gaussian(0.0, 1.0).denoiser(S.LinearVP())
    x = torch.zeros(4, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"t: expected values in \[0, 1\]"):
        den(x, 1.5)
    with pytest.raises(ValueError, match=r"t: expected a float or a tensor of shape \(4,\)"):
        den(x, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="x_t: expected a floating-point tensor"):
        den(torch.zeros(4, 1, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="prediction"):
        Denoiser(lambda x, t: x, S.LinearVP(), "noise")
    with pytest.raises(ValueError, match="net output: expected shape"):
        Denoiser(lambda x, t: x[:, :1], S.LinearVP())(torch.zeros(2, 3), 0.5)
