"""The text app's configuration: dataclasses read from TOML (configs/*.toml) with `--set a.b=value` overrides.

`default` trains on the bundled corpus on a 2-core CPU in minutes; `paper` holds Diffusion-LM's E2E
hyper-parameters (Li et al. 2022, App. and README of the released code: BERT-base sizes, d = 16, L = 64, sqrt
schedule with T = 2000, AdamW lr 1e-4, batch 64, 200k steps, dropout 0.1, EMA 0.9999; 200 sampling steps;
3 Adagrad steps of 0.1 per step, fluency lambda 0.01 for semantic content and length).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omnidiffusion.core.training import TrainConfig


@dataclass
class DataConfig:
    path: str = ""  # "" = the bundled generated restaurant corpus; else a file in `format`
    format: str = "auto"  # auto | e2e | rocstories | plain
    n_train: int = 6000  # bundled corpus sizes
    n_valid: int = 500
    n_test: int = 500
    seed: int = 0
    seq_len: int = 32  # START + words + END + PAD
    min_frequency: int = 1  # tokenizer: keep words seen at least this often (Diffusion-LM E2E: 11)


@dataclass
class ModelConfig:
    embed_dim: int = 16
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    dropout: float = 0.1
    time_channels: int = 128


@dataclass
class DiffusionConfig:
    schedule: str = "sqrt"
    T: int = 2000


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


@dataclass
class SampleConfig:
    method: str = "ddpm"  # the paper's ancestral sampler; "dpm++2m" for few steps
    steps: int = 200
    guidance_steps: int = 3
    guidance_lr: float = 0.1
    semantic_fluency: float = 0.01
    length_fluency: float = 0.01
    infill_resample: int = 1  # RePaint jump_n_sample (1 = plain known-value replacement)
    seed: int = 0
    batch_size: int = 128


@dataclass
class TextConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000, batch_size=64, lr=1e-3, warmup_steps=100, ema_decay=0.999, log_every=50, ckpt_every=500
        )
    )
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
