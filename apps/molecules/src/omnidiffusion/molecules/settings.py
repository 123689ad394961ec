"""Configs of the molecules app: dataclasses filled from TOML (configs/*.toml) and `--set key=value`.

`default` trains a small model on the bundled molecules on a 2-core CPU in minutes; `paper`, `qm9-paper` and
`drugs-paper` hold the GeoDiff hyper-parameters (Xu et al. 2022, configs/*_default.yml of the released code),
documented, not run in CI; `tiny` is the smoke-test config.

    config = load_config(MoleculesConfig, "default", ["sampler.steps=100"], package="omnidiffusion.molecules")
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omnidiffusion.core import GRIDS, METHODS
from omnidiffusion.core.checks import real_number
from omnidiffusion.core.settings import SamplerConfig, ScheduleConfig
from omnidiffusion.core.training import TrainConfig

PACKAGE = "omnidiffusion.molecules"
PAPER_METHOD = "geodiff-ld"
SAMPLER_METHODS = (PAPER_METHOD, *sorted(METHODS))

# (low, low_open) of each float setting of GeoDiffSamplerConfig; every one must be finite (clip_local may be None).
SAMPLER_RANGES = {
    "w_global": (0.0, False),
    "global_start_sigma": (0.0, False),
    "clip": (0.0, True),
    "clip_local": (0.0, True),
    "step_lr": (0.0, True),
    "damping": (0.0, False),
    "eps_scale": (0.0, True),
}


@dataclass
class ModelConfig:
    """GeoDiffNet constructor arguments (see models.GeoDiffNet)."""

    hidden: int = 64
    global_layers: int = 3
    local_layers: int = 3
    cutoff: float = 10.0
    smooth_conv: bool = False
    num_rbf: int = 32
    noise_embedding: bool = True


@dataclass
class GeoDiffScheduleConfig(ScheduleConfig):
    """GeoDiff's sigmoid beta table: 1e-7 to 2e-3 over T = 5000 steps."""

    name: str = "sigmoid"
    timesteps: int = 5000
    beta_start: float = 1e-7
    beta_end: float = 2e-3


@dataclass
class LossConfig:
    """Weights of the chain-rule loss on local edges (bonds and 2-3 hop neighbours) and radius-only edges."""

    local_weight: float = 5.0
    global_weight: float = 2.0

    def __post_init__(self) -> None:
        for key in ("local_weight", "global_weight"):
            real_number(getattr(self, key), f"loss.{key}", low=0.0)


@dataclass
class GeoDiffSamplerConfig(SamplerConfig):
    """How conformers are drawn.

    method: "geodiff-ld" (the paper's Langevin-style sampler) or any core method ("ddpm", "dpm++2m", ...).
    steps: grid size; for geodiff-ld and ddpm the paper uses every table step (schedule.timesteps).
    seed: seed of the sampling generator (a CPU generator: the same conformers on every device).
    batch_size: conformers per network call, at most; a call also holds at most `max_atoms` (20,000) atoms,
        which is the binding limit at the default.
    w_global, global_start_sigma, clip, clip_local: GeoDiff's mixing of the global term (used only below the
        VE noise level global_start_sigma), per-atom norm clipping of the global and local vectors.
    step_lr: the Langevin step scale, step = step_lr (sigma / 0.01)^2.
    damping: Tikhonov damping (relative to the mean stiffness) of the least-squares map from chain-rule
        vectors to eps used by the core samplers.
    eps_scale: factor on that eps for the core samplers (score scaling, i.e. lower-temperature sampling; 1 is
        the plain model). The small default config uses 1.5, chosen on training molecules.
    """

    method: str = PAPER_METHOD
    steps: int = 5000
    grid: str = "trailing"
    seed: int = 0
    batch_size: int = 20_000
    w_global: float = 1.0
    global_start_sigma: float = 0.5
    clip: float = 1000.0
    clip_local: float | None = None
    step_lr: float = 1e-6
    damping: float = 0.05
    eps_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in SAMPLER_METHODS:
            raise ValueError(f"sampler.method: expected one of {list(SAMPLER_METHODS)}, got {self.method!r}")
        if self.grid not in GRIDS:
            raise ValueError(f"sampler.grid: expected one of {list(GRIDS)}, got {self.grid!r}")
        for key, (low, low_open) in SAMPLER_RANGES.items():
            value = getattr(self, key)
            if not (key == "clip_local" and value is None):
                real_number(value, f"sampler.{key}", low=low, low_open=low_open)


@dataclass
class DataConfig:
    """Reference conformers: the bundled SMILES list (ETKDG + MMFF), an SDF, or GEOM on disk (`root`).

    Bundled data: n_confs reference conformers per molecule (seed), test_molecules held out (the last ones of the
    shipped list). sdf: a multi-conformer SDF to train on. max_molecules: cap on training molecules (0 = all).

    GEOM (see `geom`): root holds either GEOM's rdkit_folder (summary_<dataset>.json, per-molecule files
    converted once to SDF by `convert-geom --trust-pickle --root`) or GeoDiff's split files converted to SDF
    (train_data_40k.sdf, val_data_5k.sdf, test_data_1k.sdf); source "auto" tells them apart. The split follows
    GeoDiff's preprocessing: split_seed, split_molecules molecules with >= confs_per_mol unique conformers
    (their confs_per_mol most Boltzmann-probable ones), train_fraction for training and half the rest each for
    val and a fixed-size test; the benchmark test pool is test_pool other molecules with test_min_confs to
    test_max_confs unique conformers (all of them), of which GeoDiff's test.py scores [test_start, test_end).
    """

    sdf: str = ""
    n_confs: int = 5
    seed: int = 42
    test_molecules: int = 40
    max_molecules: int = 0
    root: str = ""
    dataset: str = "qm9"
    source: str = "auto"
    split_seed: int = 2021
    confs_per_mol: int = 5
    split_molecules: int = 50000
    train_fraction: float = 0.8
    test_pool: int = 1000
    test_min_confs: int = 50
    test_max_confs: int = 500
    test_start: int = 800
    test_end: int = 1000


@dataclass
class MoleculesConfig:
    """Everything `omnidiffusion-molecules train | generate | evaluate | convert-geom` reads."""

    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: GeoDiffScheduleConfig = field(default_factory=GeoDiffScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampler: GeoDiffSamplerConfig = field(default_factory=GeoDiffSamplerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, batch_size=32, lr=1e-3))
