"""Point-cloud metrics against hand-worked cases and brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from omnidiffusion.vision.points.metrics import chamfer, copy_check, emd, generation_metrics, mmd_cov, one_nna, pairwise


def test_chamfer_hand_worked():
    x = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    y = torch.tensor([[0.0, 0, 0]])
    # x -> y: squared nearest distances 0 and 1 (mean 0.5); y -> x: 0. Squared, summed over both directions.
    assert chamfer(x, y).item() == pytest.approx(0.5)
    assert chamfer(torch.tensor([[0.0, 0, 0]]), torch.tensor([[3.0, 4, 0]])).item() == pytest.approx(50.0)
    assert chamfer(x, x).item() == 0.0


def test_chamfer_matches_a_loop_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 7, 3, generator=g), torch.randn(3, 5, 3, generator=g)
    cd = chamfer(x, y)
    for b in range(3):
        d = np.array([[np.sum((p - q) ** 2) for q in y[b].numpy()] for p in x[b].numpy()])
        assert cd[b].item() == pytest.approx(d.min(1).mean() + d.min(0).mean(), rel=1e-6)
    torch.testing.assert_close(cd, chamfer(y, x))


def test_emd_hand_worked():
    x = torch.tensor([[0.0, 0, 0], [2, 0, 0]])
    y = torch.tensor([[1.0, 0, 0], [3, 0, 0]])
    # matching 0->1, 2->3 costs 1 + 1; the other matching costs 3 + 1: mean matched distance 1
    assert emd(x, y).item() == pytest.approx(1.0)
    sq = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    assert emd(sq, sq + torch.tensor([0.0, 1, 0])).item() == pytest.approx(1.0)


def test_emd_equals_brute_force_over_permutations():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    d = torch.cdist(x.double(), y.double()).numpy()
    best = min(d[range(6), list(p)].mean() for p in itertools.permutations(range(6)))
    assert emd(x, y).item() == pytest.approx(best, rel=1e-9)
    assert emd(x, x[torch.randperm(6, generator=g)]).item() == pytest.approx(0.0, abs=1e-12)


def test_mmd_cov_hand_worked():
    d_rs = torch.tensor([[1.0, 5.0], [2.0, 0.5], [3.0, 4.0]])  # 3 references x 2 generated
    mmd, cov = mmd_cov(d_rs)
    assert mmd == pytest.approx((1 + 0.5 + 3) / 3)
    assert cov == pytest.approx(2 / 3)  # s0 -> r0, s1 -> r1


def test_one_nna_hand_worked():
    # two references close to each other, two generated far from both: every neighbour has the own label
    d_rr = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    d_ss = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    d_rs = torch.full((2, 2), 9.0)
    assert one_nna(d_rr, d_ss, d_rs) == 1.0
    # each generated cloud sits next to one reference: all four nearest neighbours cross labels
    d_rs = torch.tensor([[0.1, 9.0], [9.0, 0.1]])
    assert one_nna(d_rr, d_ss, d_rs) == 0.0
    # only r0 / s0 are paired: r1 and s1 keep own-label neighbours -> 2 of 4 right
    d_rs = torch.tensor([[0.1, 9.0], [9.0, 9.0]])
    assert one_nna(d_rr, d_ss, d_rs) == 0.5


def test_generation_metrics_separate_blobs_from_shapes():
    from omnidiffusion.vision.points.baselines import blob_baseline
    from omnidiffusion.vision.points.shapes import make_shapes

    ref, _ = make_shapes(10, 64, seed=0)
    other, _ = make_shapes(10, 64, seed=1)
    blobs = blob_baseline(10, 64, ref, torch.Generator().manual_seed(0))
    m_blob = generation_metrics(blobs, ref, ("cd",))
    m_real = generation_metrics(torch.as_tensor(other), ref, ("cd",))
    assert m_blob["1nna_cd"] >= 0.9  # blobs are each other's neighbours
    assert m_real["1nna_cd"] < m_blob["1nna_cd"]
    assert m_real["mmd_cd"] < m_blob["mmd_cd"]


def test_pairwise_matches_single_calls():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(3, 8, 3, generator=g), torch.randn(4, 8, 3, generator=g)
    for metric, fn in (("cd", chamfer), ("emd", emd)):
        d = pairwise(a, b, metric, block=3)
        for i in range(3):
            for j in range(4):
                assert d[i, j].item() == pytest.approx(fn(a[i], b[j]).item(), rel=1e-9)


def test_copy_check_flags_a_copied_cloud():
    from omnidiffusion.vision.points.shapes import make_shapes

    train, _ = make_shapes(20, 64, seed=0)
    fresh, _ = make_shapes(4, 64, seed=5)
    g = torch.Generator().manual_seed(0)
    copied = torch.as_tensor(train[:2]) + 1e-3 * torch.randn(2, 64, 3, generator=g)
    assert copy_check(torch.as_tensor(fresh), torch.as_tensor(train))["copies"] == 0
    assert copy_check(torch.cat([torch.as_tensor(fresh), copied]), torch.as_tensor(train))["copies"] == 2


def test_metric_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        chamfer(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="equal size"):
        emd(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="finite"):
        chamfer(torch.full((3, 3), float("nan")), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="metric"):
        pairwise(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), "hausdorff")
