"""core.discrete against independent truth on a tiny vocabulary with a known data distribution.

Truth used here, written independently of the module: D3PM's one-step transition matrices composed by matrix
products (numpy), Bayes' rule on those matrices for posteriors and the reverse kernel, the exact denoiser
p(x0^l | x_t) by enumerating every data sequence, the exact NLL -log p_data(x0), and chi-square tests of sampled
frequencies against p_data.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from omnidiffusion.core.discrete import (
    CategoricalProcess,
    bits_per_token,
    d3pm_loss,
    elbo,
    masked_diffusion_loss,
    masked_elbo,
    perplexity_bound,
    sample,
)

V = 3  # real tokens 0..2; the absorbing kernel adds mask id 3
L = 2
RNG = np.random.default_rng(0)
P_DATA = RNG.dirichlet(np.full(V**L, 2.0))  # known distribution over the 9 sequences
SEQS = np.array(list(itertools.product(range(V), repeat=L)))  # (9, L)


def kernel_alpha(schedule: str, t: float) -> float:
    return 1.0 - t if schedule == "linear" else math.cos(math.pi * t / 2) ** 2 * (t < 1)


def pi_of(kind: str) -> np.ndarray:
    if kind == "absorbing":
        return np.eye(V + 1)[V]
    return np.full(V, 1.0 / V)


def Q(kind: str, keep: float) -> np.ndarray:
    """keep I + (1 - keep) 1 pi^T, rows = from, columns = to."""
    pi = pi_of(kind)
    return keep * np.eye(len(pi)) + (1 - keep) * np.outer(np.ones(len(pi)), pi)


def Qbar(kind: str, schedule: str, t: float, grid: int = 64) -> np.ndarray:
    """q(x_t | x_0) as a product of one-step matrices on a fine grid ending at t (composition, not closed form)."""
    out = np.eye(len(pi_of(kind)))
    ts = np.linspace(0.0, t, grid + 1)
    for a, b in zip(ts[:-1], ts[1:], strict=True):
        out = out @ Q(kind, kernel_alpha(schedule, b) / kernel_alpha(schedule, a))
    return out


def exact_marginals(kind: str, schedule: str, x_t: np.ndarray, t) -> np.ndarray:
    """Exact denoiser: p(x0^l = k | x_t) for a batch x_t (B, L) at times t (scalar or (B,)) by enumerating the
    9 data sequences -> (B, L, K)."""
    pi = pi_of(kind)
    t = np.broadcast_to(np.asarray(t, dtype=float), (len(x_t),))
    a = 1.0 - t if schedule == "linear" else np.where(t < 1, np.cos(np.pi * t / 2) ** 2, 0.0)
    like = np.ones((len(x_t), len(SEQS)))
    for pos in range(L):
        same = SEQS[None, :, pos] == x_t[:, None, pos]  # (B, 9)
        like *= a[:, None] * same + (1 - a[:, None]) * pi[x_t[:, pos]][:, None]  # q(x_t^l | x0^l)
    post = like * P_DATA
    post /= np.maximum(post.sum(1, keepdims=True), 1e-300)  # an unreachable x_t gets zeros (never used)
    out = np.zeros((len(x_t), L, len(pi)))
    for pos in range(L):
        for k in range(V):
            out[:, pos, k] = post[:, SEQS[:, pos] == k].sum(1)
    return out


def exact_model(kind: str, schedule: str):
    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = exact_marginals(kind, schedule, x_t.numpy(), t.double().numpy())
        with np.errstate(divide="ignore"):
            return torch.from_numpy(np.log(out))

    return model


def process_of(kind: str, schedule: str = "linear") -> CategoricalProcess:
    return CategoricalProcess(V + 1 if kind == "absorbing" else V, kind, schedule)


def reverse_matrix(kind: str, schedule: str, p0: np.ndarray, j: int, s: float, t: float) -> np.ndarray:
    """sum_i p0_i q(x_s | x_t = j, x0 = i) by Bayes on explicit matrices (impossible x0 dropped, renormalised)."""
    a_s, a_t = kernel_alpha(schedule, s), kernel_alpha(schedule, t)
    qs, qt, qst = Q(kind, a_s), Q(kind, a_t), Q(kind, a_t / a_s if a_s > 0 else 0.0)
    out = np.zeros(len(p0))
    for i in range(len(p0)):
        if qt[i, j] > 0:
            out += p0[i] * qst[:, j] * qs[i, :] / qt[i, j]
    return out / out.sum()


def enumerated_elbo(kind: str, schedule: str, x0: np.ndarray, steps: int) -> float:
    """The T-step negative ELBO of the exact factorised denoiser, expectations over x_t enumerated exactly."""
    K = len(pi_of(kind))
    states = np.array(list(itertools.product(range(K), repeat=L)))
    a1 = kernel_alpha(schedule, 1.0)
    q1 = Q(kind, a1)[x0]  # (L, K)
    pi = pi_of(kind)
    total = sum(sum(q * np.log(q / pi[k]) for k, q in enumerate(row) if q > 0) for row in q1)
    for n in range(1, steps + 1):
        t, s = n / steps, (n - 1) / steps
        qt = Q(kind, kernel_alpha(schedule, t))
        weights = np.prod([qt[x0[pos], states[:, pos]] for pos in range(L)], axis=0)
        keep = weights > 0
        p0 = exact_marginals(kind, schedule, states[keep], t)
        for w, x_t, marg in zip(weights[keep], states[keep], p0, strict=True):
            for pos in range(L):
                q = reverse_matrix(kind, schedule, np.eye(K)[x0[pos]], x_t[pos], s, t)
                p = reverse_matrix(kind, schedule, marg[pos], x_t[pos], s, t)
                total += w * sum(qk * np.log(qk / p[k]) for k, qk in enumerate(q) if qk > 0)
    return total


# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_marginal_is_the_composed_transition_matrices(kind, schedule):
    proc = process_of(kind, schedule)
    x0 = torch.arange(proc.num_classes if kind == "uniform" else V)
    for t in (0.1, 0.5, 0.9, 1.0):
        got = proc.marginal(x0, torch.full((len(x0),), t, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(got, Qbar(kind, schedule, t)[x0.numpy()], atol=1e-12)


def test_absorbing_linear_schedule_is_d3pm_beta_one_over_T_minus_t_plus_1():
    """D3PM sec. 3.1/App. A: absorbing with beta_n = 1/(T - n + 1) masks a token by step n with probability n/T."""
    T = 20
    proc = process_of("absorbing", "linear")
    prod = np.eye(V + 1)
    for n in range(1, T + 1):
        prod = prod @ Q("absorbing", 1.0 - 1.0 / (T - n + 1))
        np.testing.assert_allclose(proc.marginal(torch.tensor([1]), n / T).numpy()[0], prod[1], atol=1e-12)


@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_q_sample_frequencies_match_the_closed_form(kind):
    proc = process_of(kind, "cosine")
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((40000,), 2)
    xt = proc.q_sample(x0, 0.6, generator=g)
    counts = np.bincount(xt.numpy(), minlength=proc.num_classes)
    expected = Qbar(kind, "cosine", 0.6)[2] * len(x0)
    keep = expected > 0
    assert counts[~keep].sum() == 0
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert chi2 < stats.chi2.ppf(0.999, keep.sum() - 1)


@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_reverse_kernel_is_bayes_on_the_matrices(kind):
    proc = process_of(kind, "cosine")
    K = proc.num_classes
    rng = np.random.default_rng(1)
    for _ in range(20):
        s, t = sorted(rng.uniform(0, 1, 2))
        j = int(rng.integers(K))
        p0 = rng.dirichlet(np.ones(K))
        if kind == "absorbing":
            p0[V] = 0.0
            p0 /= p0.sum()
        got = proc.reverse_probs(torch.tensor([j]), torch.from_numpy(p0)[None], s, t).numpy()[0]
        np.testing.assert_allclose(got, reverse_matrix(kind, "cosine", p0, j, s, t), atol=1e-10)
    # s = 0 with the forward posterior (one-hot p0) returns x0 itself
    x0 = torch.tensor([[0, 2]])
    onehot = torch.nn.functional.one_hot(x0, K).double()
    back = proc.reverse_probs(proc.q_sample(x0, 0.7), onehot, 0.0, 0.7)
    np.testing.assert_allclose(back.numpy(), onehot.numpy(), atol=1e-12)


def model_likelihood(kind: str, schedule: str, steps: int) -> np.ndarray:
    """p_theta(x0) of the T-step reverse chain with the exact factorised denoiser, by chaining its transition
    matrices over all K^L states (the forward algorithm): (9,) over SEQS."""
    K = len(pi_of(kind))
    states = np.array(list(itertools.product(range(K), repeat=L)))
    dist = np.prod([pi_of(kind)[states[:, pos]] for pos in range(L)], axis=0)  # prior over states
    for n in range(steps, 0, -1):
        t, s = n / steps, (n - 1) / steps
        live = np.flatnonzero(dist > 0)  # states the chain can be in at t
        marg = exact_marginals(kind, schedule, states[live], t)  # (S', L, K)
        M = np.ones((len(live), len(states)))
        for pos in range(L):
            rev = np.stack(
                [reverse_matrix(kind, schedule, marg[a, pos], states[i, pos], s, t) for a, i in enumerate(live)]
            )
            M *= rev[:, states[:, pos]]  # (from, to)
        dist = dist[live] @ M
    index = {tuple(st): i for i, st in enumerate(states)}
    return np.array([dist[index[tuple(x)]] for x in SEQS])


@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_elbo_bounds_the_exact_nll_and_tightens_with_steps(kind):
    schedule = "linear"
    entropy = -(P_DATA * np.log(P_DATA)).sum()
    gaps = []
    for T in (1, 2, 4, 16):
        bounds = np.array([enumerated_elbo(kind, schedule, x0, T) for x0 in SEQS])
        model_nll = -np.log(model_likelihood(kind, schedule, T))
        assert (bounds >= model_nll - 1e-9).all(), (T, bounds, model_nll)  # pointwise: ELBO >= -log p_theta
        cross = (P_DATA * bounds).sum()
        assert cross >= entropy - 1e-9  # in expectation over the data: >= the exact NLL (entropy)
        gaps.append(cross - entropy)
    assert all(g1 >= g2 - 1e-9 for g1, g2 in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 0.25 * gaps[0], gaps
    # pointwise, the bound approaches the exact data NLL
    far = np.abs(np.array([enumerated_elbo(kind, schedule, x0, 1) for x0 in SEQS]) + np.log(P_DATA)).max()
    near = np.abs(np.array([enumerated_elbo(kind, schedule, x0, 16) for x0 in SEQS]) + np.log(P_DATA)).max()
    assert near < 0.25 * far


def test_core_elbo_estimates_the_enumerated_bound():
    kind, schedule, steps = "absorbing", "linear", 4
    proc = process_of(kind, schedule)
    idx = 5
    truth = enumerated_elbo(kind, schedule, SEQS[idx], steps)
    x0 = torch.from_numpy(SEQS[idx]).repeat(3000, 1)
    est = elbo(exact_model(kind, schedule), x0, proc, steps, generator=torch.Generator().manual_seed(0))
    se = est.std().item() / math.sqrt(len(est))
    assert abs(est.mean().item() - truth) < 4 * se + 1e-6
    # D3PM's per-step loss (hybrid 0): steps x its mean is the same bound (prior KL is 0 here).
    g = torch.Generator().manual_seed(1)
    vb = d3pm_loss(exact_model(kind, schedule), x0, proc, steps, hybrid=0.0, generator=g) * steps
    se = vb.std().item() / math.sqrt(len(vb))
    assert abs(vb.mean().item() - truth) < 4 * se + 1e-6


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_continuous_masked_elbo_equals_the_exact_nll_for_the_exact_denoiser(schedule):
    """In continuous time tokens unmask one at a time, so the exact per-token marginals make the bound tight."""
    proc = process_of("absorbing", schedule)
    model = exact_model("absorbing", schedule)
    g = torch.Generator().manual_seed(0)
    for idx in (1, 6):
        x0 = torch.from_numpy(SEQS[idx]).repeat(4000, 1)
        est = masked_elbo(model, x0, proc, n_times=4, generator=g)
        se = est.std().item() / math.sqrt(len(est))
        assert abs(est.mean().item() + math.log(P_DATA[idx])) < 4 * se + 1e-3
        one = masked_diffusion_loss(model, x0, proc, generator=g)  # the one-time training estimator, same mean
        assert abs(one.mean().item() + math.log(P_DATA[idx])) < 4 * one.std().item() / math.sqrt(len(one)) + 1e-3


def _chi2_ok(draws: np.ndarray, probs: np.ndarray) -> None:
    counts = np.bincount(draws, minlength=len(probs))
    expected = probs * len(draws)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, len(probs) - 1), (counts, expected)


@pytest.mark.parametrize(("kind", "steps"), [("absorbing", 1), ("absorbing", 3), ("uniform", 3)])
def test_sampler_draws_the_exact_distribution_of_its_chain(kind, steps):
    """With any step count the sampler draws from p_theta of its T-step chain (computed by the forward algorithm)."""
    proc = process_of(kind, "linear")
    x = sample(exact_model(kind, "linear"), (20000, L), proc, steps, generator=torch.Generator().manual_seed(2))
    x = x.numpy()
    assert x.max() < V  # no mask left
    probs = model_likelihood(kind, "linear", steps)
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-9)
    _chi2_ok(x[:, 0] * V + x[:, 1], probs)


@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_the_chain_of_the_exact_denoiser_converges_to_the_data(kind):
    tv = [0.5 * np.abs(model_likelihood(kind, "linear", T) - P_DATA).sum() for T in (1, 4, 64)]
    assert tv[0] > tv[1] > tv[2] and tv[2] < 0.1 * tv[0] and tv[2] < 0.01, tv


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_sampler_with_the_exact_denoiser_reproduces_the_data(kind):
    proc = process_of(kind, "linear")
    x = sample(exact_model(kind, "linear"), (20000, L), proc, 100, generator=torch.Generator().manual_seed(4)).numpy()
    _chi2_ok(x[:, 0] * V + x[:, 1], P_DATA)


def test_sampler_single_token_is_exact_for_any_steps_and_infilling_is_the_conditional():
    proc = process_of("absorbing", "cosine")
    model = exact_model("absorbing", "cosine")
    n = 20000
    g = torch.Generator().manual_seed(3)
    # clamp position 0 to token 1: position 1 must follow p_data(x1 | x0 = 1), with only 2 steps
    known = torch.zeros(n, L, dtype=torch.bool)
    known[:, 0] = True
    x_known = torch.full((n, L), 1)
    x = sample(model, (n, L), proc, 2, generator=g, x_known=x_known, known=known).numpy()
    assert (x[:, 0] == 1).all()
    cond = P_DATA[SEQS[:, 0] == 1]
    _chi2_ok(x[:, 1], cond / cond.sum())


def test_bits_and_perplexity_helpers():
    nats = torch.tensor([math.log(4.0) * 3, math.log(4.0) * 5])
    assert bits_per_token(nats, torch.tensor([3, 5])) == pytest.approx(2.0)
    assert perplexity_bound(nats, 8) == pytest.approx(4.0)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="kind: expected one of"):
        CategoricalProcess(4, "gaussian")
    with pytest.raises(ValueError, match="schedule: expected one of"):
        CategoricalProcess(4, "absorbing", "sqrt")
    with pytest.raises(ValueError, match="num_classes: expected an integer >= 2"):
        CategoricalProcess(1)
    with pytest.raises(ValueError, match="mask_id: expected None"):
        CategoricalProcess(4, "uniform", mask_id=0)
    proc = CategoricalProcess(4)
    with pytest.raises(ValueError, match=r"x0: expected token ids in \[0, 3\], got values in \[0, 7\]"):
        proc.q_sample(torch.tensor([[0, 7]]), 0.5)
    with pytest.raises(ValueError, match="x0: expected an integer token tensor"):
        proc.marginal(torch.zeros(2, 3), 0.5)
    with pytest.raises(ValueError, match="t: expected times in"):
        proc.marginal(torch.zeros(2, 3, dtype=torch.long), 1.5)
    with pytest.raises(ValueError, match="s, t: expected s < t"):
        proc.reverse_probs(torch.zeros(1, 2, dtype=torch.long), torch.full((1, 2, 4), 0.25), 0.5, 0.5)
    with pytest.raises(ValueError, match="p0: expected shape"):
        proc.reverse_probs(torch.zeros(1, 2, dtype=torch.long), torch.full((1, 2, 3), 0.3), 0.2, 0.5)
    with pytest.raises(ValueError, match="process: expected the absorbing kernel"):
        masked_diffusion_loss(lambda x, t: x, torch.zeros(1, 2, dtype=torch.long), CategoricalProcess(4, "uniform"))
    with pytest.raises(ValueError, match="steps: expected an integer >= 1, got 0"):
        sample(lambda x, t: torch.zeros(*x.shape, 4), (1, 2), proc, 0)
    with pytest.raises(ValueError, match="model: expected x0 logits of shape"):
        sample(lambda x, t: torch.zeros(*x.shape, 3), (1, 2), proc, 2)


def test_fixed_count_unmasking_is_exact_one_token_per_step_and_keeps_the_expected_counts():
    proc = process_of("absorbing", "cosine")
    model = exact_model("absorbing", "cosine")
    n = 20000
    # steps = L: exactly one token per step, in a uniformly random order: p_data exactly (any-order decoding)
    x = sample(model, (n, L), proc, L, generator=torch.Generator().manual_seed(5), unmasking="fixed-count").numpy()
    assert x.max() < V
    _chi2_ok(x[:, 0] * V + x[:, 1], P_DATA)
    # one step reveals both tokens independently given the all-mask state: the product of the data's marginals
    x1 = sample(model, (n, L), proc, 1, generator=torch.Generator().manual_seed(6), unmasking="fixed-count").numpy()
    marg = [np.array([P_DATA[SEQS[:, pos] == k].sum() for k in range(V)]) for pos in range(L)]
    _chi2_ok(x1[:, 0] * V + x1[:, 1], np.outer(marg[0], marg[1]).ravel())
    # the masks left after each step are round(M (1 - alpha_s)), M = free positions (known ones excluded)
    left = []
    known = torch.zeros(4, 5, dtype=torch.bool)
    known[:, :2] = True
    x_known = torch.zeros(4, 5, dtype=torch.long)
    uniform = lambda x_t, t: torch.zeros(*x_t.shape, V + 1)  # noqa: E731
    grid = np.linspace(1.0, 0.0, 8)
    sample(uniform, (4, 5), proc, 7, x_known=x_known, known=known, unmasking="fixed-count",
           callback=lambda i, t, x, p0: left.append((x == V).sum(1).tolist()))  # fmt: skip
    want = [[round(3 * (1 - math.cos(math.pi * s / 2) ** 2))] * 4 for s in grid[1:]]
    assert left == want
    with pytest.raises(ValueError, match="unmasking: 'fixed-count' needs the absorbing kernel"):
        sample(exact_model("uniform", "linear"), (2, L), process_of("uniform"), 2, unmasking="fixed-count")
    with pytest.raises(ValueError, match="unmasking: expected one of"):
        sample(model, (2, L), proc, 2, unmasking="greedy")
