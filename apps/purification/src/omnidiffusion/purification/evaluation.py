"""Clean and robust accuracy of a purified classifier under four threat models, and the report of `evaluate`.

    pipe = PurificationPipeline.from_pretrained("runs/purification/digits")
    report = evaluate(pipe)          # {"model", "baselines", "protocol"}: DiffPure vs the classifier alone on the
                                     # test split of data.source, as `omnidiffusion-purification evaluate`
    evaluate_robustness(model, (images, labels), ("pgd",), eps=0.1, threats=("classifier", "full"))

Threats (what the attacker differentiates, and what is then evaluated):
- "classifier": the undefended classifier alone (attack and evaluation on the classifier).
- "transfer": adversarial examples made on the classifier alone, then purified and classified. Non-adaptive,
  the easy win; it is not robustness (Nie et al. 2022 report it only as a sanity check).
- "bpda": attack the purified classifier with the purifier's backward replaced by the identity (Athalye et al.
  2018); with "eot-pgd" this is the BPDA+EOT protocol of Nie et al. 2022 (Sec. 5.2).
- "full": attack the purified classifier with exact gradients through every solver step; "eot-pgd" here is the
  adaptive attack that counts (Lee & Kim 2023).

The defended prediction averages the logits of `eval_runs` purifications whose noise is drawn independently
of the attacker's (the purifier's generator is reseeded with seed + 1 after each attack).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number

from .attacks import ATTACKS, THREATS, AttackConfig, check_threat, make_attack, plan_attacks
from .data import Note, check_labelled, load_images
from .diffpure import DiffPure
from .metrics import correct_predictions, perturbation_norms, summarize, worst_case
from .pipeline import PurificationPipeline, loading_shape
from .plots import plot_robustness
from .purified import PurifiedClassifier
from .settings import PurificationConfig


def _batches(x: Tensor, y: Tensor, batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
    for i in range(0, len(y), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


@torch.no_grad()
def defended_logits(model: PurifiedClassifier, x: Tensor, runs: int = 1) -> Tensor:
    """Mean logits of `runs` independent purifications followed by the classifier: (B, K)."""
    out = model.classifier(model.purifier(x))
    for _ in range(runs - 1):
        out = out + model.classifier(model.purifier(x))
    return out / runs


def _eps_list(eps: float | Sequence[float]) -> list[float]:
    """One budget or a non-empty sequence of them, as floats (each checked by `check_threat`)."""
    eps_list = list(eps) if isinstance(eps, Sequence) else [eps]
    if not eps_list:
        raise ValueError("eps: expected a perturbation budget or a non-empty list of them, got []")
    return [real_number(e, "eps (a perturbation budget)", low=0.0, low_open=True) for e in eps_list]


def _check_classes(labels: Tensor, n_classes: int) -> None:
    if labels.max().item() >= n_classes:
        raise ValueError(
            f"labels: expected class indices in [0, {n_classes}) for a classifier with {n_classes} outputs, "
            f"got {labels.max().item()}"
        )


def _reseed(purifier: nn.Module, seed: int) -> None:
    if isinstance(purifier, DiffPure):
        purifier.reset_noise(seed)


def evaluate_robustness(
    model: PurifiedClassifier,
    data: tuple[Tensor, Tensor],
    attacks: Sequence[str] = ("pgd",),
    eps: float | Sequence[float] = 8 / 255,
    norm: str = "linf",
    *,
    threats: Sequence[str] = THREATS,
    config: AttackConfig | None = None,
    eval_runs: int = 1,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Clean and robust accuracy of `model` and of its classifier alone on `data` = (images in [0, 1], labels).

    Every combination of `attacks` (ATTACKS) x `threats` (THREATS) x `eps` is run. Returns
    {"clean": {"classifier": summary, "purified": summary}, "results": [row, ...], "worst_case": [...],
    "protocol": {...}}; each row holds threat, attack, eps, norm, accuracy, its 95% Wilson interval, n, the
    largest perturbation norm and the protocol in words. "worst_case" is the per-sample minimum over attacks for
    each (threat, eps).
    """
    if not isinstance(model, PurifiedClassifier):
        raise ValueError(f"model: expected a PurifiedClassifier, got {type(model).__name__}")
    images, labels = data
    check_labelled(images, labels)
    eps_list = _eps_list(eps)
    for e in eps_list:
        norm = check_threat(e, norm)
    for a in attacks:
        if a not in ATTACKS:
            raise ValueError(f"attacks: expected names from {ATTACKS}, got {a!r}")
    for t in threats:
        if t not in THREATS:
            raise ValueError(f"threats: expected names from {THREATS}, got {t!r}")
    eval_runs = positive_int(eval_runs, "eval_runs")
    batch_size = positive_int(batch_size, "batch_size")
    seed = non_negative_int(seed, "seed")
    cfg = config or AttackConfig()
    model.eval()
    device = next(model.parameters(), model._device_anchor).device
    x_all, y_all = images.to(device), labels.to(device)
    classifier, purifier = model.classifier, model.purifier
    with torch.no_grad():
        n_classes = int(classifier(x_all[:1]).shape[1])
    _check_classes(labels, n_classes)

    def evaluate(x_adv: Tensor, y: Tensor, defended: bool) -> Tensor:
        if not defended:
            with torch.no_grad():
                return correct_predictions(classifier(x_adv), y)
        return correct_predictions(defended_logits(model, x_adv, eval_runs), y)

    # Clean accuracy: the classifier alone, and the purified classifier under the evaluation noise.
    _reseed(purifier, seed + 1)
    clean_cls = torch.cat([evaluate(x, y, False) for x, y in _batches(x_all, y_all, batch_size)])
    clean_pur = torch.cat([evaluate(x, y, True) for x, y in _batches(x_all, y_all, batch_size)])

    rows: list[dict] = []
    corrects: dict[tuple[str, float], list[Tensor]] = {}
    jobs = [(e, a, t) for e in eps_list for a in attacks for t in threats]
    bar = tqdm(total=len(jobs) * -(-len(y_all) // batch_size), desc="attacks", disable=not progress, leave=False)
    cache: dict[tuple[float, str], Tensor] = {}  # classifier-alone adversarials, shared by classifier/transfer
    for e, a, t in jobs:
        on_classifier = t in ("classifier", "transfer")
        target = classifier if on_classifier else model
        atk, protocol = make_attack(
            a, target, e, norm, cfg, stochastic=not on_classifier, n_classes=n_classes, seed=seed
        )
        grad_mode = "bpda" if t == "bpda" else "full"
        got, norms = [], []
        for bi, (x, y) in enumerate(_batches(x_all, y_all, batch_size)):
            key = (e, a, bi)
            if on_classifier and key in cache:
                x_adv = cache[key]
            else:
                torch.manual_seed(seed + bi)  # torchattacks' random starts use torch's global RNG
                _reseed(purifier, seed + bi)
                if isinstance(purifier, DiffPure):
                    with purifier.gradient_mode(grad_mode):
                        x_adv = atk(x, y)
                else:
                    x_adv = atk(x, y)
                if on_classifier:
                    cache[key] = x_adv
            _reseed(purifier, seed + 1 + bi)
            got.append(evaluate(x_adv, y, defended=t != "classifier"))
            n = perturbation_norms(x_adv, x)[norm]
            norms.append(n)
            bar.update(1)
        correct = torch.cat(got).cpu()
        corrects.setdefault((t, e), []).append(correct)
        gradient = {
            "classifier": "classifier alone",
            "transfer": "classifier alone, then purified",
            "bpda": "BPDA (identity backward through the purifier)",
            "full": "full gradients through the purifier",
        }[t]
        rows.append(
            {
                "threat": t,
                "attack": a,
                "eps": e,
                "norm": norm,
                **summarize(correct),
                "max_perturbation": torch.cat(norms).max().item(),
                "protocol": f"{protocol}; attacker sees: {gradient}; evaluated on "
                + (
                    "the classifier"
                    if t == "classifier"
                    else f"purifier + classifier, mean logits of {eval_runs} run(s)"
                ),
            }
        )
    bar.close()
    worst = [
        {"threat": t, "eps": e, "attacks": list(attacks), **summarize(worst_case(c))} for (t, e), c in corrects.items()
    ]
    dp = purifier if isinstance(purifier, DiffPure) else None
    protocol = {
        "n": int(len(y_all)),
        "norm": norm,
        "attack_config": asdict(cfg),
        "eval_runs": eval_runs,
        "seed": seed,
        "purifier": None
        if dp is None
        else {
            "t_star": dp.t_star,
            "method": dp.method,
            "steps": dp.steps,
            "grid": dp.grid,
            "checkpointing": dp.checkpointing,
            "fixed_noise": dp.fixed_noise,
        },
    }
    return {
        "clean": {"classifier": summarize(clean_cls.cpu()), "purified": summarize(clean_pur.cpu())},
        "results": rows,
        "worst_case": worst,
        "protocol": protocol,
    }


@torch.no_grad()
def _purified_correct(model: PurifiedClassifier, x: Tensor, y: Tensor, runs: int, batch_size: int) -> Tensor:
    return torch.cat(
        [correct_predictions(defended_logits(model, xb, runs), yb).cpu() for xb, yb in _batches(x, y, batch_size)]
    )


def sweep_t_star(
    model: PurifiedClassifier,
    data: tuple[Tensor, Tensor],
    t_stars: Sequence[float],
    eps: Sequence[float],
    norm: str = "linf",
    *,
    config: AttackConfig | None = None,
    eval_runs: int = 1,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Clean and transfer-PGD accuracy of the purified classifier for every t* x eps (and the classifier's own).

    The PGD examples are made once per eps on the classifier alone; DiffPure keeps its step size dt = t*/steps, so
    steps(t*) = max(1, round(t* / dt)). Rows: threat "clean" (eps 0), "classifier" or "transfer", with t_star.
    """
    dp = model.diffpure
    if dp is None:
        raise ValueError("model: sweep_t_star needs a PurifiedClassifier whose purifier is a DiffPure")
    images, labels = data
    check_labelled(images, labels)
    eps = _eps_list(eps)
    t_stars = [real_number(t, "t_stars (diffusion times)", low=0.0, high=1.0, high_open=True) for t in t_stars]
    eval_runs = positive_int(eval_runs, "eval_runs")
    batch_size = positive_int(batch_size, "batch_size")
    seed = non_negative_int(seed, "seed")
    cfg = config or AttackConfig()
    device = next(model.parameters(), model._device_anchor).device
    x_all, y_all = images.to(device), labels.to(device)
    model.eval()
    with torch.no_grad():
        _check_classes(labels, int(model.classifier(x_all[:1]).shape[1]))
    dt = dp.t_star / dp.steps if dp.t_star > 0 else 1e-2
    t0, steps0 = dp.t_star, dp.steps
    advs: dict[float, Tensor] = {}
    rows: list[dict] = []
    for e in eps:
        norm = check_threat(float(e), norm)
        atk, protocol = make_attack("pgd", model.classifier, float(e), norm, cfg, stochastic=False, seed=seed)
        parts = []
        for bi, (x, y) in enumerate(_batches(x_all, y_all, batch_size)):
            torch.manual_seed(seed + bi)
            parts.append(atk(x, y))
        advs[float(e)] = torch.cat(parts)
        with torch.no_grad():
            correct = torch.cat(
                [
                    correct_predictions(model.classifier(xb), yb).cpu()
                    for xb, yb in _batches(advs[float(e)], y_all, batch_size)
                ]
            )
        rows.append(
            {
                "threat": "classifier",
                "attack": "pgd",
                "eps": float(e),
                "norm": norm,
                "t_star": None,
                **summarize(correct),
                "protocol": f"{protocol}; classifier alone",
            }
        )
    try:
        for t in tqdm(list(t_stars), desc="t* sweep", disable=not progress, leave=False):
            dp.t_star, dp.steps = float(t), max(1, round(float(t) / dt))
            _reseed(dp, seed + 1)
            rows.append(
                {
                    "threat": "clean",
                    "attack": "none",
                    "eps": 0.0,
                    "norm": norm,
                    "t_star": float(t),
                    "steps": dp.steps,
                    **summarize(_purified_correct(model, x_all, y_all, eval_runs, batch_size)),
                    "protocol": f"clean; DiffPure {dp.method} t*={t:g}, {dp.steps} steps",
                }
            )
            for e, x_adv in advs.items():
                _reseed(dp, seed + 1)
                rows.append(
                    {
                        "threat": "transfer",
                        "attack": "pgd",
                        "eps": e,
                        "norm": norm,
                        "t_star": float(t),
                        "steps": dp.steps,
                        **summarize(_purified_correct(model, x_adv, y_all, eval_runs, batch_size)),
                        "protocol": f"PGD-{cfg.steps} on the classifier alone, then DiffPure {dp.method} t*={t:g}, "
                        f"{dp.steps} steps, mean logits of {eval_runs} run(s)",
                    }
                )
    finally:
        dp.t_star, dp.steps = t0, steps0
    return rows


def pick_test_images(images: Tensor, labels: Tensor, n: int, subset_seed: int | None) -> tuple[Tensor, Tensor]:
    """The first `n` test images, or (with `subset_seed`) `n` drawn without replacement (DiffPure: 64 per seed)."""
    if subset_seed is None:
        return images[:n], labels[:n]
    pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(subset_seed))[:n]
    return images[pick], labels[pick]


def held_out_images(
    pipe: PurificationPipeline, config: PurificationConfig, note: Note | None = None
) -> tuple[Tensor, Tensor]:
    """The test split of data.source (data.root for "cifar10") at the shape of `pipe`'s diffusion model."""
    size, channels = loading_shape(pipe, config.data, note)
    return load_images(
        config.data.source,
        split="test",
        size=size,
        channels=channels,
        name="data.source",
        note=note,
        root=config.data.root,
    )


def evaluate(
    pipe: PurificationPipeline,
    config: PurificationConfig | None = None,
    data: tuple[Tensor, Tensor] | None = None,
    *,
    plot: str | Path | None = None,
    progress: bool = True,
    note: Note | None = None,
) -> dict:
    """The report of `omnidiffusion-purification evaluate`: {"model", "baselines", "protocol"}.

    `pipe` is a PurificationPipeline with a classifier; `config` (default the pipeline's) names in `[evaluate]`
    the attacks, budgets, norm, test size n (pick_test_images), seed and repeated purifications, in `[attack]` the
    attack hyper-parameters; `data` = (images in [0, 1], labels) is the test set, default the test split of
    data.source (held_out_images). "model" holds DiffPure + classifier (clean, and one entry per attack, eps and
    threat), "baselines" the classifier alone under the same attacks. With `plot`, also the clean and transfer
    accuracy over evaluate.t_stars (and the purifier's t*), drawn against eps and t* into that PNG.
    """
    config = pipe.config if config is None else config
    if not isinstance(config, PurificationConfig):
        raise ValueError(f"config: expected a PurificationConfig, got {type(config).__name__}")
    if pipe.classifier is None:
        c = config.classifier
        raise ValueError(
            "classifier.weights: expected a classifier directory (train-classifier output) or a weight file for "
            f"classifier.arch = {c.arch!r} (the checkpoint holds no classifier/), got none"
        )
    images, labels = held_out_images(pipe, config, note) if data is None else data
    e, cfg, dp = config.evaluate, config.attack, pipe.purifier
    x, y = pick_test_images(images, labels, e.n, e.subset_seed)
    model = PurifiedClassifier(dp, pipe.classifier).to(pipe.device)
    rows, worst, clean = [], [], None
    for attack, threats in plan_attacks(e.attacks).items():
        r = evaluate_robustness(
            model,
            (x, y),
            (attack,),
            e.eps,
            e.norm,
            threats=threats,
            config=cfg,
            eval_runs=e.eval_runs,
            batch_size=e.batch_size,
            seed=e.seed,
            progress=progress,
        )
        rows += r["results"]
        worst += r["worst_case"]
        clean = r["clean"]
    model_metrics = {"clean_accuracy": clean["purified"]["accuracy"]}
    baseline = {"clean_accuracy": clean["classifier"]["accuracy"]}
    for row in rows:
        key = f"robust_accuracy[{row['attack']}, eps={row['eps']:g}"
        if row["threat"] == "classifier":
            baseline[key + "]"] = row["accuracy"]
        else:
            model_metrics[key + f", {row['threat']}]"] = row["accuracy"]
    report = {
        "model": model_metrics,
        "baselines": {"classifier alone": baseline},
        "protocol": {
            "data": config.data.source,
            "data_root": config.data.root,
            "subset_seed": e.subset_seed,
            "diffusion": pipe.source,
            "n": int(len(y)),
            "norm": e.norm,
            "eps": e.eps,
            "attacks": e.attacks,
            "seed": e.seed,
            "purifier": {"t_star": dp.t_star, "method": dp.method, "steps": dp.steps, "grid": dp.grid},
            "attack_config": asdict(cfg),
            "eval_runs": e.eval_runs,
            "rows": rows,
            "clean": clean,
            "worst_case": worst,
        },
    }
    if plot:
        t_stars = sorted({*e.t_stars, dp.t_star}) if e.t_stars else [dp.t_star]
        sweep = sweep_t_star(
            model,
            (x, y),
            t_stars,
            e.eps,
            e.norm,
            config=cfg,
            eval_runs=e.eval_runs,
            batch_size=e.batch_size,
            seed=e.seed,
            progress=progress,
        )
        for row in rows:
            row.setdefault("t_star", dp.t_star)
        plot_robustness(sweep + [r for r in rows if r["threat"] != "transfer"], plot, t_star=dp.t_star)
        report["protocol"]["t_star_sweep"] = sweep
        report["protocol"]["plot"] = str(plot)
    return report


__all__ = [
    "THREATS",
    "defended_logits",
    "evaluate",
    "evaluate_robustness",
    "pick_test_images",
    "sweep_t_star",
    "held_out_images",
]
