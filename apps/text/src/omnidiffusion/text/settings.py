"""The text app's config tree: dataclasses read from TOML (configs/*.toml) with `--set a.b=value` overrides.

`default` trains on the bundled corpus on a 2-core CPU in minutes; `paper` holds Diffusion-LM's E2E
hyper-parameters (Li et al. 2022, App. and README of the released code: BERT-base sizes, d = 16, L = 64, sqrt
schedule with T = 2000, AdamW lr 1e-4, batch 64, 200k steps, dropout 0.1, EMA 0.9999; 200 sampling steps;
3 Adagrad steps of 0.1 per step, fluency lambda 0.01 for semantic content and length); `tiny` is the smoke config.

Tables: [data], [model], [schedule] (the continuous model's discrete VP table, core ScheduleConfig), [masked]
(the masked model, model.kind = masked), [train], [classifier], [teacher], [sampler] (core SamplerConfig plus
guidance, fluency and infilling keys). Every table checks its values when built (from TOML, `--set` or Python),
so a bad value is refused at once with its dotted name: `sampler.steps: expected an integer >= 1, got 0`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from omnidiffusion.core import GRIDS, METHODS
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.discrete import DISCRETE_SCHEDULES, UNMASKING
from omnidiffusion.core.settings import SamplerConfig, ScheduleConfig
from omnidiffusion.core.training import TrainConfig

from .data import FORMATS

SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes seeds up to 2**64 - 1 (and wraps negatives silently)


def _one_of(value: object, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


def _positive(section: object, prefix: str, names: tuple[str, ...]) -> None:
    for name in names:
        positive_int(getattr(section, name), f"{prefix}.{name}")


def _heads_divide(hidden: int, heads: int, where: str, hidden_name: str, heads_name: str) -> None:
    if hidden % heads:
        raise ValueError(f"{where}.{hidden_name}: expected a multiple of {where}.{heads_name}={heads}, got {hidden}")


@dataclass
class DataConfig:
    RENAMED = {"path": "root"}  # the name before every app called its data location data.root
    root: str = ""  # "" = the bundled generated restaurant corpus; else a corpus file in `format`
    format: str = "auto"  # auto | e2e | e2e-csv | rocstories | plain
    n_train: int = 6000  # bundled corpus sizes
    n_valid: int = 500
    n_test: int = 500
    seed: int = 0
    seq_len: int = 32  # START + words + END + PAD
    min_frequency: int = 1  # tokenizer: keep words seen at least this often (Diffusion-LM E2E: 11)

    def __post_init__(self) -> None:
        _one_of(self.format, "data.format", FORMATS)
        _positive(self, "data", ("n_train", "n_valid", "n_test", "min_frequency"))
        positive_int(self.seq_len, "data.seq_len", minimum=3)  # START + one word + END


MODEL_KINDS = ("continuous", "masked")  # Diffusion-LM | masked (absorbing) discrete diffusion
MASKED_LOSSES = ("mdlm", "d3pm")


@dataclass
class ModelConfig:
    kind: str = "continuous"  # continuous = Diffusion-LM; masked = MDLM-style discrete diffusion (core.discrete)
    embed_dim: int = 16
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    dropout: float = 0.1
    time_channels: int = 128

    def __post_init__(self) -> None:
        _one_of(self.kind, "model.kind", MODEL_KINDS)
        _positive(self, "model", ("embed_dim", "hidden_size", "num_layers", "num_heads", "intermediate_size"))
        positive_int(self.time_channels, "model.time_channels", minimum=2)
        real_number(self.dropout, "model.dropout", low=0.0, high=1.0, high_open=True)
        _heads_divide(self.hidden_size, self.num_heads, "model", "hidden_size", "num_heads")

    def encoder_kwargs(self) -> dict:
        """The transformer-encoder sizes shared by DiffusionLMNet and MaskedDiffusionNet (keyword arguments)."""
        keys = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "dropout", "time_channels")
        return {k: getattr(self, k) for k in keys}


@dataclass
class MaskedConfig:
    """The masked model (model.kind = "masked"): absorbing kernel of core.discrete."""

    schedule: str = "linear"  # alpha(t) = 1 - t (MDLM's log-linear) | cosine
    loss: str = "mdlm"  # mdlm: continuous-time NELBO (Sahoo et al. 2024); d3pm: hybrid loss (Austin et al. 2021)
    d3pm_steps: int = 1000  # T of the d3pm loss
    d3pm_hybrid: float = 0.01  # lambda of the d3pm hybrid loss
    conditional: bool = True  # learn p(x | field=value) with label dropout, for classifier-free guidance
    cond_dropout: float = 0.1  # share of training rows without a label

    def __post_init__(self) -> None:
        _one_of(self.schedule, "masked.schedule", DISCRETE_SCHEDULES)
        _one_of(self.loss, "masked.loss", MASKED_LOSSES)
        positive_int(self.d3pm_steps, "masked.d3pm_steps")
        real_number(self.d3pm_hybrid, "masked.d3pm_hybrid", low=0.0)
        if not isinstance(self.conditional, bool):
            raise ValueError(f"masked.conditional: expected true or false, got {self.conditional!r}")
        real_number(self.cond_dropout, "masked.cond_dropout", low=0.0, high=1.0)


@dataclass
class ClassifierConfig:
    enabled: bool = True  # trained when the corpus has MRs
    hidden_size: int = 64
    num_layers: int = 3
    kernel_size: int = 5
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=1500, batch_size=64, lr=1e-3, ema_decay=None, log_every=100, ckpt_every=500
        )
    )

    def __post_init__(self) -> None:
        _positive(self, "classifier", ("hidden_size", "num_layers", "kernel_size"))
        if self.kernel_size % 2 == 0:
            raise ValueError(f"classifier.kernel_size: expected an odd integer, got {self.kernel_size}")


@dataclass
class TeacherConfig:
    enabled: bool = True
    n_embd: int = 128
    n_layer: int = 2
    n_head: int = 4
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=1500, batch_size=64, lr=1e-3, ema_decay=None, log_every=100, ckpt_every=500
        )
    )

    def __post_init__(self) -> None:
        _positive(self, "teacher", ("n_embd", "n_layer", "n_head"))
        _heads_divide(self.n_embd, self.n_head, "teacher", "n_embd", "n_head")


@dataclass
class TextScheduleConfig(ScheduleConfig):
    """Diffusion-LM's table: sqrt, abar(s) = 1 - sqrt(s + 1e-4), T = 2000 (Li et al. 2022 sec. 4.2)."""

    name: str = "sqrt"
    timesteps: int = 2000


