"""Samplers: pure functions `(denoiser, x, grid, *, generator, callback, **cond) -> x` and one front door."""

from .common import Callback, Coeffs, coeffs, posterior_terms
from .consistency import consistency
from .ddpm import VARIANCES, analytic_variance, ddim, ddpm
from .dpm_solver import dpm_solver, dpm_solver_pp
from .front import METHODS, nfe, sample
from .heun import heun
from .noise import BrownianTree, Noise, gaussian_noise
from .sde import euler_maruyama, langevin_correct, predictor_corrector
from .unipc import unipc

__all__ = [
    "METHODS",
    "VARIANCES",
    "BrownianTree",
    "Callback",
    "Coeffs",
    "Noise",
    "analytic_variance",
    "coeffs",
    "consistency",
    "ddim",
    "ddpm",
    "dpm_solver",
    "dpm_solver_pp",
    "euler_maruyama",
    "gaussian_noise",
    "heun",
    "langevin_correct",
    "nfe",
    "posterior_terms",
    "predictor_corrector",
    "sample",
    "unipc",
]
