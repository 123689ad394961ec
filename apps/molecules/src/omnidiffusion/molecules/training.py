"""Training: the data of a config and core's `fit` on the GeoDiff loss (shared by the CLI, benchmark and demo).

`load_training_data` picks the data (an SDF, GEOM's train split under data.root, or the bundled molecules minus
the held-out tail; `bundled_split` also gives that tail, the evaluation's default references); `train` runs
core's `fit` on the GeoDiff loss and stores the whole config beside the weights (run_config.json), which
`ConformerGenerator.from_pretrained` and the inference commands start from.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict
from pathlib import Path

from rdkit import Chem

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.training import TrainResult, fit, seed_everything

from .data import ConformerDataset, bundled_smiles, collate, read_sdf, reference_ensembles
from .geom import GEOM_DATASETS, SOURCES, load_split
from .models import GeoDiffNet
from .settings import DataConfig, MoleculesConfig
from .task import check_loss, geodiff_loss


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


def train(
    config: MoleculesConfig,
    out_dir: str | Path,
    *,
    resume: bool | None = None,
    mols: list[Chem.Mol] | None = None,
) -> TrainResult:
    """Train GeoDiffNet on `mols` (default: config.data) with core's fit; the config goes to run_config.json.

    resume: None continues from out_dir's checkpoint when there is one, True requires one, False refuses one.
    Every section is checked before any data is made (the sampler's when the config was built). The initial
    weights follow train.seed (fit seeds only its own loop).
    """
    seed_everything(config.train.seed)
    net = build_model(config)
    schedule = config.schedule.build()
    check_loss(config.loss)
    check_data(config.data)
    mols = load_training_data(config.data, progress=config.train.progress) if mols is None else mols
    dataset = ConformerDataset(mols)

    def loss_fn(model, batch):
        return geodiff_loss(model, batch, schedule, config.loss)

    return fit(net, loss_fn, dataset, config.train, out_dir, collate_fn=collate, resume=resume, run_config=config)
