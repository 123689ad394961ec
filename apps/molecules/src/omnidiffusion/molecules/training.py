"""Training and evaluation wiring shared by the CLI, the benchmark and the demo.

`load_training_data` picks the data (an SDF, GEOM's train split under data.root, or the bundled molecules minus
the held-out tail); `train` runs
core's `fit` on the GeoDiff loss and stores the schedule and sampler settings as checkpoint metadata;
`evaluate_model` scores a generator and the baselines with COV/MAT on the same reference ensembles.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rdkit import Chem

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.training import TrainResult, fit

from .config import DataConfig, MoleculesConfig
from .data import ConformerDataset, bundled_smiles, collate, read_sdf, reference_ensembles
from .geom import COV_THRESHOLD, GEOM_DATASETS, SOURCES, load_split
from .metrics import MAX_MATCHES, check_conformers, check_threshold, etkdg_baseline, evaluate_sets, random_baseline
from .models import GeoDiffNet
from .pipeline import ConformerGenerator
from .sampling import check_sampler
from .task import build_schedule, check_diffusion, geodiff_loss


def check_data(cfg: DataConfig) -> DataConfig:
    """Refuse a DataConfig with a ValueError naming the `data.<key>` at fault; returns it unchanged."""
    positive_int(cfg.n_confs, "data.n_confs")
    non_negative_int(cfg.max_molecules, "data.max_molecules")
    positive_int(cfg.test_molecules, "data.test_molecules")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, numbers.Integral):
        raise ValueError(f"data.seed: expected an integer, got {cfg.seed!r}")
    if not isinstance(cfg.sdf, str):
        raise ValueError(f"data.sdf: expected a file path (or '' for the bundled data), got {cfg.sdf!r}")
    if not isinstance(cfg.root, str):
        raise ValueError(f"data.root: expected a directory path (or '' for no GEOM data), got {cfg.root!r}")
    if cfg.sdf and cfg.root:
        raise ValueError(f"data.sdf, data.root: expected one source of training data, got both ({cfg.sdf}, {cfg.root})")
    if cfg.dataset not in GEOM_DATASETS:
        raise ValueError(f"data.dataset: expected one of {list(GEOM_DATASETS)}, got {cfg.dataset!r}")
    if cfg.source not in SOURCES:
        raise ValueError(f"data.source: expected one of {list(SOURCES)}, got {cfg.source!r}")
    for key in ("split_seed", "test_start"):
        non_negative_int(getattr(cfg, key), f"data.{key}")
    for key in ("confs_per_mol", "split_molecules", "test_pool", "test_min_confs", "test_max_confs", "test_end"):
        positive_int(getattr(cfg, key), f"data.{key}")
    real_number(cfg.train_fraction, "data.train_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
    if cfg.test_min_confs > cfg.test_max_confs:
        raise ValueError(
            f"data.test_min_confs, data.test_max_confs: expected min <= max, got {cfg.test_min_confs} > "
            f"{cfg.test_max_confs}"
        )
    if cfg.test_start >= cfg.test_end:
        raise ValueError(
            f"data.test_start, data.test_end: expected start < end, got {cfg.test_start} >= {cfg.test_end}"
        )
    return cfg


def cov_threshold(cfg: DataConfig) -> float:
    """The paper's COV threshold for the configured data: 0.5 A (QM9, and the bundled QM9-like set), 1.25 A Drugs."""
    return COV_THRESHOLD[cfg.dataset] if cfg.root else COV_THRESHOLD["qm9"]


def build_model(config: MoleculesConfig) -> GeoDiffNet:
    """GeoDiffNet(**config.model); a bad argument is reported as `model.<key>`."""
    try:
        return GeoDiffNet(**asdict(config.model))
    except ValueError as e:  # every check message starts with the argument's name
        raise ValueError(f"model.{e}") from None


def bundled_split(cfg: DataConfig, *, progress: bool = False) -> tuple[list[Chem.Mol], list[Chem.Mol]]:
    """(train, test) reference ensembles of the bundled molecules; the last cfg.test_molecules are held out."""
    check_data(cfg)
    smiles = bundled_smiles()
    if not 0 < cfg.test_molecules < len(smiles):
        raise ValueError(f"data.test_molecules: expected 1..{len(smiles) - 1}, got {cfg.test_molecules}")
    mols = reference_ensembles(smiles, cfg.n_confs, cfg.seed, progress=progress)
    train, test = mols[: -cfg.test_molecules], mols[-cfg.test_molecules :]
    if cfg.max_molecules > 0:
        train = train[: cfg.max_molecules]
    return train, test


def load_training_data(cfg: DataConfig, *, progress: bool = False) -> list[Chem.Mol]:
    """Conformer ensembles to train on: cfg.sdf, the GEOM train split under cfg.root, or the bundled molecules."""
    check_data(cfg)
    if cfg.root:
        mols = load_split(cfg, "train")[0]
        return mols[: cfg.max_molecules] if cfg.max_molecules > 0 else mols
    if cfg.sdf:
        mols = read_sdf(cfg.sdf)
        return mols[: cfg.max_molecules] if cfg.max_molecules > 0 else mols
    return bundled_split(cfg, progress=progress)[0]


def train(config: MoleculesConfig, out_dir: str | Path, *, mols: list[Chem.Mol] | None = None) -> TrainResult:
    """Train GeoDiffNet on `mols` (default: config.data) with core's fit; resumes from out_dir if it holds one.

    Every section is checked before any data is made, the sampler settings too (they are stored in the checkpoint).
    """
    net = build_model(config)
    schedule = build_schedule(check_diffusion(config.diffusion))
    check_sampler(config.sampler)
    check_data(config.data)
    mols = load_training_data(config.data, progress=config.train.progress) if mols is None else mols
    dataset = ConformerDataset(mols)
    metadata = {"diffusion": asdict(config.diffusion), "sampler": asdict(config.sampler)}

    def loss_fn(model, batch):
        return geodiff_loss(model, batch, schedule, config.diffusion)

    return fit(net, loss_fn, dataset, config.train, out_dir, collate_fn=collate, metadata=metadata)


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
