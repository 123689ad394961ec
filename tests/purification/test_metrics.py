"""Metrics against independent computations: statsmodels' Wilson interval, numpy norms, hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from statsmodels.stats.proportion import proportion_confint

from omnidiffusion.purification.metrics import (
    accuracy,
    attack_success_rate,
    correct_predictions,
    perturbation_norms,
    summarize,
    wilson_interval,
    worst_case,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (64, 64), (271, 300), (1, 1)])
@pytest.mark.parametrize("conf", [0.9, 0.95])
def test_wilson_interval_matches_statsmodels(k, n, conf):
    lo, hi = wilson_interval(k, n, conf)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - conf, method="wilson")
    assert math.isclose(lo, ref_lo, abs_tol=1e-12) and math.isclose(hi, ref_hi, abs_tol=1e-12)


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError, match="successes, n"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 4, 1.5)


def test_hand_worked_accuracy_worst_case_and_success_rate():
    clean = torch.tensor([1, 1, 1, 0, 1], dtype=torch.bool)
    pgd = torch.tensor([1, 0, 1, 0, 1], dtype=torch.bool)
    apgd = torch.tensor([0, 1, 1, 0, 1], dtype=torch.bool)
    assert accuracy(clean) == 0.8
    assert torch.equal(worst_case([pgd, apgd]), torch.tensor([0, 0, 1, 0, 1], dtype=torch.bool))
    assert attack_success_rate(clean, pgd) == 0.25  # one of the four clean-correct samples flipped
    assert math.isnan(attack_success_rate(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)))
    s = summarize(worst_case([pgd, apgd]))
    assert s["accuracy"] == 0.4 and s["n"] == 5 and s["ci_low"] < 0.4 < s["ci_high"]


def test_correct_predictions_from_logits_or_labels():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]])
    labels = torch.tensor([0, 0, 0])
    assert torch.equal(correct_predictions(logits, labels), torch.tensor([True, False, True]))
    assert torch.equal(correct_predictions(torch.tensor([0, 1, 0]), labels), torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match="labels"):
        correct_predictions(logits, torch.tensor([0, 1]))


def test_perturbation_norms_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.random((3, 1, 4, 4))
    x_adv = np.clip(x + rng.uniform(-0.1, 0.1, x.shape), 0, 1)
    n = perturbation_norms(torch.from_numpy(x_adv), torch.from_numpy(x))
    d = (x_adv - x).reshape(3, -1)
    np.testing.assert_allclose(n["linf"].numpy(), np.abs(d).max(1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(n["l2"].numpy(), np.linalg.norm(d, axis=1), rtol=1e-12)


def test_plot_handles_accuracies_of_zero_and_one(tmp_path):
    from omnidiffusion.purification.plots import plot_robustness

    rows = []
    for k, threat in ((0, "classifier"), (64, "transfer"), (7, "full")):
        rows.append({"threat": threat, "attack": "pgd", "eps": 0.1, "t_star": 0.1, **summarize(torch.arange(64) < k)})
    rows.append({"threat": "clean", "attack": "none", "eps": 0.0, "t_star": 0.1, **summarize(torch.ones(64))})
    path = plot_robustness(rows, tmp_path / "r.png", t_star=0.1)
    assert path.is_file() and path.stat().st_size > 1000
