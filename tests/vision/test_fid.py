"""FID Inception (the 2015-12-05 graph's structure on torchvision's modules), Inception Score closed forms,
statistics files, and `evaluate --task fid` end to end with random weights written to disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models import inception as tv

from omnidiffusion.core.metrics import gaussian_frechet_distance
from omnidiffusion.vision import fid
from omnidiffusion.vision.cli import cli

from .test_cli import TINY


def _randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (init_weights=False leaves torch's defaults: BN is identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
                else:
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return module.eval()


def test_padding_free_average_pool_counts_only_real_pixels():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    got = fid._padding_free_avg_pool(x)
    sums = F.conv2d(F.pad(x, (1, 1, 1, 1)).reshape(6, 1, 7, 8), torch.ones(1, 1, 3, 3, dtype=x.dtype)).reshape(x.shape)
    counts = F.conv2d(F.pad(torch.ones(1, 1, 5, 6, dtype=x.dtype), (1, 1, 1, 1)), torch.ones(1, 1, 3, 3, dtype=x.dtype))
    torch.testing.assert_close(got, sums / counts)
    assert counts[0, 0, 0, 0] == 4 and counts[0, 0, 2, 2] == 9  # corner and interior windows


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs", "pool"),
    [
        (fid._BlockA, tv.InceptionA, {"in_channels": 8, "pool_features": 4}, "avg"),
        (fid._BlockC, tv.InceptionC, {"in_channels": 8, "channels_7x7": 4}, "avg"),
        (fid._BlockE, tv.InceptionE, {"in_channels": 8}, "avg"),
        (fid._BlockE, tv.InceptionE, {"in_channels": 8}, "max"),
    ],
)
def test_graph_blocks_change_only_the_pool_branch_at_the_border(ours, theirs, kwargs, pool):
    a, b = _randomise(ours(**kwargs)), theirs(**kwargs)
    if pool == "max":
        a.pool = fid._max_pool
    b.load_state_dict(a.state_dict())
    b.eval()
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        pa, pb = a._forward(x), b._forward(x)
        want = a.branch_pool(F.max_pool2d(x, 3, 1, 1) if pool == "max" else fid._padding_free_avg_pool(x))
    for got, ref in zip(pa[:-1], pb[:-1], strict=True):
        torch.testing.assert_close(got, ref)  # every other branch is torchvision's
    torch.testing.assert_close(pa[-1], want)
    if pool == "avg":  # a 1x1 conv after the pool: interior windows see no padding, so they agree with torchvision
        torch.testing.assert_close(pa[-1][..., 1:-1, 1:-1], pb[-1][..., 1:-1, 1:-1])
        assert not torch.allclose(pa[-1][..., 0, 0], pb[-1][..., 0, 0])


def test_weights_load_from_pth_and_safetensors_and_mismatches_are_named(tmp_path):
    net = _randomise(fid.FIDInception(), seed=1)
    state = {k: v for k, v in net.net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "pt_inception.pth")
    save_file(state, tmp_path / "inception.safetensors")
    x = torch.rand(3, 3, 32, 32)
    want_f, want_z = fid.inception_outputs(net, x)
    assert want_f.shape == (3, fid.FEATURES) and want_z.shape == (3, fid.CLASSES)
    for name in ("pt_inception.pth", "inception.safetensors"):
        f, z = fid.inception_outputs(fid.load_fid_inception(tmp_path / name), x)
        np.testing.assert_array_equal(f, want_f)
        np.testing.assert_array_equal(z, want_z)
    # features are the mean over the last block's map, logits its fc: checked against torchvision's own forward
    with torch.no_grad():
        z_tv = net.net(2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1)
    np.testing.assert_allclose(want_z, z_tv.double().numpy(), rtol=1e-5, atol=1e-5)
    torch.save({k: v for k, v in state.items() if k != "fc.bias"}, tmp_path / "short.pth")
    with pytest.raises(ValueError, match=r"--inception: .*short.pth: weights do not match .*missing \['fc.bias'\]"):
        fid.load_fid_inception(tmp_path / "short.pth")
    torch.save({**state, "fc.weight": torch.zeros(1000, 2048)}, tmp_path / "imagenet.pth")
    with pytest.raises(ValueError, match=r"shapes differ .*fc.weight \(1000, 2048\) vs \(1008, 2048\)"):
        fid.load_fid_inception(tmp_path / "imagenet.pth")
    torch.save({"net": torch.nn.Linear(2, 2)}, tmp_path / "object.pth")
    with pytest.raises(ValueError, match="refused"):
        fid.load_fid_inception(tmp_path / "object.pth")


def test_inception_score_closed_forms():
    same = np.tile(np.random.default_rng(0).normal(size=(1, 7)), (40, 1))
    assert fid.inception_score(same, splits=4) == pytest.approx((1.0, 0.0), abs=1e-12)  # p(y|x) = p(y): KL 0
    onehot = 60.0 * np.eye(8)[np.arange(80) % 8]  # confident and balanced: IS = number of classes
    mean, std = fid.inception_score(onehot, splits=10)
    assert mean == pytest.approx(8.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    # two classes at p = (0.9, 0.1) and (0.1, 0.9), balanced: exp(KL to (0.5, 0.5))
    logits = np.log(np.array([[0.9, 0.1], [0.1, 0.9]] * 10))
    kl = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    assert fid.inception_score(logits, splits=1)[0] == pytest.approx(np.exp(kl), rel=1e-12)
    with pytest.raises(ValueError, match="N >= splits"):
        fid.inception_score(onehot[:5], splits=10)


def test_statistics_file_round_trip_and_refusals(tmp_path):
    feats = np.random.default_rng(0).normal(size=(50, 4))
    mu, sigma = fid.feature_statistics(feats)
    np.testing.assert_allclose(sigma, np.cov(feats.T), rtol=1e-12)
    fid.write_statistics(tmp_path / "ref.npz", mu, sigma)
    mu2, sigma2 = fid.read_statistics(tmp_path / "ref.npz")
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    np.savez(tmp_path / "obj.npz", mu=np.array([object()], dtype=object), sigma=np.eye(1))
    with pytest.raises(ValueError, match="--fid-stats: .*obj.npz: expected an .npz with arrays mu and sigma"):
        fid.read_statistics(tmp_path / "obj.npz")
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3), sigma=np.eye(2))
    with pytest.raises(ValueError, match=r"mu \(D,\) and sigma \(D, D\)"):
        fid.read_statistics(tmp_path / "bad.npz")


def test_evaluate_fid_cli_on_a_written_cifar_folder(tmp_path, capsys, cli_error):
    net = _randomise(fid.FIDInception(), seed=2)
    torch.save(net.net.state_dict(), tmp_path / "inception.pth")
    folder = tmp_path / "cifar" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = [np.concatenate([rng.integers(0, 10, (2, 1)), rng.integers(0, 256, (2, 3072))], 1) for _ in range(5)]
    for i, rec in enumerate(train, start=1):
        (folder / f"data_batch_{i}.bin").write_bytes(rec.astype(np.uint8).tobytes())
    run = tmp_path / "ddpm"
    tiny = [*TINY, "--set", "schedule.timesteps=20", "--set", "train.steps=2"]
    assert cli.main(["train", "--config", "ddpm-faces", "--out", str(run), *tiny]) == 0
    capsys.readouterr()
    args = ["evaluate", "--task", "fid", "--checkpoint", run, "--inception", tmp_path / "inception.pth"]
    sets = ["--set", "sampler.steps=3", "--set", "sampler.method=ddim", "--set", "sampler.batch_size=6"]
    assert cli.main([str(a) for a in [*args, "--fid-ref", tmp_path / "cifar", "--n", "10", *sets]]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reference"]["images"] == 10 and report["protocol"]["samples"] == 10
    # the FID against the reference's own statistics: the real images' features through an independent path
    real = np.concatenate(train)[:, 1:].reshape(10, 3, 32, 32) / 255.0
    with torch.no_grad():
        f_real = net(torch.as_tensor(real, dtype=torch.float32))[0].double().numpy()
    fid.write_statistics(tmp_path / "ref.npz", f_real.mean(0), np.cov(f_real.T))
    assert cli.main([str(a) for a in [*args, "--fid-ref", tmp_path / "ref.npz", "--n", "10", *sets]]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["model"]["fid"] == pytest.approx(report["model"]["fid"], rel=1e-6)  # same seed, same samples
    assert report["model"]["fid"] > 0 and np.isfinite(report["model"]["is_mean"])
    # the same generated images scored by hand: ddim 3 steps from the run, grey expanded to RGB
    from omnidiffusion.vision.imaging import to_pixel_range
    from omnidiffusion.vision.priors import load_image_prior

    model, gen = load_image_prior(str(run), "cpu"), torch.Generator().manual_seed(0)
    x = torch.cat([to_pixel_range(model.generate(k, method="ddim", steps=3, generator=gen)) for k in (6, 4)])
    with torch.no_grad():
        f_gen = net(x.expand(-1, 3, -1, -1))[0].double().numpy()
    want = gaussian_frechet_distance(f_gen.mean(0), np.cov(f_gen.T), f_real.mean(0), np.cov(f_real.T))
    assert report["model"]["fid"] == pytest.approx(want, rel=1e-4)
    cli_error(cli, [*args[:-2], "--fid-ref", tmp_path / "cifar"], "--inception: expected the FID Inception")
    cli_error(cli, args, "--fid-ref: expected the reference")
    cli_error(cli, [*args, "--fid-ref", tmp_path / "cifar", "--n", "5"], "n: expected at least 10")
