"""Config pieces every app shares: the `[schedule]` and `[sampler]` tables, one set of key names.

    @dataclass
    class CSDISchedule(ScheduleConfig):              # an app changes defaults by subclassing ...
        name: str = "quadratic"
        timesteps: int = 50
        beta_end: float = 0.5

    @dataclass
    class ImputeSampler(SamplerConfig):              # ... and adds its own keys the same way
        samples: int = 100

    @dataclass
    class TimeseriesConfig:
        schedule: CSDISchedule = field(default_factory=CSDISchedule)
        sampler: ImputeSampler = field(default_factory=ImputeSampler)

Subclassing (not `field(default_factory=lambda: ScheduleConfig(name=...))`) keeps the app's defaults when a TOML
file or a stored run config sets only some keys of the table. Keys, in every app:

    schedule.name         discrete beta table: linear | cosine | sqrt | sigmoid | quadratic
    schedule.timesteps    its length T (training steps n = 0 .. T-1 sit at t = (n+1)/T)
    schedule.beta_start   first and last beta, for the tables that have them (linear, sigmoid, quadratic)
    schedule.beta_end
    sampler.method        a name of core.METHODS (or an app's own sampler, which the app checks)
    sampler.steps         grid intervals (network calls per sample for first-order methods)
    sampler.grid          a name of core.GRIDS (or "auto" where the app picks one per method)
    sampler.seed          seed of the sampling generator
    sampler.batch_size    items per network call
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import non_negative_int, positive_int, real_number
from .schedules import DiscreteVP

# The keyword arguments of each named beta table that a ScheduleConfig sets (the others keep their defaults).
SCHEDULE_KEYS: dict[str, tuple[str, ...]] = {
    "linear": ("beta_start", "beta_end"),
    "cosine": (),
    "sqrt": (),
    "sigmoid": ("beta_start", "beta_end"),
    "quadratic": ("beta_start", "beta_end"),
}


@dataclass
class ScheduleConfig:
    """The discrete diffusion table a model is trained on (DDPM's linear 1e-4 .. 0.02, T = 1000 by default)."""

    name: str = "linear"
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.name not in SCHEDULE_KEYS:
            raise ValueError(f"schedule.name: expected one of {sorted(SCHEDULE_KEYS)}, got {self.name!r}")
        positive_int(self.timesteps, "schedule.timesteps")
        for key in SCHEDULE_KEYS[self.name]:
            real_number(getattr(self, key), f"schedule.{key}", low=0.0, high=1.0, low_open=True)

    def build(self) -> DiscreteVP:
        """The core schedule: `DiscreteVP.named(name, timesteps, ...)` with the beta bounds where they apply.

        The order of the bounds is checked here, not on every assignment, so that `--set schedule.beta_start=..
        --set schedule.beta_end=..` never fails halfway.
        """
        if "beta_end" in SCHEDULE_KEYS[self.name] and self.beta_end < self.beta_start:
            raise ValueError(
                f"schedule.beta_end: expected >= schedule.beta_start = {self.beta_start}, got {self.beta_end}"
            )
        kwargs = {key: float(getattr(self, key)) for key in SCHEDULE_KEYS[self.name]}
        return DiscreteVP.named(self.name, self.timesteps, **kwargs)


@dataclass
class SamplerConfig:
    """How an inference command samples: method, grid and step count of core.sample, seed and batch size.

    method and grid are checked by whoever runs them (an app may add its own sampler or an "auto" grid);
    counts are checked here.
    """

    method: str = "dpm++2m"
    steps: int = 25
    grid: str = "trailing"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        for key in ("method", "grid"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"sampler.{key}: expected a name, got {value!r}")
        positive_int(self.steps, "sampler.steps")
        positive_int(self.batch_size, "sampler.batch_size")
        non_negative_int(self.seed, "sampler.seed")

    def sample_kwargs(self) -> dict:
        """method, steps and grid as keyword arguments of `core.sample`."""
        return {"method": self.method, "steps": self.steps, "grid": self.grid}
