"""Guidance mechanics and metrics on hand-worked cases and exact oracles."""

import math

import pytest
import torch

from omnidiffusion.core import DiscreteVP
from omnidiffusion.core.testing import Gaussian
from omnidiffusion.text.baselines import unigram_samples
from omnidiffusion.text.control import AdagradGuidance, length_targets
from omnidiffusion.text.data import train_tokenizer
from omnidiffusion.text.metrics import (
    base_rate,
    distinct_n,
    infill_keep_rate,
    length_success,
    memorisation_rate,
    perplexity,
    semantic_success,
    teacher_nll,
)


def oracle():
    sched = DiscreteVP.sqrt(100)
    return Gaussian(torch.zeros(3, 2), torch.ones(3, 2)).denoiser(sched, "x0"), sched


def test_adagrad_guidance_moves_x_by_lr_sign_and_predicts_there():
    """A fresh Adagrad step is -lr * sign(grad); the wrapper returns the inner prediction at the moved state."""
    inner, sched = oracle()
    target = torch.full((3, 2), 5.0)
    guided = AdagradGuidance(inner, lambda x, t: ((x - target) ** 2).flatten(1).sum(1), steps=2, lr=0.1, fluency=0.0)
    x = torch.zeros(1, 3, 2)
    out = guided.predict(x, 0.5)
    moved = x + 0.2  # two steps of +0.1 towards the target
    ref = inner.predict(moved, 0.5)
    assert torch.allclose(out.x0, ref.x0, atol=1e-6) and torch.allclose(out.eps, ref.eps, atol=1e-6)
    # ancestral/DDIM steps use x0 and eps only, so the chain continues from the moved state
    a, s = sched.alpha(torch.tensor(0.5)).item(), sched.sigma(torch.tensor(0.5)).item()
    assert torch.allclose(a * out.x0 + s * out.eps, moved, atol=1e-5)


def test_adagrad_guidance_is_off_at_the_end_and_with_zero_steps():
    inner, _ = oracle()
    guided = AdagradGuidance(inner, lambda x, t: x.flatten(1).sum(1) * 100, steps=3, lr=0.1)
    x = torch.randn(2, 3, 2)
    assert torch.equal(guided.predict(x, 5 / 100).x0, inner.predict(x, 5 / 100).x0)  # last 10 table steps
    assert not torch.equal(guided.predict(x, 0.5).x0, inner.predict(x, 0.5).x0)
    none = AdagradGuidance(inner, lambda x, t: x.flatten(1).sum(1), steps=0)
    assert torch.equal(none.predict(x, 0.5).x0, inner.predict(x, 0.5).x0)


def test_fluency_term_limits_the_move():
    inner, _ = oracle()
    loss = lambda x, t: ((x - 5.0) ** 2).flatten(1).sum(1)  # noqa: E731
    free = AdagradGuidance(inner, loss, steps=3, lr=0.1, fluency=0.0).predict(torch.zeros(1, 3, 2), 0.5).x0
    held = AdagradGuidance(inner, loss, steps=3, lr=0.1, fluency=1e6).predict(torch.zeros(1, 3, 2), 0.5).x0
    centre = inner.predict(torch.zeros(1, 3, 2), 0.5).x0
    assert (held - centre).abs().max() < (free - centre).abs().max()


def test_length_targets_hand_case():
    ids, mask = length_targets(torch.tensor([2, 4]), seq_len=7)
    assert ids.tolist() == [[0, 0, 0, 3, 0, 0, 0], [0, 0, 0, 0, 0, 3, 0]]
    assert mask.tolist() == [[False] * 3 + [True] * 4, [False] * 5 + [True] * 2]
    with pytest.raises(ValueError, match="length"):
        length_targets(torch.tensor([6]), seq_len=7)


class UniformLM(torch.nn.Module):
    """Equal logits over V words: every token costs log V, so the perplexity is exactly V."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids):
        return torch.zeros(*ids.shape, self.vocab) + 0 * self.p


def test_teacher_perplexity_of_a_uniform_lm_is_the_vocabulary_size():
    tok = train_tokenizer(["a b c d e"])
    V = tok.get_vocab_size()
    nll = teacher_nll(UniformLM(V), tok, ["a b", "c d e", ""])
    assert all(math.isclose(v, math.log(V), rel_tol=1e-6) for v in nll)
    assert math.isclose(perplexity(nll), V, rel_tol=1e-6)
    assert math.isclose(perplexity([1.0, 3.0]), math.exp(2.0))


def test_distinct_memorisation_and_success_hand_cases():
    assert distinct_n(["a b a b"], 1) == 0.5  # {a, b} of 4 unigrams
    assert distinct_n(["a b a b"], 2) == 2 / 3  # {ab, ba} of 3 bigrams
    assert distinct_n(["a"], 2) == 0.0
    assert memorisation_rate(["x y", "x  y ", "z"], ["x y", "w"]) == 2 / 3
    texts = ["Aromi is a pub .", "Aromi is a restaurant ."]
    targets = [("eatType", "pub"), ("eatType", "pub")]
    assert semantic_success(texts, targets) == 0.5
    assert base_rate(texts, [("eatType", "pub"), ("eatType", "coffee shop")]) == 0.25
    assert length_success(["a b c", "a b"], [3, 3]) == 0.5
    assert length_success(["a b c", "a b"], [3, 3], tolerance=1) == 1.0
    assert infill_keep_rate(["a x c", "b x c"], [["a", None, "c"], ["a", None, "c"]]) == 0.5


def test_unigram_baseline_uses_training_words_and_lengths():
    train = ["a b c", "a a"]
    out = unigram_samples(train, 50, seed=0)
    assert all(len(t.split()) in (2, 3) and set(t.split()) <= {"a", "b", "c"} for t in out)
    assert out == unigram_samples(train, 50, seed=0)
