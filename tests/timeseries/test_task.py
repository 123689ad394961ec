"""Masks, interpolation, conditioning and the masked loss: shapes, exact rates, observed values kept exactly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from omnidiffusion.timeseries import baselines, masks
from omnidiffusion.timeseries.models import CSDINet
from omnidiffusion.timeseries.task import CSDITask, linear_interpolation


def _observed(B=6, K=5, L=20, missing=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, K, L, generator=g) > missing


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_fixed_rate_mask_hides_the_requested_share_of_observed_entries(rate):
    observed = _observed()
    cond = masks.fixed_rate_mask(observed, rate, torch.Generator().manual_seed(1))
    assert not (cond & ~observed).any()  # only observed entries can be given
    hidden = (observed & ~cond).flatten(1).sum(1)
    expected = torch.round(rate * observed.flatten(1).sum(1).double()).long()
    assert torch.equal(hidden, expected)


def test_random_mask_rates_spread_over_unit_interval():
    observed = torch.ones(4000, 2, 5, dtype=torch.bool)
    cond = masks.random_mask(observed, torch.Generator().manual_seed(0))
    share = 1.0 - cond.flatten(1).float().mean(1)
    assert abs(share.mean().item() - 0.5) < 0.02  # r ~ U(0, 1)
    assert share.min() == 0.0 and share.max() == 1.0


def test_forecast_historical_and_mix_masks():
    observed = _observed()
    fc = masks.forecast_mask(observed, 3)
    assert not fc[..., -3:].any() and torch.equal(fc[..., :-3], observed[..., :-3])
    hist = masks.historical_mask(observed)
    assert torch.equal(hist, observed & observed.roll(1, 0))
    mix = masks.training_mask(observed, "mix", generator=torch.Generator().manual_seed(0))
    assert not (mix & ~observed).any()
    # with the data's own patterns (PM2.5), sample i is masked by sample i - 1's pattern (CSDI's get_hist_mask)
    patterns = torch.rand(observed.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    hist = masks.training_mask(observed, "historical", patterns=patterns)
    for i in range(observed.shape[0]):
        assert torch.equal(hist[i], observed[i] & patterns[i - 1])
    mix = masks.training_mask(observed, "mix", patterns=patterns, generator=torch.Generator().manual_seed(2))
    from_pattern = [torch.equal(mix[i], hist[i]) for i in range(observed.shape[0])]
    assert any(from_pattern) and not (mix & ~observed).any()
    with pytest.raises(ValueError, match="horizon"):
        masks.forecast_mask(observed, 20)
    with pytest.raises(ValueError, match="strategy"):
        masks.training_mask(observed, "bogus")


def test_linear_interpolation_matches_numpy_interp():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 15))
    known = rng.random((3, 4, 15)) < 0.4
    known[0, 0] = False  # a row with nothing known gets the fill value
    out = linear_interpolation(torch.from_numpy(values), torch.from_numpy(known), fill=0.0).numpy()
    for b in range(3):
        for k in range(4):
            idx = np.flatnonzero(known[b, k])
            expected = np.zeros(15) if idx.size == 0 else np.interp(np.arange(15), idx, values[b, k, idx])
            np.testing.assert_allclose(out[b, k], expected, atol=1e-12)
    assert np.array_equal(baselines.linear_imputation(values, known)[0][known], values[known])


def _tiny_net(K=3):
    torch.manual_seed(0)
    return CSDINet(K, channels=8, layers=1, heads=2, ffn=8, time_dim=8, feature_dim=4, step_dim=8)


@pytest.mark.parametrize("method,steps", [("ddpm", 50), ("dpm++2m", 5)])
def test_impute_keeps_observed_values_exactly(method, steps):
    task, net = CSDITask(), _tiny_net().eval()
    values = torch.randn(2, 3, 10)
    cond = masks.fixed_rate_mask(torch.ones(2, 3, 10, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0))
    out = task.impute(
        net,
        values,
        cond,
        n_samples=4,
        method=method,
        steps=steps,
        generator=torch.Generator().manual_seed(1),
        batch_size=3,
    )
    assert out.shape == (4, 2, 3, 10)
    assert torch.equal(out[:, cond], values[cond].expand(4, -1))
    assert torch.isfinite(out).all()
    assert out[:, ~cond].std(0).min() > 0  # the hidden entries are sampled, not copied


def test_loss_ignores_everything_but_the_hidden_targets():
    # With every entry given as conditioning there is no target; with targets, values outside observed are unused.
    task, net = CSDITask(strategy="forecast", horizon=2, forecast_share=1.0), _tiny_net()
    values = torch.randn(4, 3, 8)
    observed = torch.ones(4, 3, 8, dtype=torch.bool)
    observed[:, 0, -1] = False
    torch.manual_seed(3)
    a = task.loss(net, {"values": values, "observed": observed})
    changed = values.clone()
    changed[:, 0, -1] = 1e6  # an unobserved entry: not a target, not conditioning
    torch.manual_seed(3)
    b = task.loss(net, {"values": changed, "observed": observed})
    assert torch.isfinite(a) and a.item() == pytest.approx(b.item(), rel=1e-6)


def test_tiny_overfit_loss_falls():
    from omnidiffusion.core.training import TrainConfig, fit
    from omnidiffusion.timeseries.data import WindowDataset

    torch.manual_seed(0)
    t = torch.linspace(0, 6.28, 12)
    base = torch.stack([torch.sin(t + p) for p in torch.rand(32) * 6.28])  # (32, L)
    values = torch.stack([base, 2 * base, -base], dim=1)  # (32, 3, 12): features tied together
    observed = torch.ones_like(values, dtype=torch.bool)
    data = WindowDataset({"values": values, "observed": observed})
    task, net = CSDITask(), _tiny_net()
    first = np.mean([task.loss(net, {"values": values[:8], "observed": observed[:8]}).item() for _ in range(20)])
    cfg = TrainConfig(
        steps=200, batch_size=8, lr=3e-3, ema_decay=None, progress=False, log_every=50, ckpt_every=1000, device="cpu"
    )
    import tempfile

    res = fit(net, task.loss, data, cfg, tempfile.mkdtemp())
    last = np.mean(
        [task.loss(res.model, {"values": values[:8], "observed": observed[:8]}).item() for _ in range(20)]
    )
    assert last < 0.7 * first


def test_conditioning_is_level_free_and_window_scale_makes_it_scale_free():
    from omnidiffusion.timeseries.task import conditioning

    values = torch.randn(3, 4, 12)
    cond = masks.fixed_rate_mask(torch.ones(3, 4, 12, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0))
    interp, centred, scale = conditioning(values, cond)
    _, shifted, _ = conditioning(values + 7.0, cond)
    torch.testing.assert_close(shifted, centred, atol=1e-5, rtol=0)  # blind to the level
    assert torch.equal(scale, torch.ones_like(scale))
    _, a, sa = conditioning(values, cond, window_scale=1e-3)
    _, b, sb = conditioning(5.0 * values - 2.0, cond, window_scale=1e-3)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)  # and, with window_scale, to the spread
    torch.testing.assert_close(sb, 5.0 * sa)


def test_window_scale_needs_min_known_entries():
    from omnidiffusion.timeseries.task import conditioning

    values = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [0.5, 0.5, 9.0, 9.0]]])  # (1, 3, 4)
    cond = torch.tensor([[[True, False, True, False], [False, False, False, False], [False, False, True, True]]])
    # feature 0 has two known entries: scaled by its interpolation's spread with min_known=2, z-units with 3
    _, _, s2 = conditioning(values, cond, window_scale=1e-3, min_known=2)
    _, _, s3 = conditioning(values, cond, window_scale=1e-3, min_known=3)
    interp0 = torch.tensor([1.0, 2.0, 3.0, 3.0])  # linear between the ends, flat after the last known entry
    torch.testing.assert_close(s2[0, 0, 0], interp0.std())
    assert s3[0, 0, 0] == 1.0


def test_training_example_is_what_the_loss_scores():
    """CSDITask.training_example gives the loss its pieces: with the same RNG state the hand-made eps-MSE on the
    example's targets equals task.loss, and x0 is zero on the conditioning (the interpolation passes through it)."""
    from omnidiffusion.core.losses import sample_t

    task, net = CSDITask(), _tiny_net()
    values, observed = torch.randn(4, 3, 10), _observed(4, 3, 10)
    batch = {"values": values, "observed": observed}
    torch.manual_seed(5)
    loss = task.loss(net, batch)
    torch.manual_seed(5)
    x0, cond, target = task.training_example(batch)
    t = sample_t(task.schedule, 4)
    noise = torch.randn_like(x0)
    a, s = task.schedule.alpha(t).float()[:, None, None], task.schedule.sigma(t).float()[:, None, None]
    eps_hat = net(a * x0 + s * noise, t.float(), **cond)
    manual = (((eps_hat - noise) ** 2) * target).sum() / target.sum()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    assert torch.equal(target, observed & ~cond["cond_mask"]) and torch.all(x0[cond["cond_mask"]] == 0)


