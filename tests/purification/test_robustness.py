"""torchattacks on PurifiedClassifier; evaluate_robustness plumbing checked against cases with a known answer."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchattacks.attack import Attack

from omnidiffusion.purification import AttackConfig, DiffPure, PurifiedClassifier, evaluate_robustness, make_attack


@pytest.fixture
def model(denoiser, classifier):
    return PurifiedClassifier(DiffPure(denoiser, t_star=0.1, steps=3, seed=0), classifier).eval()


def _labels(n=4):
    return torch.arange(n) % 10


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", ["pgd", "eot-pgd", "apgd"])
def test_attacks_run_on_the_purified_classifier_and_stay_in_the_ball(model, images, name, norm):
    eps = 0.1 if norm == "linf" else 0.5
    atk, protocol = make_attack(name, model, eps, norm, AttackConfig(steps=2, eot_iter=2, apgd_steps=2))
    assert isinstance(atk, Attack) and f"eps={eps:g}" in protocol
    x_adv = atk(images, _labels())
    assert x_adv.shape == images.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    d = (x_adv - images).reshape(len(images), -1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    if name != "apgd":  # APGD returns inputs that are already misclassified unchanged
        assert size.max() > 0


def test_autoattack_rand_runs_on_the_purified_classifier(denoiser, classifier, images):
    model = PurifiedClassifier(DiffPure(denoiser, t_star=0.05, steps=1, seed=0), classifier).eval()
    atk, protocol = make_attack("autoattack", model, 0.05, "linf", stochastic=True)
    assert "rand" in protocol
    x_adv = atk(images[:2], _labels(2))
    assert (x_adv - images[:2]).abs().max() <= 0.05 + 1e-6


def test_n_purify_averages_independent_purifications(model, images):
    B = len(images)
    model.purifier.reset_noise(3)
    with torch.no_grad():
        logits = model.classifier(model.purifier(torch.cat([images, images])))  # (2B, K)
    model.purifier.reset_noise(3)
    avg = PurifiedClassifier(model.purifier, model.classifier, n_purify=2)
    with torch.no_grad():
        out = avg(images)
    assert torch.allclose(out, (logits[:B] + logits[B:]) / 2, atol=1e-6)
    assert not torch.allclose(logits[:B], logits[B:], atol=1e-6)  # the two purifications differ


def test_predict_majority_vote_with_a_constant_purifier(classifier, images):
    model = PurifiedClassifier(nn.Identity(), classifier)
    with torch.no_grad():
        expected = classifier(images).argmax(1)
    assert torch.equal(model.predict(images, votes=3), expected)


def test_identity_purifier_gives_the_classifier_numbers(denoiser, classifier, images):
    """With t* = 0 the purifier is the identity, so transfer = classifier alone and full-gradient PGD = PGD on the
    classifier (same seed, same random start), exactly."""
    model = PurifiedClassifier(DiffPure(denoiser, t_star=0.0), classifier)
    y = _labels()
    r = evaluate_robustness(
        model, (images, y), attacks=("pgd",), eps=0.05, config=AttackConfig(steps=3), progress=False
    )
    acc = {row["threat"]: row["accuracy"] for row in r["results"]}
    assert acc["transfer"] == acc["classifier"] == acc["full"] == acc["bpda"]
    assert r["clean"]["classifier"]["accuracy"] == r["clean"]["purified"]["accuracy"]
    with torch.no_grad():
        assert r["clean"]["classifier"]["accuracy"] == (classifier(images).argmax(1) == y).float().mean().item()


def test_undefended_pgd_drives_accuracy_to_zero_at_a_large_eps(classifier, images):
    """Sanity: with eps = 1 (the whole cube) PGD on the classifier alone leaves nothing correct."""
    with torch.no_grad():
        y = classifier(images).argmax(1)  # the classifier's own labels: clean accuracy 1
    model = PurifiedClassifier(nn.Identity(), classifier)
    r = evaluate_robustness(
        model,
        (images, y),
        attacks=("pgd",),
        eps=1.0,
        threats=("classifier",),
        config=AttackConfig(steps=10),
        progress=False,
    )
    assert r["clean"]["classifier"]["accuracy"] == 1.0
    assert r["results"][0]["accuracy"] == 0.0


def test_seeded_evaluations_repeat_exactly(model, images):
    y = _labels()
    kw = dict(
        attacks=("eot-pgd",),
        eps=[0.05, 0.1],
        threats=("bpda", "full"),
        config=AttackConfig(steps=2, eot_iter=2),
        progress=False,
        seed=5,
    )
    a = evaluate_robustness(model, (images, y), **kw)
    b = evaluate_robustness(model, (images, y), **kw)
    assert a == b
    assert len(a["results"]) == 4 and {w["threat"] for w in a["worst_case"]} == {"bpda", "full"}
    assert all("EOT-PGD-2" in row["protocol"] for row in a["results"])


def test_bad_arguments_raise(model, images):
    y = _labels()
    with pytest.raises(ValueError, match="norm"):
        evaluate_robustness(model, (images, y), eps=0.1, norm="l1", progress=False)
    with pytest.raises(ValueError, match="eps"):
        evaluate_robustness(model, (images, y), eps=-0.1, progress=False)
    with pytest.raises(ValueError, match="attacks"):
        evaluate_robustness(model, (images, y), attacks=("cw",), progress=False)
    with pytest.raises(ValueError, match="images, labels"):
        evaluate_robustness(model, (images, y[:2]), progress=False)
    with pytest.raises(ValueError, match=r"images: expected values in \[0, 1\]"):
        evaluate_robustness(model, (images * 2, y), progress=False)
    with pytest.raises(ValueError, match="x: expected values"):
        model(images + 1)
