"""The point network and model: exact permutation equivariance, PVD-style known points, save/load, overfitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnidiffusion.core import ForwardProcess, denoising_loss
from omnidiffusion.vision.points.model import KnownPoints, PointDiffusionModel
from omnidiffusion.vision.points.network import PointDenoiserNet
from omnidiffusion.vision.points.pipeline import PointCloudDiffusion
from omnidiffusion.vision.points.training import PointsLoss


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-zero weights everywhere (the residual MLPs start at zero, which would hide a broken block)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("inducing,local", [(0, False), (4, False), (0, True), (4, True)])
def test_network_is_permutation_equivariant_float64(inducing, local):
    net = PointDenoiserNet(width=16, depth=3, inducing=inducing, heads=2, local=local).double().eval()
    _randomise(net)
    g = torch.Generator().manual_seed(1)
    x = 0.3 * torch.randn(2, 23, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0.3, 0.9], dtype=torch.float64)
    known = torch.rand(2, 23, generator=g) < 0.3
    perm = torch.randperm(23, generator=g)
    with torch.no_grad():
        out = net(x, t, known)
        out_p = net(x[:, perm], t, known[:, perm])
    torch.testing.assert_close(out_p, out[:, perm], rtol=0, atol=1e-12)
    # not trivially so: the output depends on the other points (set context) and on the known flags
    with torch.no_grad():
        moved = x.clone()
        moved[:, 0] += 1.0
        assert (net(moved, t, known)[:, 1:] - out[:, 1:]).abs().max() > 1e-6
        assert (net(x, t, ~known) - out).abs().max() > 1e-6


def test_known_points_stay_clean_and_carry_their_noise():
    model = PointDiffusionModel(n_points=12, width=16, depth=1, inducing=0, heads=2).double()
    _randomise(model)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 12, 3, generator=g, dtype=torch.float64)
    known = torch.zeros(2, 12, dtype=torch.bool)
    known[:, :4] = True
    noise = torch.randn(2, 12, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    x_t = ForwardProcess(model.schedule).q_sample(x0, t, noise)
    den = KnownPoints(model.denoiser(), x0, known)
    out = den.predict(x_t, t)
    torch.testing.assert_close(out.x0[:, :4], x0[:, :4], rtol=0, atol=0)
    torch.testing.assert_close(out.eps[:, :4], noise[:, :4])  # so the loss there is exactly zero
    # the network saw the clean known values, not the noisy ones
    x_in = x_t.clone()
    x_in[:, :4] = x0[:, :4]
    direct = model.denoiser().predict(x_in, t, known=known)
    torch.testing.assert_close(out.x0[:, 4:], direct.x0[:, 4:])
    # the masked loss: rows with known points count only the free points
    full = denoising_loss(den, x0, t=t, noise=noise, reduce=False)
    free = ((direct.eps[:, 4:] - noise[:, 4:]) ** 2).mean(dim=(1, 2)) * 8 / 12
    torch.testing.assert_close(full, free)


def test_completion_returns_the_partial_exactly_and_generation_shapes():
    model = PointDiffusionModel(
        n_points=16, width=16, depth=1, inducing=2, heads=2, schedule={"name": "linear", "timesteps": 50}
    )
    partial = torch.randn(3, 5, 3)
    for method in ("ddpm", "dpm++2m"):
        out = model.complete(partial, method=method, steps=5, generator=torch.Generator().manual_seed(0))
        assert out.shape == (3, 16, 3)
        torch.testing.assert_close(out[:, :5], partial, rtol=0, atol=0)
        gen = model.generate(4, 10, method=method, steps=5, generator=torch.Generator().manual_seed(0), batch_size=3)
        assert gen.shape == (4, 10, 3) and torch.isfinite(gen).all()
    with pytest.raises(ValueError, match="partial"):
        model.complete(torch.randn(1, 16, 3))
    with pytest.raises(ValueError, match="partial"):
        model.complete(torch.randn(1, 4, 2))
    with pytest.raises(ValueError, match="finite"):
        model.complete(torch.full((1, 4, 3), float("nan")))
    with pytest.raises(ValueError, match="prediction"):
        PointDiffusionModel(prediction="score")


def test_save_load_and_pipeline(tmp_path):
    model = PointDiffusionModel(
        n_points=12, width=16, depth=1, inducing=2, heads=2, schedule={"name": "linear", "timesteps": 20}
    )
    _randomise(model)
    model.save_pretrained(tmp_path)
    pipe = PointCloudDiffusion.from_pretrained(tmp_path, steps=4)
    x = torch.randn(2, 12, 3)
    t = torch.tensor([0.1, 0.5])
    with torch.no_grad():
        torch.testing.assert_close(pipe.model(x, t), model(x, t))
    clouds = pipe.generate(3)
    assert clouds.shape == (3, 12, 3) and clouds.dtype == np.float32
    partial = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    full = pipe.complete(partial)
    assert full.shape == (12, 3)
    np.testing.assert_array_equal(full[:4], partial)
    with pytest.raises(ValueError, match="partial"):
        pipe.complete(np.zeros((4, 2)))


def test_overfit_loss_falls():
    from omnidiffusion.vision.points.shapes import make_shapes

    torch.manual_seed(0)
    clouds = torch.as_tensor(make_shapes(4, 64, seed=0)[0])
    model = PointDiffusionModel(
        n_points=64, width=32, depth=2, inducing=0, heads=2, schedule={"name": "linear", "timesteps": 100}
    )
    loss_fn = PointsLoss(complete_frac=0.5, n_known=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def held_loss() -> float:  # the same draws of t, noise, rotations and cuts each time
        torch.manual_seed(123)
        with torch.no_grad():
            return float(np.mean([loss_fn(model, clouds).item() for _ in range(8)]))

    before = held_loss()
    torch.manual_seed(0)
    for _ in range(150):
        loss = loss_fn(model, clouds)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_loss() < 0.7 * before