def test_distilled_imputer_moves_towards_the_teachers_ode_solution(tmp_path):
    """distil_imputer on a v-prediction teacher (so its 1-step Euler map is sane at t = 1): the student starts as
    that one-step map; after distillation its 1-step draws land much closer to the teacher's own PF-ODE solution
    (dpm++2m, 40 steps, same noise, masks and seed) on the hidden entries. The folder loads as a consistency
    imputer whose run config samples in 2 steps; observed values come back exactly; a distilled teacher is refused."""
    import pandas as pd

    from omnidiffusion.timeseries.pipeline import Imputer, distil_imputer
    from omnidiffusion.timeseries.settings import load_timeseries_config
    from omnidiffusion.timeseries.training import train

    rng = np.random.default_rng(0)
    t = np.arange(80)[:, None]
    table = pd.DataFrame(np.sin(t / 5 + rng.uniform(0, 6, 3)) + 0.1 * rng.normal(size=(80, 3)), columns=list("abc"))
    over = ["train.steps=200", "train.ckpt_every=200", "train.log_every=100", "train.lr=3e-3", "data.window=8",
            "data.stride=1", "train.batch_size=16", "data.val_fraction=0", "train.progress=false",
            "task.prediction=v"]  # fmt: skip
    train(load_timeseries_config("tiny", over), tmp_path / "teacher", table=table)
    student = distil_imputer(tmp_path / "teacher", tmp_path / "cd", table=table, steps=200, lr=3e-3)
    teacher = Imputer.from_pretrained(tmp_path / "teacher")
    assert student.task.consistency["prediction"] == "v"
    assert (student.config.sampler.method, student.config.sampler.steps) == ("consistency", 2)
    start = Imputer.from_pretrained(tmp_path / "teacher")
    start.task = replace(start.task, consistency=student.task.consistency)

    z = torch.as_tensor(teacher.scaler.transform(*_complete(table)), dtype=torch.float32)
    windows = z[:64].reshape(8, 8, 3).transpose(1, 2).contiguous()
    cond = masks.fixed_rate_mask(torch.ones_like(windows, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0))

    def draw(imp, method, steps):
        return imp.sample_windows(windows, cond, n_samples=8, method=method, steps=steps, seed=3)

    goal = draw(teacher, "dpm++2m", 40)
    hidden = ~cond.expand_as(goal)
    before = (draw(start, "consistency", 1) - goal)[hidden].pow(2).mean().sqrt().item()
    after = (draw(student, "consistency", 1) - goal)[hidden].pow(2).mean().sqrt().item()
    assert after < 0.7 * before, (before, after)
    filled = draw(student, "consistency", 2)
    assert torch.equal(filled[:, cond], windows[cond].expand(8, -1))
    with pytest.raises(ValueError, match="distilled"):
        distil_imputer(tmp_path / "cd", tmp_path / "again", table=table, steps=2)


def _complete(table):
    """(values, observed) of a table without missing entries."""
    values = table.to_numpy(dtype=float)
    return values, np.ones_like(values, dtype=bool)
