"""omnidiffusion.core: the shared diffusion core.

One internal form, x_t = alpha(t) x0 + sigma(t) eps with continuous t in [0, 1]; every sampler, loss and
likelihood talks to a `Denoiser`. Submodules: schedules, processes, denoiser, timesteps, samplers,
conditioning, losses, likelihood, testing (exact oracles), nn (shared layers), training (`fit`), io
(save/load), interop (diffusers folders in and out), checks (argument checks), config, settings and cli (app plumbing),
distillation (progressive), consistency (consistency distillation and training), latent (autoencoder +
latent-space denoiser), vdm (learned schedule), analytic_dpm.
"""

from . import (
    analytic_dpm,
    checks,
    conditioning,
    consistency,
    distillation,
    interop,
    io,
    latent,
    likelihood,
    losses,
    nn,
    processes,
    samplers,
    schedules,
    settings,
    testing,
    timesteps,
    training,
    vdm,
)
from .checks import resolve_device
from .conditioning import ClassifierFreeGuidance, ClassifierGuidance, repaint, replace_known
from .consistency import ConsistencyDenoiser, consistency_distillation, consistency_training
from .denoiser import Denoiser, DenoiserBase, DenoiserOutput, clip_x0, convert_prediction
from .distillation import progressive_distillation
from .interop import from_diffusers, is_diffusers_folder, to_diffusers
from .io import load_pretrained, load_run_config, open_pretrained, save_pretrained, save_run_config
from .latent import AutoencoderKL, LatentDenoiser, estimate_scale_factor, fit_autoencoder
from .likelihood import bits_per_dim, ode_log_likelihood, uniform_dequantize, vlb
from .losses import denoising_loss, hybrid_loss
from .processes import VESDE, VPSDE, ForwardProcess, SubVPSDE
from .samplers import METHODS, sample
from .schedules import EDM, VE, CosineVP, DiscreteVP, LinearVP, NoiseSchedule, SubVP
from .settings import SamplerConfig, ScheduleConfig
from .tensors import append_dims, mean_flat, sum_flat
from .timesteps import GRIDS, make_grid
from .training import TrainConfig, fit, is_main_process, unwrap_model

__version__ = "0.1.0"

__all__ = [
    "settings",
    "SamplerConfig",
    "ScheduleConfig",
    "resolve_device",
    "open_pretrained",
    "load_run_config",
    "save_run_config",
    "is_main_process",
    "unwrap_model",
    "vdm",
    "training",
    "checks",
    "consistency",
    "ConsistencyDenoiser",
    "consistency_distillation",
    "consistency_training",
    "interop",
    "latent",
    "AutoencoderKL",
    "LatentDenoiser",
    "estimate_scale_factor",
    "fit_autoencoder",
    "from_diffusers",
    "is_diffusers_folder",
    "to_diffusers",
    "save_pretrained",
    "progressive_distillation",
    "nn",
    "load_pretrained",
    "io",
    "fit",
    "distillation",
    "analytic_dpm",
    "TrainConfig",
    "EDM",
    "GRIDS",
    "METHODS",
    "VE",
    "VESDE",
    "VPSDE",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "CosineVP",
    "Denoiser",
    "DenoiserBase",
    "DenoiserOutput",
    "DiscreteVP",
    "ForwardProcess",
    "LinearVP",
    "NoiseSchedule",
    "SubVP",
    "SubVPSDE",
    "append_dims",
    "bits_per_dim",
    "clip_x0",
    "conditioning",
    "convert_prediction",
    "denoising_loss",
    "hybrid_loss",
    "likelihood",
    "losses",
    "make_grid",
    "mean_flat",
    "ode_log_likelihood",
    "processes",
    "repaint",
    "replace_known",
    "sample",
    "samplers",
    "schedules",
    "sum_flat",
    "testing",
    "timesteps",
    "uniform_dequantize",
    "vlb",
]
