"""The metrics of the adversarial-robustness literature, on per-sample correctness vectors.

- clean accuracy: fraction of unperturbed inputs classified correctly.
- robust accuracy: fraction classified correctly under attack; over several attacks a sample counts only if it
  survives every one of them (the worst case per sample, as AutoAttack and RobustBench report).
- attack success rate: among inputs correct when clean, the fraction the attack flips.
- Wilson score interval for a binomial proportion (Wilson 1927): with a few hundred test images the sampling
  error is several points, so every accuracy is reported with one.
- perturbation norms per sample (Linf, L2 over all pixels), to check an attack stayed inside its eps-ball.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def _bool_vector(v: Tensor, name: str) -> Tensor:
    if not isinstance(v, Tensor) or v.ndim != 1 or v.numel() == 0:
        got = getattr(v, "shape", v)
        raise ValueError(f"{name}: expected a non-empty (N,) tensor of per-sample correctness, got {got}")
    return v.bool()


def accuracy(correct: Tensor) -> float:
    """Mean of a (N,) correctness vector."""
    c = _bool_vector(correct, "correct")
    return int(c.sum()) / c.numel()


def correct_predictions(logits_or_labels: Tensor, labels: Tensor) -> Tensor:
    """(N,) bool: argmax of (N, K) logits (or (N,) predicted labels) equals labels."""
    pred = logits_or_labels.argmax(1) if logits_or_labels.ndim == 2 else logits_or_labels
    if pred.shape != labels.shape:
        raise ValueError(f"labels: expected shape {tuple(pred.shape)}, got {tuple(labels.shape)}")
    return pred == labels


def worst_case(corrects: Sequence[Tensor]) -> Tensor:
    """(N,) bool: a sample is robust only if it is correct under every attack."""
    if not corrects:
        raise ValueError("corrects: expected at least one correctness vector")
    out = _bool_vector(corrects[0], "corrects[0]").clone()
    for i, c in enumerate(corrects[1:], 1):
        c = _bool_vector(c, f"corrects[{i}]")
        if c.shape != out.shape:
            raise ValueError(f"corrects[{i}]: expected shape {tuple(out.shape)}, got {tuple(c.shape)}")
        out &= c
    return out


def attack_success_rate(clean_correct: Tensor, adv_correct: Tensor) -> float:
    """Among samples correct when clean, the fraction wrong under attack (NaN when none is correct)."""
    c, a = _bool_vector(clean_correct, "clean_correct"), _bool_vector(adv_correct, "adv_correct")
    if c.shape != a.shape:
        raise ValueError(f"adv_correct: expected shape {tuple(c.shape)}, got {tuple(a.shape)}")
    n = int(c.sum())
    return math.nan if n == 0 else float((c & ~a).sum()) / n


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (p_hat + z^2/2n +- z sqrt(p_hat(1-p_hat)/n + z^2/4n^2)) / (1 + z^2/n)."""
    if not (isinstance(n, int) and n >= 1 and 0 <= successes <= n):
        raise ValueError(f"successes, n: expected integers with 0 <= successes <= n and n >= 1, got {successes}, {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    z = math.sqrt(2.0) * torch.special.erfinv(torch.tensor(confidence, dtype=torch.float64)).item()
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def perturbation_norms(x_adv: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per-sample Linf and L2 norms of x_adv - x over all non-batch dimensions: {"linf": (N,), "l2": (N,)}."""
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv: expected shape {tuple(x.shape)}, got {tuple(x_adv.shape)}")
    d = (x_adv - x).reshape(x.shape[0], -1).to(torch.float64)
    return {"linf": d.abs().amax(1), "l2": d.norm(dim=1)}


def summarize(correct: Tensor, confidence: float = 0.95) -> dict[str, float]:
    """{"accuracy", "ci_low", "ci_high", "n"} for a correctness vector."""
    c = _bool_vector(correct, "correct")
    k, n = int(c.sum()), int(c.numel())
    lo, hi = wilson_interval(k, n, confidence)
    return {"accuracy": k / n, "ci_low": lo, "ci_high": hi, "n": n}


__all__ = [
    "accuracy",
    "attack_success_rate",
    "correct_predictions",
    "perturbation_norms",
    "summarize",
    "wilson_interval",
    "worst_case",
]
