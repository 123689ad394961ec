"""torchattacks attacks by name, each with a one-line statement of its protocol.

    atk, protocol = make_attack("eot-pgd", model, eps=0.1, norm="linf", config=AttackConfig(steps=20, eot_iter=10))
    x_adv = atk(images, labels)                            # images in [0, 1], labels (N,)

- "pgd": PGD (Madry et al. 2018), Linf (`torchattacks.PGD`) or L2 (`PGDL2`), random start, step alpha
  (default 2.5 eps / steps, Madry's rule).
- "eot-pgd": PGD on the expectation over the purifier's randomness (Athalye et al. 2018): Linf sums the
  gradients of `eot_iter` stochastic forward passes before each sign step (`torchattacks.EOTPGD`); L2 runs
  `PGDL2` on the mean logits of `eot_iter` purifications (torchattacks has no L2 EOT-PGD).
- "apgd": APGD-CE (Croce & Hein 2020) with `apgd_steps` iterations and `eot_iter` EOT samples.
- "autoattack": torchattacks' AutoAttack, version "standard" (APGD-CE, APGD-T, FAB-T, Square) against a
  deterministic model and "rand" (APGD-CE and APGD-DLR with EOT 20) against a stochastic one. Its APGD runs
  torchattacks' default 10 iterations (100 in the official package), so it is weaker than RobustBench's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torchattacks
from torch import Tensor, nn
from torchattacks.attack import Attack

from omnidiffusion.core.checks import positive_int, real_number

ATTACKS = ("pgd", "eot-pgd", "apgd", "autoattack")
NORMS = ("linf", "l2")
THREATS = ("classifier", "transfer", "bpda", "full")  # see evaluation.evaluate_robustness

# Command-line attack names -> (torchattacks attack, threats it is run under).
ATTACK_PLANS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pgd": ("pgd", ("classifier", "transfer", "full")),
    "eot-pgd": ("eot-pgd", ("classifier", "full")),
    "bpda-eot": ("eot-pgd", ("classifier", "bpda")),
    "apgd": ("apgd", ("classifier", "full")),
    "autoattack": ("autoattack", ("classifier", "full")),
}


def plan_attacks(names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Command-line attack names (ATTACK_PLANS) -> {torchattacks attack: threats}, threats merged in THREATS order."""
    plan: dict[str, set[str]] = {}
    for name in names:
        if name not in ATTACK_PLANS:
            raise ValueError(f"attack: expected names from {sorted(ATTACK_PLANS)}, got {name!r}")
        attack, threats = ATTACK_PLANS[name]
        plan.setdefault(attack, set()).update(threats)
    return {a: tuple(t for t in THREATS if t in ts) for a, ts in plan.items()}


@dataclass
class AttackConfig:
    """Attack hyper-parameters shared by every attack; `alpha` None means 2.5 eps / steps."""

    steps: int = 20
    alpha: float | None = None
    eot_iter: int = 10
    apgd_steps: int = 20
    random_start: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "eot_iter", "apgd_steps"):
            positive_int(getattr(self, name), f"AttackConfig.{name}")
        if self.alpha is not None:
            real_number(self.alpha, "AttackConfig.alpha (None = 2.5 eps / steps)", low=0.0, low_open=True)


class MeanLogits(nn.Module):
    """EOT as a model: the mean of `n` forward passes of a stochastic model (used for L2 EOT-PGD)."""

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        self.model = model
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        for _ in range(self.n - 1):
            out = out + self.model(x)
        return out / self.n


def check_threat(eps: float, norm: str) -> str:
    """Validate eps > 0 and norm in NORMS; returns the norm lower-cased."""
    if not isinstance(norm, str) or norm.lower() not in NORMS:
        raise ValueError(f"norm: expected one of {NORMS}, got {norm!r}")
    real_number(eps, "eps (a perturbation budget)", low=0.0, low_open=True)
    return norm.lower()


def make_attack(
    name: str,
    model: nn.Module,
    eps: float,
    norm: str = "linf",
    config: AttackConfig | None = None,
    *,
    stochastic: bool = True,
    n_classes: int = 10,
    seed: int = 0,
) -> tuple[Attack, str]:
    """A torchattacks attack on `model` (inputs in [0, 1]) and its protocol in words.

    `stochastic` says whether the model's forward pass is random (a purifier): it selects EOT for "apgd" and the
    "rand" AutoAttack; against a deterministic model "eot-pgd" is plain PGD (one sample suffices).
    """
    if name not in ATTACKS:
        raise ValueError(f"attack: expected one of {ATTACKS}, got {name!r}")
    norm = check_threat(eps, norm)
    cfg = config or AttackConfig()
    alpha = cfg.alpha if cfg.alpha is not None else 2.5 * eps / cfg.steps
    eot = cfg.eot_iter if stochastic else 1
    ball = f"{'Linf' if norm == 'linf' else 'L2'} eps={eps:g}"
    start = "random start" if cfg.random_start else "no random start"
    if name == "pgd" or (name == "eot-pgd" and eot == 1):
        cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
        atk = cls(model, eps=eps, alpha=alpha, steps=cfg.steps, random_start=cfg.random_start)
        return atk, f"PGD-{cfg.steps} {ball}, step {alpha:.4g}, {start}"
    if name == "eot-pgd":
        if norm == "linf":
            atk = torchattacks.EOTPGD(
                model, eps=eps, alpha=alpha, steps=cfg.steps, eot_iter=eot, random_start=cfg.random_start
            )
            return atk, f"EOT-PGD-{cfg.steps} {ball}, step {alpha:.4g}, {eot} EOT samples (summed gradients), {start}"
        atk = torchattacks.PGDL2(
            MeanLogits(model, eot), eps=eps, alpha=alpha, steps=cfg.steps, random_start=cfg.random_start
        )
        return atk, f"EOT-PGD-{cfg.steps} {ball}, step {alpha:.4g}, mean logits of {eot} samples, {start}"
    if name == "apgd":
        atk = torchattacks.APGD(
            model,
            norm="Linf" if norm == "linf" else "L2",
            eps=eps,
            steps=cfg.apgd_steps,
            n_restarts=1,
            seed=seed,
            loss="ce",
            eot_iter=eot,
        )
        return atk, f"APGD-CE-{cfg.apgd_steps} {ball}, {eot} EOT samples, 1 restart"
    version = "rand" if stochastic else "standard"
    atk = torchattacks.AutoAttack(
        model, norm="Linf" if norm == "linf" else "L2", eps=eps, version=version, n_classes=n_classes, seed=seed
    )
    what = "APGD-CE + APGD-DLR, EOT 20" if stochastic else "APGD-CE, APGD-T, FAB-T, Square"
    return atk, f"AutoAttack-{version} (torchattacks: {what}; APGD 10 iterations) {ball}"


__all__ = [
    "ATTACKS",
    "ATTACK_PLANS",
    "NORMS",
    "THREATS",
    "AttackConfig",
    "MeanLogits",
    "check_threat",
    "make_attack",
    "plan_attacks",
]
