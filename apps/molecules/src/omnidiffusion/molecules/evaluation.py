"""Model vs baselines on held-out molecules: COV/MAT (GeoDiff's protocol) and the JSON of `evaluate`.

`evaluate_model` scores a generator (one entry per sampler setting) and the baselines (Rg-scaled Gaussian
coordinates, RDKit ETKDG + MMFF with another seed) on the same reference ensembles; `evaluation_report`
picks the references of a config (an SDF, GEOM's test molecules under data.root, or the bundled held-out
molecules) and returns the `{"model", "baselines", "protocol"}` object `omnidiffusion-molecules evaluate` prints.
"""

from __future__ import annotations

import numbers
import time
from pathlib import Path
from typing import Any

from rdkit import Chem

from omnidiffusion.core.checks import positive_int

from .data import read_sdf
from .geom import COV_THRESHOLD, PAPER_SCORES, load_split
from .metrics import MAX_MATCHES, check_conformers, check_threshold, etkdg_baseline, evaluate_sets, random_baseline
from .pipeline import ConformerGenerator
from .settings import DataConfig, MoleculesConfig
from .training import bundled_split, check_data


def cov_threshold(cfg: DataConfig) -> float:
    """The paper's COV threshold for the configured data: 0.5 A (QM9, and the bundled QM9-like set), 1.25 A Drugs."""
    return COV_THRESHOLD[cfg.dataset] if cfg.root else COV_THRESHOLD["qm9"]


def reference_set(cfg: DataConfig, sdf: str | Path | None = None) -> tuple[list[Chem.Mol], str, dict | None]:
    """(reference ensembles, their description, GEOM split info or None): `sdf`, else the GEOM test molecules
    [test_start, test_end) under cfg.root, else the bundled held-out molecules."""
    if sdf:
        return read_sdf(sdf), str(sdf), None
    check_data(cfg)
    if cfg.root:
        refs, split = load_split(cfg, "test")
        return refs, f"GEOM-{cfg.dataset} test molecules [{cfg.test_start}, {cfg.test_end})", split
    refs = bundled_split(cfg)[1]
    return refs, f"bundled held-out molecules ({len(refs)})", None


def evaluation_report(
    generator: ConformerGenerator | None,
    config: MoleculesConfig,
    *,
    sdf: str | Path | None = None,
    threshold: float | None = None,
    ratio: int = 2,
    max_molecules: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The `evaluate` JSON: the generator (None: baselines only) with its sampler settings against the
    baselines on `reference_set(config.data, sdf)`; sampler.seed seeds both.

    threshold: COV threshold in Angstrom (default: the paper's for the data); max_molecules: score only the
    first N (0: all); checkpoint: recorded in the protocol.
    """
    refs, data, split = reference_set(config.data, sdf)
    threshold = cov_threshold(config.data) if threshold is None else threshold
    if positive_int(max_molecules, "max_molecules", minimum=0):
        refs = refs[:max_molecules]
    cfg = None if generator is None else generator.sampler
    seed = config.sampler.seed if cfg is None else cfg.seed
    result = evaluate_model(generator, refs, threshold=threshold, ratio=ratio, seed=seed, progress=progress)
    sampler = None
    if cfg is not None:
        sampler = {"method": cfg.method, "steps": cfg.steps, "grid": cfg.grid, "w_global": cfg.w_global, "seed": seed}
    checkpoint = None if checkpoint is None else str(checkpoint)
    protocol = dict(result["protocol"], data=data, checkpoint=checkpoint, sampler=sampler)
    if split is not None:
        protocol["split"] = split
        scores = PAPER_SCORES[config.data.dataset]
        protocol["paper_geodiff_c"] = {"scores_mean_median": scores, "threshold_A": threshold}
    model = next(iter(result["model"].values()), None)
    return {"model": model, "baselines": result["baselines"], "protocol": protocol}


def evaluate_model(
    generator: ConformerGenerator | None,
    refs: list[Chem.Mol],
    *,
    threshold: float = 0.5,
    ratio: int = 2,
    samplers: list[tuple] | None = None,
    baselines: bool = True,
    seed: int = 0,
    progress: bool = False,
    max_matches: int = MAX_MATCHES,
) -> dict[str, Any]:
    """COV/MAT of the model (one entry per (method, steps[, sampler overrides]) in `samplers`) and the baselines.

    Each molecule gets ratio x (its reference count) conformers, as in the GeoDiff protocol.
    Returns {"model": {name: metrics}, "baselines": {name: metrics}, "protocol": {...}}.
    """
    ratio = positive_int(ratio, "ratio")
    threshold = check_threshold(threshold)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    if not refs:
        raise ValueError("refs: expected at least one reference molecule, got none")
    for k, m in enumerate(refs):
        check_conformers(m, f"refs[{k}]")
    counts = [ratio * m.GetNumConformers() for m in refs]
    out: dict[str, Any] = {"model": {}, "baselines": {}}
    if generator is not None:
        for spec in samplers or [(generator.sampler.method, generator.sampler.steps)]:
            method, steps, extra = spec[0], spec[1], dict(spec[2]) if len(spec) > 2 else {}
            name = f"{method}@{steps}" + "".join(f", {k}={v}" for k, v in extra.items())
            t0 = time.perf_counter()
            try:
                gens = generator.generate_many(
                    refs, counts, method=method, steps=steps, seed=seed, progress=progress, **extra
                )
            except FloatingPointError as e:  # a diverged sampler is a result, not a crash of the whole evaluation
                out["model"][name] = {"diverged": str(e), "method": method, "steps": steps}
                continue
            wall = time.perf_counter() - t0
            scores = evaluate_sets(refs, gens, threshold, max_matches=max_matches)
            scores.update(sampling_s=wall, method=method, steps=steps, **extra)
            out["model"][name] = scores
    if baselines:
        rand = [random_baseline(m, n, seed + k) for k, (m, n) in enumerate(zip(refs, counts, strict=True))]
        out["baselines"]["random (Rg-scaled Gaussian)"] = evaluate_sets(refs, rand, threshold, max_matches=max_matches)
        t0 = time.perf_counter()
        etkdg = [etkdg_baseline(m, n, 10_000 + seed + k) for k, (m, n) in enumerate(zip(refs, counts, strict=True))]
        scores = evaluate_sets(refs, etkdg, threshold, max_matches=max_matches)
        scores["sampling_s"] = time.perf_counter() - t0
        out["baselines"]["RDKit ETKDG+MMFF (other seed)"] = scores
    out["protocol"] = {
        "molecules": len(refs),
        "reference_conformers": sum(m.GetNumConformers() for m in refs),
        "generated_per_molecule": f"{ratio} x references",
        "threshold_A": threshold,
        "rmsd": f"heavy-atom RDKit GetBestRMS, maxMatches={max_matches}",
        "seed": seed,
    }
    return out
