"""Discrete (categorical) diffusion: D3PM's uniform and absorbing kernels, masked-diffusion losses, exact ELBO.

Austin et al. 2021 (D3PM, arXiv 2107.03006) corrupt a token x in {0..K-1} by transition matrices; the two kernels
here are both of the form Q = a I + (1 - a) 1 pi^T (keep the token with probability a, else draw it from a fixed
distribution pi): uniform (pi = 1/K, D3PM sec. 3.1) and absorbing (pi = e_mask, D3PM sec. 3.1 "absorbing state",
the masked diffusion of MDLM, Sahoo et al. 2024, arXiv 2406.07524). The family is closed under composition, so
with a keep-probability schedule alpha(t) (alpha(0) = 1, alpha(1) = 0) every marginal and posterior is closed form:

    q(x_t | x_0) = alpha_t e_{x0} + (1 - alpha_t) pi                     (D3PM eq. 3)
    q(x_t | x_s) = (alpha_t / alpha_s) e_{xs} + (1 - alpha_t / alpha_s) pi    (s < t)

Conventions: tokens are a LongTensor of any shape (B, ...) (text (B, L), atom types (N,)); time t has one entry
per leading element; a model is called as model(x_t, t, **cond) and returns x0 logits (B, ..., K) (D3PM's
x0-parameterisation, sec. 3.3). All probabilities are float64.

- `CategoricalProcess`: marginals, forward sampling, prior, the reverse kernel
  p(x_s | x_t) = sum_x0 q(x_s | x_t, x0) p(x0 | x_t) (D3PM eq. 4, evaluated in O(K) per token).
- `d3pm_loss`: D3PM's hybrid loss (one ELBO step term + lambda x0 cross-entropy, sec. 3.4, eq. 5).
- `masked_diffusion_loss`: MDLM's continuous-time ELBO, E_t[-alpha'/(1 - alpha) sum_masked -log p(x0 | x_t)]
  (Sahoo et al. 2024, eq. 10-11), an exact upper bound on the NLL in expectation.
- `elbo`: the T-step discrete-time ELBO (prior KL + every step's KL, reconstruction included), one x_t draw
  per step; `masked_elbo`: the continuous-time bound with stratified times. `bits_per_token`, `perplexity_bound`.
- `sample`: ancestral sampling with any number of steps; known tokens clamped (exact infilling for absorbing).
  For the absorbing kernel, `unmasking="fixed-count"` reveals exactly the expected number of tokens per step
  (positions uniformly at random among the masked ones): with at least as many steps as free positions it
  reveals one token at a time, which samples the exact denoiser's distribution exactly (any-order decoding).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .checks import positive_int, real_number
from .tensors import append_dims, per_sample, rand, randint, sum_flat

KINDS = ("absorbing", "uniform")
DISCRETE_SCHEDULES = ("linear", "cosine")
UNMASKING = ("independent", "fixed-count")

X0Model = Callable[..., Tensor]  # model(x_t (B, ...) long, t (B,), **cond) -> x0 logits (B, ..., K)


def _check_tokens(x: Tensor, num_classes: int, name: str) -> None:
    if not isinstance(x, Tensor) or x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        what = f"dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected an integer token tensor of shape (B, ...), got {what}")
    if x.ndim < 1 or x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty token tensor of shape (B, ...), got shape {tuple(x.shape)}")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name}: expected token ids in [0, {num_classes - 1}], got values in [{lo}, {hi}]")


class CategoricalProcess:
    """Forward process Q_{s->t} = (alpha_t/alpha_s) I + (1 - alpha_t/alpha_s) 1 pi^T over K classes.

    kind: "absorbing" (pi = e_mask; `mask_id` defaults to K - 1, the last class) or "uniform" (pi = 1/K).
    schedule: "linear" alpha(t) = 1 - t (MDLM's log-linear noise) or "cosine" alpha(t) = cos^2(pi t / 2)
    (the cosine alpha-bar of Nichol & Dhariwal 2021 with offset 0, D3PM's choice for its uniform kernel).
    """

    def __init__(
        self, num_classes: int, kind: str = "absorbing", schedule: str = "linear", mask_id: int | None = None
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
        if schedule not in DISCRETE_SCHEDULES:
            raise ValueError(f"schedule: expected one of {list(DISCRETE_SCHEDULES)}, got {schedule!r}")
        self.num_classes = positive_int(num_classes, "num_classes", minimum=2)
        self.kind, self.schedule = kind, schedule
        if kind == "absorbing":
            mask_id = self.num_classes - 1 if mask_id is None else mask_id
            self.mask_id: int | None = positive_int(mask_id, "mask_id", minimum=0, maximum=self.num_classes - 1)
            pi = torch.zeros(self.num_classes, dtype=torch.float64)
            pi[self.mask_id] = 1.0
        else:
            if mask_id is not None:
                raise ValueError(f"mask_id: expected None for the uniform kernel, got {mask_id!r}")
            self.mask_id = None
            pi = torch.full((self.num_classes,), 1.0 / self.num_classes, dtype=torch.float64)
        self.pi = pi  # (K,) the stationary (prior) distribution

    def __repr__(self) -> str:
        return f"CategoricalProcess(num_classes={self.num_classes}, kind={self.kind!r}, schedule={self.schedule!r})"

    # ---- schedule ------------------------------------------------------------------------------------------------
    def alpha(self, t: float | Tensor) -> Tensor:
        """Keep probability alpha(t) = q(x_t = x_0 | x_0) minus the pi part; 1 at t = 0, exactly 0 at t = 1."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.schedule == "linear":
            a = 1.0 - t
        else:
            a = torch.cos(0.5 * math.pi * t) ** 2
        return torch.where(t >= 1.0, torch.zeros_like(a), a).clamp(0.0, 1.0)

    def alpha_rate(self, t: float | Tensor) -> Tensor:
        """d alpha / dt (negative)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.schedule == "linear":
            return -torch.ones_like(t)
        return -0.5 * math.pi * torch.sin(math.pi * t)

    def _times(self, t: float | Tensor, x: Tensor) -> Tensor:
        tt = per_sample(t, x)
        if bool(((tt < 0) | (tt > 1)).any()):
            raise ValueError(f"t: expected times in [0, 1], got values in [{float(tt.min())}, {float(tt.max())}]")
        return tt

    def _a(self, t: float | Tensor, x: Tensor) -> Tensor:
        """alpha(t) per sample, shaped (B, 1, ..., 1, 1) to broadcast against (B, ..., K)."""
        return append_dims(self.alpha(self._times(t, x)).to(x.device), x.ndim + 1)

    # ---- forward ---------------------------------------------------------------------------------------------------
    def marginal(self, x0: Tensor, t: float | Tensor) -> Tensor:
        """q(x_t | x_0) = alpha_t onehot(x0) + (1 - alpha_t) pi: (B, ...) -> (B, ..., K) float64 (D3PM eq. 3)."""
        _check_tokens(x0, self.num_classes, "x0")
        a = self._a(t, x0)
        onehot = torch.nn.functional.one_hot(x0.long(), self.num_classes).double()
        return a * onehot + (1.0 - a) * self.pi.to(x0.device)

    def q_sample(self, x0: Tensor, t: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw x_t ~ q(x_t | x_0): keep each token with probability alpha_t, else draw it from pi."""
        _check_tokens(x0, self.num_classes, "x0")
        a = self._a(t, x0)[..., 0]  # (B, 1, ...)
        u = rand(x0.shape, generator, device=x0.device, dtype=torch.float64)
        return torch.where(u < a, x0.long(), self.prior_sample(x0.shape, generator=generator, device=x0.device))

    def prior_sample(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> Tensor:
        """x_1 ~ pi: all mask tokens (absorbing) or uniform tokens (uniform)."""
        if self.mask_id is not None:
            return torch.full(shape, self.mask_id, dtype=torch.long, device=device)
        return randint(0, self.num_classes, shape, generator, device=device)

    def prior_kl(self, x0: Tensor) -> Tensor:
        """KL(q(x_1 | x_0) || pi) summed over tokens, (B,) nats (0 for both schedules: alpha(1) = 0)."""
        q = self.marginal(x0, 1.0)
        pi = self.pi.to(q.device).expand_as(q)
        return sum_flat((torch.xlogy(q, q) - torch.xlogy(q, pi)).sum(-1))

    # ---- reverse ---------------------------------------------------------------------------------------------------
    def reverse_probs(self, x_t: Tensor, p0: Tensor, s: float | Tensor, t: float | Tensor) -> Tensor:
        """p(x_s | x_t) = sum_x0 q(x_s | x_t, x0) p0(x0), s < t: (B, ...), (B, ..., K) -> (B, ..., K) float64.

        D3PM eq. 4 with x0-parameterisation. For this kernel family q(x_s = k | x_t = j, x0 = i) =
        q(j | k) q(k | i) / q(j | i), so the sum is [r e_j + (1-r) pi_j]_k [alpha_s w_k + (1-alpha_s) pi_k sum(w)]
        with r = alpha_t/alpha_s and w_i = p0_i / q(x_t = j | x0 = i): O(K) per token. Mass that p0 puts on an
        x0 that cannot have produced x_t (an unmasked token differing from x_t, absorbing) is dropped and the
        result renormalised: the exact posterior for an exact p0, MDLM's carry-over unmasking for a learned one.
        With p0 = onehot(x0) this is the forward posterior q(x_s | x_t, x0); with s = 0 it is p(x0 | x_t).
        """
        _check_tokens(x_t, self.num_classes, "x_t")
        if p0.shape != (*x_t.shape, self.num_classes):
            raise ValueError(f"p0: expected shape {(*x_t.shape, self.num_classes)}, got {tuple(p0.shape)}")
        ss, tt = self._times(s, x_t), self._times(t, x_t)
        if bool((ss >= tt).any()):
            raise ValueError("s, t: expected s < t for every sample (a reverse step goes from t down to s)")
        a_s, a_t = append_dims(self.alpha(ss), x_t.ndim + 1), append_dims(self.alpha(tt), x_t.ndim + 1)
        a_s, a_t = a_s.to(x_t.device), a_t.to(x_t.device)
        r = torch.where(a_s > 0, a_t / a_s.clamp(min=1e-300), torch.zeros_like(a_s))
        pi = self.pi.to(x_t.device)
        onehot = torch.nn.functional.one_hot(x_t.long(), self.num_classes).double()  # (B, ..., K)
        pi_j = pi[x_t.long()][..., None]  # (B, ..., 1) pi at the observed token
        like = a_t * onehot + (1.0 - a_t) * pi_j  # q(x_t = j | x0 = i) for every i
        w = torch.where(like > 0, p0.double() / like.clamp(min=1e-300), torch.zeros_like(like))
        first = r * onehot + (1.0 - r) * pi_j  # q(x_t = j | x_s = k) for every k
        second = a_s * w + (1.0 - a_s) * pi * w.sum(-1, keepdim=True)
        out = first * second
        total = out.sum(-1, keepdim=True)
        return torch.where(total > 0, out / total.clamp(min=1e-300), pi.expand_as(out))


# ---- losses and bounds -------------------------------------------------------------------------------------------


def _kl(q: Tensor, p: Tensor) -> Tensor:
    """KL(q || p) over the last dim (0 log 0 = 0; a q-mass where p = 0 gives inf, as it should)."""
    return (torch.xlogy(q, q) - torch.xlogy(q, p)).sum(-1)


def _x0_probs(model: X0Model, x_t: Tensor, t: Tensor, num_classes: int, **cond) -> Tensor:
    logits = model(x_t, t, **cond)
    if logits.shape != (*x_t.shape, num_classes):
        raise ValueError(f"model: expected x0 logits of shape {(*x_t.shape, num_classes)}, got {tuple(logits.shape)}")
    return torch.softmax(logits.double(), dim=-1)


def step_kl(model: X0Model, process: CategoricalProcess, x0: Tensor, x_t: Tensor, s, t, **cond) -> Tensor:
    """KL(q(x_s | x_t, x0) || p(x_s | x_t)) summed over tokens, (B,) nats; at s = 0 this is -log p(x0 | x_t)."""
    tt = per_sample(t, x_t).to(x_t.device)
    p0 = _x0_probs(model, x_t, tt.float(), process.num_classes, **cond)
    p = process.reverse_probs(x_t, p0, s, tt)
    q = process.reverse_probs(x_t, torch.nn.functional.one_hot(x0.long(), process.num_classes).double(), s, tt)
    return sum_flat(_kl(q, p))


def d3pm_loss(
    model: X0Model,
    x0: Tensor,
    process: CategoricalProcess,
    steps: int,
    *,
    hybrid: float = 0.01,
    generator: torch.Generator | None = None,
    **cond,
) -> Tensor:
    """D3PM's hybrid loss (Austin et al. 2021, eq. 5), (B,) nats: L_{n-1} + hybrid x E[-log p(x0 | x_n)].

    One step n ~ U{1..steps} per sample; L_{n-1} = KL(q(x_{n-1} | x_n, x0) || p(x_{n-1} | x_n)) (at n = 1 the
    reconstruction -log p(x0 | x_1)); steps * mean(L) is an unbiased estimate of the ELBO minus the prior term.
    """
    _check_tokens(x0, process.num_classes, "x0")
    steps = positive_int(steps, "steps")
    hybrid = real_number(hybrid, "hybrid", low=0.0)
    B = x0.shape[0]
    n = randint(1, steps + 1, (B,), generator, device=x0.device).double()
    t, s = n / steps, (n - 1) / steps
    x_t = process.q_sample(x0, t, generator=generator)
    logits = model(x_t, t.float(), **cond)
    if logits.shape != (*x0.shape, process.num_classes):
        raise ValueError(f"model: expected x0 logits of shape {(*x0.shape, process.num_classes)}, got {logits.shape}")
    logp = torch.log_softmax(logits.double(), dim=-1)
    p = process.reverse_probs(x_t, logp.exp(), s, t)
    q = process.reverse_probs(x_t, torch.nn.functional.one_hot(x0.long(), process.num_classes).double(), s, t)
    # KL with log p taken where q > 0 only (q's support lies inside p's for a softmax p0).
    vb = (torch.xlogy(q, q) - q * torch.log(p.clamp(min=1e-30))).sum(-1)
    ce = -logp.gather(-1, x0.long()[..., None])[..., 0]
    return sum_flat(vb) + hybrid * sum_flat(ce)


def _stratified(n: int, generator: torch.Generator | None, device, t_min: float) -> Tensor:
    u0 = torch.rand(1, generator=generator, dtype=torch.float64)
    u = torch.remainder(u0 + torch.arange(n, dtype=torch.float64) / n, 1.0)
    return (t_min + (1.0 - t_min) * u).to(device)


def masked_diffusion_loss(
    model: X0Model,
    x0: Tensor,
    process: CategoricalProcess,
    *,
    t: Tensor | None = None,
    t_min: float = 1e-4,
    generator: torch.Generator | None = None,
    **cond,
) -> Tensor:
    """MDLM's continuous-time NELBO (Sahoo et al. 2024, eq. 11), (B,) nats: -alpha'(t)/(1 - alpha(t)) x
    sum over masked tokens of -log p(x0 | x_t), with t stratified over the batch (low-discrepancy, as MDLM)
    unless given. Its expectation over t ~ U(0, 1) is an upper bound on -log p(x0) (absorbing kernel only)."""
    if process.kind != "absorbing":
        raise ValueError(f"process: expected the absorbing kernel for the masked-diffusion loss, got {process.kind!r}")
    _check_tokens(x0, process.num_classes, "x0")
    B = x0.shape[0]
    tt = _stratified(B, generator, x0.device, t_min) if t is None else per_sample(t, x0).to(x0.device)
    x_t = process.q_sample(x0, tt, generator=generator)
    logits = model(x_t, tt.float(), **cond)
    if logits.shape != (*x0.shape, process.num_classes):
        raise ValueError(f"model: expected x0 logits of shape {(*x0.shape, process.num_classes)}, got {logits.shape}")
    ce = -torch.log_softmax(logits.float(), dim=-1).gather(-1, x0.long()[..., None])[..., 0]  # (B, ...)
    masked = (x_t == process.mask_id).to(ce.dtype)
    a = process.alpha(tt)
    weight = (-process.alpha_rate(tt) / (1.0 - a).clamp(min=1e-12)).to(ce.dtype)  # (B,)
    return weight * sum_flat(ce * masked)


@torch.no_grad()
def elbo(
    model: X0Model,
    x0: Tensor,
    process: CategoricalProcess,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    **cond,
) -> Tensor:
    """The `steps`-step discrete-time negative ELBO, (B,) nats >= -log p(x0) (D3PM eq. 1 with a uniform grid):
    KL(q(x_1|x0) || pi) + sum_n KL(q(x_{n-1}|x_n, x0) || p(x_{n-1}|x_n)), the last term the reconstruction.
    Every step is evaluated (no time sampling); each draws one x_n ~ q(x_n | x0), so the result is an unbiased
    estimate of the bound. For absorbing, samples with no masked token at a step contribute exactly 0 and
    skip the network."""
    _check_tokens(x0, process.num_classes, "x0")
    steps = positive_int(steps, "steps")
    total = process.prior_kl(x0)
    for n in range(steps, 0, -1):
        t, s = n / steps, (n - 1) / steps
        x_t = process.q_sample(x0, t, generator=generator)
        rows = torch.arange(x0.shape[0], device=x0.device)
        if process.mask_id is not None:
            rows = rows[(x_t == process.mask_id).reshape(x0.shape[0], -1).any(1)]
            if rows.numel() == 0:
                continue
        sub = {k: (v[rows] if isinstance(v, Tensor) and v.shape[:1] == x0.shape[:1] else v) for k, v in cond.items()}
        total[rows] += step_kl(model, process, x0[rows], x_t[rows], s, t, **sub).to(total)
    return total


@torch.no_grad()
def masked_elbo(
    model: X0Model,
    x0: Tensor,
    process: CategoricalProcess,
    *,
    n_times: int = 16,
    generator: torch.Generator | None = None,
    **cond,
) -> Tensor:
    """The continuous-time NELBO of MDLM estimated with `n_times` stratified times per sample, (B,) nats."""
    n_times = positive_int(n_times, "n_times")
    B = x0.shape[0]
    u0 = torch.rand(B, 1, generator=generator, dtype=torch.float64)
    times = torch.remainder(u0 + torch.arange(n_times, dtype=torch.float64)[None] / n_times, 1.0)  # (B, n)
    total = torch.zeros(B, dtype=torch.float64, device=x0.device)
    for j in range(n_times):
        t = times[:, j].clamp(min=1e-4).to(x0.device)
        total += masked_diffusion_loss(model, x0, process, t=t, generator=generator, **cond).double()
    return total / n_times


def bits_per_token(nats: Tensor, n_tokens: Tensor | int) -> float:
    """Total nats over total tokens, in bits."""
    return float(torch.as_tensor(nats, dtype=torch.float64).sum() / math.log(2) / torch.as_tensor(n_tokens).sum())


def perplexity_bound(nats: Tensor, n_tokens: Tensor | int) -> float:
    """exp(total nats / total tokens): an upper bound on the model's perplexity when `nats` is a NELBO."""
    return float(torch.exp(torch.as_tensor(nats, dtype=torch.float64).sum() / torch.as_tensor(n_tokens).sum()))


# ---- sampling ----------------------------------------------------------------------------------------------------


def categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row of (..., K) probabilities by inverse CDF (seeded through `generator`)."""
    u = rand(probs.shape[:-1], generator, device=probs.device, dtype=torch.float64)
    cdf = probs.double().cumsum(-1)
    idx = (cdf < (u * cdf[..., -1])[..., None]).sum(-1)
    return idx.clamp(max=probs.shape[-1] - 1)


def _reveal(x: Tensor, p0: Tensor, mask_id: int, still: Tensor, generator: torch.Generator | None) -> Tensor:
    """Unmask all but `still` (B,) of each sample's masked tokens, at uniformly drawn positions, with values drawn
    from p0 (B, ..., K) without the mask class."""
    masked = (x == mask_id).flatten(1)  # (B, N)
    reveal_count = (masked.sum(1) - still).clamp(min=0)
    keys = torch.where(masked, rand(masked.shape, generator, device=x.device, dtype=torch.float64), 2.0)
    rank = keys.argsort(1).argsort(1)  # masked positions first, in a uniformly random order
    reveal = (rank < reveal_count[:, None]) & masked
    reveal = reveal.view(x.shape)
    probs = p0.double().clone()
    probs[..., mask_id] = 0.0
    total = probs.sum(-1, keepdim=True)
    if bool((total[reveal] <= 0).any()):
        raise ValueError("model: expected x0 probabilities with mass outside the mask class at a masked position")
    values = categorical(torch.where(total > 0, probs / total.clamp(min=1e-300), 1.0), generator)
    return torch.where(reveal, values, x)


@torch.no_grad()
def sample(
    model: X0Model,
    shape: tuple[int, ...],
    process: CategoricalProcess,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    x_known: Tensor | None = None,
    known: Tensor | None = None,
    callback: Callable[[int, float, Tensor, Tensor], None] | None = None,
    unmasking: str = "independent",
    **cond,
) -> Tensor:
    """Ancestral sampling (D3PM sec. 3.3) on the uniform grid 1 = t_0 > ... > t_steps = 0: x_s ~ p(x_s | x_t).

    `known` (bool, `shape`) with `x_known` clamps tokens at every step: for the absorbing kernel a state with
    some tokens revealed is a forward-process state, so the chain samples the model's conditional exactly
    (infilling by construction); for the uniform kernel it is plain known-value replacement. The last step
    draws x0 from p(x0 | x_{t_1}) (no masks remain). `callback(i, t, x, p0)` sees every step.

    unmasking (absorbing kernel): "independent" reveals each masked token with probability
    (alpha_s - alpha_t) / (1 - alpha_t), so the number revealed per step is binomial (D3PM / MDLM);
    "fixed-count" keeps round(M (1 - alpha_s)) tokens masked after the step to s, M the sample's free positions
    at t = 1 (the forward process's expected count), reveals the others at positions drawn uniformly among the
    masked ones, and draws their values from p(x0 | x_t) (the mask class excluded). Tokens revealed in one step
    are drawn independently given x_t; with steps >= M at most one is revealed per step.
    """
    steps = positive_int(steps, "steps")
    if unmasking not in UNMASKING:
        raise ValueError(f"unmasking: expected one of {list(UNMASKING)}, got {unmasking!r}")
    fixed = unmasking == "fixed-count"
    if fixed and process.mask_id is None:
        raise ValueError("unmasking: 'fixed-count' needs the absorbing kernel (a mask state), got kind 'uniform'")
    if known is not None:
        if x_known is None or known.shape != tuple(shape) or x_known.shape != tuple(shape):
            raise ValueError(
                f"known, x_known: expected both of shape {tuple(shape)}, got "
                f"{None if known is None else tuple(known.shape)} and "
                f"{None if x_known is None else tuple(x_known.shape)}"
            )
        _check_tokens(x_known, process.num_classes, "x_known")
        known, x_known = known.to(device).bool(), x_known.to(device).long()
    x = process.prior_sample(tuple(shape), generator=generator, device=device)
    if known is not None:
        x = torch.where(known, x_known, x)
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    free = (x == process.mask_id).flatten(1).sum(1).double() if fixed else None  # M per sample
    for i in range(steps):
        t, s = float(grid[i]), float(grid[i + 1])
        tt = torch.full((shape[0],), t, dtype=torch.float64, device=device)
        p0 = _x0_probs(model, x, tt.float(), process.num_classes, **cond)
        if fixed:
            still = torch.round(free * (1.0 - process.alpha(s).item())).long()
            x = _reveal(x, p0, process.mask_id, still, generator)
        else:
            x = categorical(process.reverse_probs(x, p0, s, t), generator)
        if known is not None:
            x = torch.where(known, x_known, x)
        if callback is not None:
            callback(i, t, x, p0)
    return x


__all__ = [
    "DISCRETE_SCHEDULES",
    "KINDS",
    "UNMASKING",
    "CategoricalProcess",
    "bits_per_token",
    "categorical",
    "d3pm_loss",
    "elbo",
    "masked_diffusion_loss",
    "masked_elbo",
    "perplexity_bound",
    "sample",
    "step_kl",
]