@dataclass
class TextSamplerConfig(SamplerConfig):
    """How generate / infill / evaluate sample: core.sample's method, steps and grid, plus control and infilling.

    grid "auto" is logsnr for the DPM-Solvers and time-uniform otherwise. The masked model samples with
    core.discrete's ancestral steps (method ddpm only) and uses steps, seed, batch_size and guidance_scale.
    """

    method: str = "ddpm"  # the paper's ancestral sampler; "dpm++2m" for few steps
    steps: int = 200
    grid: str = "auto"
    seed: int = 0
    batch_size: int = 128
    guidance_steps: int = 3
    guidance_lr: float = 0.1
    semantic_fluency: float = 0.01
    length_fluency: float = 0.01
    infill_resample: int = 1  # RePaint jump_n_sample (1 = plain known-value replacement)
    guidance_scale: float = 2.0  # masked model: classifier-free guidance weight (1 = plain conditional)
    # masked model: "fixed-count" reveals the forward process's expected number of tokens per step (one at a time
    # once steps >= seq_len); "independent" each masked token on its own coin (core.discrete.sample)
    unmasking: str = "fixed-count"

    def __post_init__(self) -> None:
        non_negative_int(self.seed, "sampler.seed", maximum=SEED_MAX)
        super().__post_init__()
        _one_of(self.method, "sampler.method", METHODS)
        _one_of(self.grid, "sampler.grid", ("auto", *GRIDS))
        positive_int(self.infill_resample, "sampler.infill_resample")
        non_negative_int(self.guidance_steps, "sampler.guidance_steps")
        real_number(self.guidance_lr, "sampler.guidance_lr", low=0.0, low_open=True)
        real_number(self.semantic_fluency, "sampler.semantic_fluency", low=0.0)
        real_number(self.length_fluency, "sampler.length_fluency", low=0.0)
        real_number(self.guidance_scale, "sampler.guidance_scale", low=0.0)
        _one_of(self.unmasking, "sampler.unmasking", UNMASKING)


@dataclass
class TextConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: TextScheduleConfig = field(default_factory=TextScheduleConfig)
    masked: MaskedConfig = field(default_factory=MaskedConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000, batch_size=64, lr=1e-3, warmup_steps=100, ema_decay=0.999, log_every=50, ckpt_every=500
        )
    )
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    sampler: TextSamplerConfig = field(default_factory=TextSamplerConfig)


def legacy_config(config: TextConfig, metadata: Mapping, *, masked: bool) -> TextConfig:
    """The run config of a checkpoint written before run_config.json existed: `config` (the default, or the
    CLI's --config/--set) with the schedule, model kind and masked schedule that the old config.json metadata
    recorded ({"schedule", "T"} for Diffusion-LM, {"masked_schedule"} for the masked model)."""
    schedule = replace(
        config.schedule,
        name=str(metadata.get("schedule", config.schedule.name)),
        timesteps=int(metadata.get("T", config.schedule.timesteps)),
    )
    masked_config = replace(config.masked, schedule=str(metadata.get("masked_schedule", config.masked.schedule)))
    model = replace(config.model, kind="masked" if masked else "continuous")
    return replace(config, schedule=schedule, model=model, masked=masked_config)
