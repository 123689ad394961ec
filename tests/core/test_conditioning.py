"""Known-value replacement, classifier-free guidance and classifier guidance against exact answers."""

from __future__ import annotations

import pytest
import torch

from omnidiffusion.core import Denoiser, sample
from omnidiffusion.core import schedules as S
from omnidiffusion.core.conditioning import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    repaint,
    repaint_schedule,
)
from omnidiffusion.core.testing import Gaussian, GaussianMixture

F64 = torch.float64


def test_repaint_returns_the_known_values_exactly():
    sched = S.DiscreteVP.linear(1000)
    g = Gaussian(torch.zeros(2, 8, 8), torch.ones(2, 8, 8) * 0.5)
    den = g.denoiser(sched, "eps")
    gen = torch.Generator().manual_seed(0)
    x_known = g.sample(3, gen)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., :4] = True  # left half known
    out = repaint(den, x_known, mask, steps=20, jump_length=5, jump_n_sample=2, generator=gen)
    assert torch.equal(out[..., :4], x_known[..., :4])
    assert not torch.equal(out[..., 4:], x_known[..., 4:])


def test_repaint_fills_the_unknown_part_from_the_conditional():
    """Two tight, axis-aligned components at (-2, -2) and (2, 2): with x_1 known, the filled x_2 must come from
    p(x_2 | x_1), i.e. the component x_1 points to, with mean x_1."""
    sched = S.DiscreteVP.linear(1000)
    # two tight components far apart: knowing x_1 tells which component x_2 comes from
    mix = GaussianMixture([0.5, 0.5], torch.tensor([[-2.0, -2.0], [2.0, 2.0]]), torch.tensor([0.3, 0.3]))
    den = mix.denoiser(sched, "eps")
    n = 400
    x_known = torch.zeros(n, 2, dtype=F64)
    x_known[: n // 2, 0] = -2.0
    x_known[n // 2 :, 0] = 2.0
    mask = torch.tensor([True, False])
    gen = torch.Generator().manual_seed(1)
    out = repaint(den, x_known, mask, steps=50, jump_length=5, jump_n_sample=5, generator=gen)
    assert torch.equal(out[:, 0], x_known[:, 0])
    assert (out[: n // 2, 1] < 0).float().mean() > 0.97
    assert (out[n // 2 :, 1] > 0).float().mean() > 0.97
    # conditional mean of x_2 given x_1 = +-2 is +-2 (each component is axis-aligned)
    assert abs(out[n // 2 :, 1].mean().item() - 2.0) < 0.15


def test_repaint_schedule_visits():
    order = repaint_schedule(10, jump_length=3, jump_n_sample=2)
    assert order[0] == 0 and order[-1] == 10
    assert all(abs(b - a) == 1 for a, b in zip(order, order[1:], strict=False))
    down = sum(1 for a, b in zip(order, order[1:], strict=False) if b > a)
    up = sum(1 for a, b in zip(order, order[1:], strict=False) if b < a)
    assert down - up == 10 and up > 0
    assert repaint_schedule(10, 3, 1) == list(range(11))


class _CondNet(torch.nn.Module):
    """Returns a different exact oracle per label (0: component A, 1: component B, -1: the mixture)."""

    def __init__(self, sched):
        super().__init__()
        self.a = Gaussian(torch.tensor([-2.0, 0.0]), torch.tensor([0.5, 0.5])).denoiser(sched, "x0")
        self.b = Gaussian(torch.tensor([2.0, 1.0]), torch.tensor([0.5, 0.5])).denoiser(sched, "x0")
        self.m = GaussianMixture([0.5, 0.5], torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.5, 0.5]))
        self.md = self.m.denoiser(sched, "x0")

    def forward(self, x, t, label):
        outs = {0: self.a.net, 1: self.b.net, -1: self.md.net}
        return outs[int(label)](x, t)


def test_classifier_free_guidance_weights_zero_and_one():
    sched = S.LinearVP()
    net = _CondNet(sched)
    den = Denoiser(net, sched, "x0")
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = 0.6
    cond = den.predict(x, t, label=1)
    uncond = den.predict(x, t, label=-1)
    w0 = ClassifierFreeGuidance(den, 0.0, {"label": -1}).predict(x, t, label=1)
    w1 = ClassifierFreeGuidance(den, 1.0, {"label": -1}).predict(x, t, label=1)
    assert torch.allclose(w0.x0, uncond.x0) and torch.allclose(w0.eps, uncond.eps)
    assert torch.allclose(w1.x0, cond.x0) and torch.allclose(w1.eps, cond.eps)
    w3 = ClassifierFreeGuidance(den, 3.0, {"label": -1}).predict(x, t, label=1)
    assert torch.allclose(w3.eps, uncond.eps + 3.0 * (cond.eps - uncond.eps))


@pytest.mark.parametrize("target", [0, 1])
def test_exact_classifier_guidance_moves_samples_to_the_chosen_class(target):
    """Guiding the mixture with its exact log p(k | x_t) at scale 1 gives the exact conditional: every sample
    lands in component k, and the samples have its mean."""
    sched = S.LinearVP()
    mix = GaussianMixture([0.7, 0.3], torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.5, 0.5]))
    den = mix.denoiser(sched, "eps")
    guided = ClassifierGuidance(den, lambda x, t: mix.responsibilities(x, t, sched)[:, target], scale=1.0)
    gen = torch.Generator().manual_seed(2)
    x = sample(guided, (1000, 2), "dpm++2m", 30, "logsnr", generator=gen, dtype=F64)
    nearest = torch.cdist(x, mix.means).argmin(1)
    assert (nearest == target).float().mean() > 0.995
    assert torch.allclose(x.mean(0), mix.means[target], atol=0.1)
    # unguided, both classes appear
    y = sample(den, (1000, 2), "dpm++2m", 30, "logsnr", generator=gen, dtype=F64)
    assert 0.2 < (torch.cdist(y, mix.means).argmin(1) == 1).float().mean() < 0.4
