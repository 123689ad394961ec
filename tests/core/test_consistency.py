"""Consistency models: parameterisation, teacher steps, distillation and training, against exact oracles."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from omnidiffusion.core import schedules as S
from omnidiffusion.core.consistency import (
    ConsistencyDenoiser,
    consistency_distillation,
    consistency_grid,
    consistency_training,
    grid_pairs,
    ict_intervals,
    lognormal_weights,
    teacher_step,
)
from omnidiffusion.core.samplers import METHODS, sample
from omnidiffusion.core.testing import Gaussian
from omnidiffusion.core.timesteps import make_grid
from omnidiffusion.core.training import TrainConfig

F64 = torch.float64
GAUSS = Gaussian(torch.tensor([1.5, -0.5, 0.3, -2.0]), torch.tensor([0.3, 1.2, 0.6, 0.1]))


def _rms(a, b):
    return ((a - b) ** 2).mean().sqrt().item()


class SlotAffine(nn.Module):
    """x0_hat = w_k (x - alpha_t m) + b_k, one (w, b) per grid time: for Gaussian data the consistency function
    at each grid time is affine in x_t, so this student can be exact there."""

    def __init__(self, schedule, grid, mean):
        super().__init__()
        self.schedule = schedule
        self.register_buffer("grid", grid.clone())
        self.register_buffer("mean", mean.to(F64))
        self.w = nn.Parameter(torch.zeros(len(grid), mean.numel(), dtype=F64))
        self.b = nn.Parameter(torch.zeros(len(grid), mean.numel(), dtype=F64))

    def forward(self, x, t):
        k = (t.to(F64)[:, None] - self.grid[None]).abs().argmin(1)
        a = self.schedule.alpha(t.to(F64))[:, None]
        return self.w[k] * (x - a * self.mean) + self.b[k]


@pytest.mark.parametrize("parameterisation", ["edm", "euler"])
def test_boundary_condition_and_coefficients(parameterisation):
    """f(x, t_min) = x / alpha(t_min) whatever the network says; "euler" at t > t_min is exactly one Euler
    (DDIM) step t -> t_min of the network's eps, in VE units (Song et al. 2023, eq. 3 and Appendix C)."""
    sched = S.LinearVP()
    exact = GAUSS.denoiser(sched, "eps")
    net = exact.net if parameterisation == "euler" else (lambda x, t: torch.full_like(x, 3.0))
    cm = ConsistencyDenoiser(net, sched, parameterisation, prediction="eps")
    x = torch.randn(32, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(cm(x, cm.t_min), x / sched.alpha(cm.t_min), atol=1e-12)
    if parameterisation == "euler":
        ddim_to_tmin = sample(exact, x, "ddim", grid=[0.5, cm.t_min]) / sched.alpha(cm.t_min)
        assert torch.allclose(cm(x, 0.5), ddim_to_tmin, atol=1e-12)
    else:
        sig, sd, smin = sched.sigma_ve(0.5).item(), cm.sigma_data, cm.sigma_min_ve
        c_skip = sd**2 / ((sig - smin) ** 2 + sd**2)
        c_out = (sig - smin) * sd / math.sqrt(sig**2 + sd**2)
        assert torch.allclose(cm(x, 0.5), c_skip * x / sched.alpha(0.5) + 3.0 * c_out, atol=1e-12)


@pytest.mark.parametrize("solver", ["ddim", "heun", "dpm++2m", "unipc"])
def test_teacher_step_is_the_core_sampler_on_each_sample(solver):
    """Per-sample teacher steps equal the core sampler run sample by sample; with sub-steps they converge to the
    exact Gaussian PF-ODE map."""
    sched = S.LinearVP()
    teacher = GAUSS.denoiser(sched, "eps")
    grid = consistency_grid(sched, 6)
    x = torch.randn(12, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    n = torch.arange(12) % 6
    t, s = grid[n], grid[n + 1]
    out = teacher_step(teacher, x, t, s, solver)
    for i in range(12):
        one = METHODS[solver](teacher, x[i : i + 1], torch.stack([t[i], s[i]]))
        assert torch.allclose(out[i : i + 1], one, rtol=1e-10, atol=1e-10)
    exact = torch.cat([GAUSS.ode_endpoint(x[i : i + 1], sched, t[i].item(), s[i].item()) for i in range(12)])
    fine = teacher_step(teacher, x, t, s, solver, substeps=16)
    assert _rms(fine, exact) < 0.2 * _rms(out, exact) and _rms(fine, exact) < 2e-2


def test_distilled_consistency_function_reaches_the_ode_endpoint_in_one_step():
    """Acceptance: from the exact Gaussian teacher (Heun steps, 8 sub-steps, 4 intervals), the distilled f maps
    x_1 to the exact PF-ODE endpoint (t = 0) within 1e-2 RMS in one step; the teacher's own one-step DDIM is off
    by RMS ~0.7. f at the interior grid times is checked the same way (fixed grid: the student has one slot per
    grid time)."""
    torch.manual_seed(0)
    sched = S.LinearVP()
    teacher = GAUSS.denoiser(sched, "eps")
    intervals = 4
    grid = consistency_grid(sched, intervals)
    data = GAUSS.sample(20000, torch.Generator().manual_seed(0))
    config = TrainConfig(steps=300, batch_size=512, lr=5e-2, ema_decay=None, grad_clip=None, progress=False,
                         log_every=300, ckpt_every=300, device="cpu")
    cm = consistency_distillation(teacher, data, student_net=SlotAffine(sched, grid, GAUSS.mean), prediction="x0",
                                  intervals=intervals, solver="heun", substeps=8, random_shift=False, config=config)
    x = torch.randn(2000, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    exact = GAUSS.ode_endpoint(x, sched, 1.0, 0.0)
    one = sample(cm, x, "consistency", 1)
    assert _rms(one, exact) < 1e-2
    assert _rms(sample(teacher, x, "ddim", 1), exact) > 0.5
    for t in grid[1:-1].tolist():
        x_t = GAUSS.ode_endpoint(x, sched, 1.0, t)
        assert _rms(cm(x_t, t), exact) < 2e-2, t


def test_clip_clamps_the_euler_x0_and_round_trips_through_spec():
    """clip=(low, high): f is the Euler step to t_min from the clamped x0 (DDPM's clipped sampling), checked
    against the formula; spec rebuilds the same model; "edm" refuses clip."""
    sched = S.LinearVP()
    exact = GAUSS.denoiser(sched, "eps")
    cm = ConsistencyDenoiser(exact.net, sched, "euler", prediction="eps", clip=(-0.5, 0.5))
    x = 3.0 * torch.randn(64, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    t = 0.6
    a, s_, smin = sched.alpha(t), sched.sigma(t), cm.sigma_min_ve
    x0 = exact.predict(x, t).x0.clamp(-0.5, 0.5)
    sig = s_ / a
    assert torch.allclose(cm(x, t), (smin / sig) * x / a + (1 - smin / sig) * x0, atol=1e-12)
    assert not torch.allclose(cm(x, t), ConsistencyDenoiser(exact.net, sched, "euler", prediction="eps")(x, t))
    again = ConsistencyDenoiser(exact.net, sched, **cm.spec)
    assert cm.spec["clip"] == [-0.5, 0.5] and torch.equal(again(x, t), cm(x, t))
    with pytest.raises(ValueError, match="clip"):
        ConsistencyDenoiser(exact.net, sched, "edm", clip=(-1, 1))


def test_t_max_starts_the_training_grid_there():
    """consistency_grid(t_max=...) runs from t_max down to t_min on the same Karras spacing in sigma~; the
    distillation trains only on pairs inside it; a t_max at or below t_min is refused."""
    sched = S.LinearVP()
    grid = consistency_grid(sched, 6, t_max=0.5)
    assert grid[0].item() == pytest.approx(0.5, abs=1e-12) and grid[-1].item() == pytest.approx(sched.t_min)
    sig = sched.sigma_ve(grid)
    lo, hi = sig[-1].item() ** (1 / 7), sig[0].item() ** (1 / 7)
    expected = torch.tensor([hi + i / 6 * (lo - hi) for i in range(7)], dtype=F64) ** 7
    assert torch.allclose(sig, expected, rtol=1e-9)
    t_hi, t_lo = grid_pairs(sched, grid, 500, random_shift=True, generator=torch.Generator().manual_seed(0))
    assert t_hi.max() <= 0.5 + 1e-12 and (t_lo < t_hi).all()
    with pytest.raises(ValueError, match="t_max"):
        consistency_grid(sched, 6, t_max=sched.t_min)


class ShiftedSlotAffine(SlotAffine):
    """SlotAffine for data GAUSS + shift, the shift given per sample as conditioning: exact at the grid times."""

    def forward(self, x, t, *, shift):
        a = self.schedule.alpha(t.to(F64))[:, None]
        return super().forward(x - a * shift, t) + shift


def test_conditional_distillation_reads_cond_and_mask_from_the_batch():
    """batch_fn hands the conditioning to teacher and student: data GAUSS + shift with a per-sample shift, the exact
    conditional teacher (the Gaussian's eps at x_t - alpha shift); the distilled f maps x_1 to the exact
    conditional PF-ODE endpoint in one step. A loss mask that hides coordinate 3 leaves its slots untrained (w, b
    stay exactly 0, so f is off the endpoint there) while the other coordinates still match it."""
    sched = S.LinearVP()
    exact = GAUSS.denoiser(sched, "eps")

    def teacher_net(x, t, *, shift):
        return exact.net(x - sched.alpha(t.to(F64))[:, None] * shift, t)

    from omnidiffusion.core import Denoiser

    teacher = Denoiser(teacher_net, sched, "eps")
    intervals = 4
    grid = consistency_grid(sched, intervals)
    g = torch.Generator().manual_seed(0)
    shift = 2.0 * torch.randn(20000, 4, generator=g, dtype=F64)
    data = torch.utils.data.TensorDataset(GAUSS.sample(20000, g) + shift, shift)
    hide = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=F64)[None]
    config = TrainConfig(steps=300, batch_size=512, lr=5e-2, ema_decay=None, grad_clip=None, progress=False,
                         log_every=300, ckpt_every=300, device="cpu")
    x = torch.randn(2000, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    c = 2.0 * torch.randn(2000, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    truth = GAUSS.ode_endpoint(x - sched.alpha(1.0) * c, sched, 1.0, 0.0) + c
    for mask in (None, hide):
        student = ShiftedSlotAffine(sched, grid, GAUSS.mean)
        cm = consistency_distillation(
            teacher, data, student_net=student, prediction="x0", intervals=intervals, solver="heun", substeps=8,
            random_shift=False, config=config,
            batch_fn=lambda b, m=mask: (b[0], {"shift": b[1]}) if m is None else (b[0], {"shift": b[1]}, m),
        )
        one = sample(cm, x, "consistency", 1, shift=c)
        if mask is None:
            assert _rms(one, truth) < 1e-2
        else:
            assert _rms(one[:, :3], truth[:, :3]) < 1.5e-2  # same steps, 3/4 of the entries per sample
            assert torch.all(cm.net.w[:, 3] == 0) and torch.all(cm.net.b[:, 3] == 0)
            assert _rms(one[:, 3], truth[:, 3]) > 0.05
    with pytest.raises(ValueError, match="batch_fn"):
        consistency_distillation(teacher, data, student_net=ShiftedSlotAffine(sched, grid, GAUSS.mean),
                                 prediction="x0", intervals=intervals, config=config, batch_fn=lambda b: [b[0]])


def test_ema_target_network_follows_the_paper_update_and_resumes_exactly(tmp_path):
    """CD with an EMA target f^- (Song et al. 2023, Algorithm 2): after each optimiser step theta^- <- mu theta^- +
    (1 - mu) theta, checked against that recursion run by hand over the student's weights at every step; and a
    run interrupted after a checkpoint and resumed equals the uninterrupted run (the target lives in the
    checkpoint), which would fail if the target restarted as a copy of the student."""
    sched = S.LinearVP()
    teacher = GAUSS.denoiser(sched, "eps")
    data = GAUSS.sample(256, torch.Generator().manual_seed(0)).float()
    mu = 0.7
    seen = {"calls": None, "weights": []}  # forward calls left before a simulated crash; online weights per step

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, 4))

        def forward(self, x, t):
            if seen["calls"] is not None:
                seen["calls"] -= 1
                if seen["calls"] < 0:
                    raise KeyboardInterrupt("simulated crash")
            return self.body(x)

    def cfg(steps):
        return TrainConfig(steps=steps, batch_size=64, lr=1e-2, ema_decay=None, progress=False, log_every=2,
                           ckpt_every=4, device="cpu")

    targets = []
    import omnidiffusion.core.consistency as C

    real_loss = C.consistency_distillation_loss

    def spy(student, teacher_, x0, grid, *, target=None, **kw):
        seen["weights"].append([p.detach().clone() for p in student.net.net.parameters()])  # inside the wrapper
        targets.append([p.detach().clone() for p in target.net.parameters()])
        return real_loss(student, teacher_, x0, grid, target=target, **kw)

    C.consistency_distillation_loss = spy
    try:
        kw = {"student_net": None, "prediction": "x0", "intervals": 4, "solver": "ddim", "target_ema": mu}
        full = consistency_distillation(teacher, data, **{**kw, "student_net": Net()}, config=cfg(8),
                                        out_dir=tmp_path / "a")
        # The recursion by hand: the target starts as the initial student, then moves once per step.
        expect = seen["weights"][0]
        for k in range(1, 8):
            expect = [mu * e + (1 - mu) * w for e, w in zip(expect, seen["weights"][k], strict=True)]
            for got, want in zip(targets[k], expect, strict=True):
                assert torch.allclose(got, want, atol=1e-6), k
        seen["calls"] = 2 * 5 + 1  # two student calls per step (target, online): crash inside step 6
        with pytest.raises(KeyboardInterrupt):
            consistency_distillation(teacher, data, **{**kw, "student_net": Net()}, config=cfg(8),
                                     out_dir=tmp_path / "b")
        seen["calls"] = None
        resumed = consistency_distillation(teacher, data, **{**kw, "student_net": Net()}, config=cfg(8),
                                           out_dir=tmp_path / "b")
    finally:
        C.consistency_distillation_loss = real_loss
    for p, q in zip(full.net.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(p, q)


def test_grid_pairs_are_adjacent_grid_times_or_one_shifted_interval():
    """Without shift the pairs are neighbours on the grid. With random_shift, on a log-SNR-uniform grid (all
    intervals of length h in lambda) every pair but the last interval's is exactly h apart in lambda, the noisier
    time is uniform in lambda over the grid's range (checked by its quantiles), and a fraction 1/N of pairs ends
    on the boundary t_N (binomial 5-sigma band)."""
    sched = S.LinearVP()
    N, B = 8, 8000
    grid = make_grid(sched, "logsnr", N, t_end=sched.t_min)
    lam = sched.log_snr(grid)
    g = torch.Generator().manual_seed(0)
    hi, lo = grid_pairs(sched, grid, 500, generator=g)
    idx = (hi[:, None] == grid[None]).float().argmax(1)
    assert torch.equal(hi, grid[idx]) and torch.equal(lo, grid[idx + 1])
    hi, lo = grid_pairs(sched, grid, B, random_shift=True, generator=g)
    assert bool((hi > lo).all()) and hi.max() <= 1.0 and lo.min() >= grid[-1]
    h = (lam[1] - lam[0]).item()
    last = lo == grid[-1]
    assert torch.allclose(sched.log_snr(lo[~last]) - sched.log_snr(hi[~last]), torch.full_like(lo[~last], h),
                          atol=1e-6)
    assert abs(last.double().mean().item() - 1 / N) < 5 * math.sqrt((1 / N) * (1 - 1 / N) / B)
    u = (sched.log_snr(hi) - lam[0]) / (lam[-1] - lam[0])  # uniform on [0, 1)
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=F64)
    assert torch.allclose(torch.quantile(u, q), q, atol=0.025)  # 4.5 standard errors at the median


def test_ict_schedule_pieces_follow_the_paper():
    """N(k) doubles from s0 to s1 in log2(s1/s0) + 1 equal stages; the lognormal weights are the N(P_mean,
    P_std^2) mass of log sigma~ between grid neighbours (checked against the normal CDF)."""
    K = 8000
    stages = [ict_intervals(k, K) for k in range(0, K, 1)]
    assert stages[0] == 10 and stages[-1] == 1280 and sorted(set(stages)) == [10, 20, 40, 80, 160, 320, 640, 1280]
    assert stages.count(10) == K // 8
    sched = S.LinearVP()
    grid = consistency_grid(sched, 40)
    w = lognormal_weights(sched, grid, -1.1, 2.0)
    normal = torch.distributions.Normal(torch.tensor(-1.1, dtype=F64), torch.tensor(2.0, dtype=F64))
    mass = normal.cdf(torch.log(sched.sigma_ve(grid[:-1]))) - normal.cdf(torch.log(sched.sigma_ve(grid[1:])))
    assert torch.allclose(w, mass / mass.sum(), atol=1e-12)
    assert abs(w.sum().item() - 1.0) < 1e-12


def test_consistency_training_runs_through_fit_and_resumes_its_curriculum(tmp_path):
    """CT without a teacher: a short run in one call equals the same run interrupted and resumed (the
    curriculum counter lives in the checkpoint), and the result samples with method="consistency"."""
    sched = S.LinearVP()
    data = GAUSS.sample(512, torch.Generator().manual_seed(0)).float()

    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 32), nn.SiLU(), nn.Linear(32, 4))

    budget = {"calls": None}  # forward calls left before a simulated crash (None: no crash)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = make()

        def forward(self, x, t):
            if budget["calls"] is not None:
                budget["calls"] -= 1
                if budget["calls"] < 0:
                    raise KeyboardInterrupt("simulated crash")
            return self.body(x)

    def cfg(steps):
        return TrainConfig(steps=steps, batch_size=64, lr=1e-3, ema_decay=0.9, progress=False, log_every=2,
                           ckpt_every=4, device="cpu")

    full = consistency_training(Net(), data, sched, s0=2, s1=8, config=cfg(8), out_dir=tmp_path / "a")
    budget["calls"] = 2 * 5 + 1  # two calls per step (target and online): crash inside step 6, after the step-4 ckpt
    with pytest.raises(KeyboardInterrupt):
        consistency_training(Net(), data, sched, s0=2, s1=8, config=cfg(8), out_dir=tmp_path / "b")
    budget["calls"] = None
    resumed = consistency_training(Net(), data, sched, s0=2, s1=8, config=cfg(8), out_dir=tmp_path / "b")
    for p, q in zip(full.net.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(p, q)
    x = sample(full, (16, 4), "consistency", 2, "quadratic", generator=torch.Generator().manual_seed(0))
    assert x.shape == (16, 4) and torch.isfinite(x).all()


def test_bad_arguments_are_refused():
    sched = S.LinearVP()
    teacher = GAUSS.denoiser(sched, "eps")
    with pytest.raises(ValueError, match="parameterisation: expected one of"):
        ConsistencyDenoiser(teacher.net, sched, "song")
    with pytest.raises(ValueError, match="t_min: expected a finite number in"):
        ConsistencyDenoiser(teacher.net, sched, t_min=0.0)
    with pytest.raises(ValueError, match="solver: expected a deterministic core sampler"):
        teacher_step(teacher, torch.zeros(2, 4, dtype=F64), torch.tensor([0.5, 0.5]), torch.tensor([0.1, 0.1]),
                     "ddpm")
    with pytest.raises(ValueError, match="t, s: expected 0 < s < t"):
        teacher_step(teacher, torch.zeros(2, 4, dtype=F64), torch.tensor([0.5, 0.5]), torch.tensor([0.6, 0.1]))
    with pytest.raises(ValueError, match="metric: expected one of"):
        consistency_distillation(teacher, GAUSS.sample(8), student_net=nn.Linear(4, 4), metric="lpips")
    with pytest.raises(ValueError, match="s1: expected s1 >= s0"):
        consistency_training(nn.Linear(4, 4), GAUSS.sample(8), sched, s0=20, s1=10)
    with pytest.raises(ValueError, match="intervals: expected an integer >= 1"):
        consistency_grid(sched, 0)
