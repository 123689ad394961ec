"""Samplers: pure functions `(denoiser, x, grid, *, generator, callback, **cond) -> x` and one front door."""

from .common import Callback, Coeffs, coeffs, posterior_terms
from .ddpm import VARIANCES, analytic_variance, ddim, ddpm
from .dpm_solver import dpm_solver, dpm_solver_pp
from .front import METHODS, nfe, sample
from .heun import heun
from .sde import euler_maruyama, langevin_correct, predictor_corrector

__all__ = [
    "METHODS",
    "VARIANCES",
    "Callback",
    "Coeffs",
    "analytic_variance",
    "coeffs",
    "ddim",
    "ddpm",
    "dpm_solver",
    "dpm_solver_pp",
    "euler_maruyama",
    "heun",
    "langevin_correct",
    "nfe",
    "posterior_terms",
    "predictor_corrector",
    "sample",
]
