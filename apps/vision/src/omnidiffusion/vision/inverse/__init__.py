"""Zero-shot inverse problems: one unconditional image prior, any known linear degradation (one call, `restore`).

    from omnidiffusion.vision.inverse import Downsample, measure, restore
    op = Downsample(4, (24, 24))                       # sr4: 4x4 box average
    y = measure(op, x, sigma_y=0.1)                    # in the model's [-1, 1] range
    x_hat = restore(model, y, op, solver="ddnm+", steps=50, sigma_y=0.1, generator=torch.Generator().manual_seed(0))

`model` is a core Denoiser (e.g. from `omnidiffusion.core.interop.from_diffusers`) or anything with
`.denoiser()` (ImageDDPM). Operators: operators.py; solvers: solvers.py (DDNM, DDNM+, DPS, RePaint, SDEdit).
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnidiffusion.core import DenoiserBase

from .operators import (
    LUMA,
    TASKS,
    Downsample,
    GaussianBlur,
    Grey,
    Inpaint,
    LinearOperator,
    consistency,
    make_operator,
    measure,
    pixel_offset,
)
from .solvers import SOLVERS, ddnm, ddnm_plus, dps, network_calls, repaint, sdedit


def as_denoiser(model, name: str = "denoiser") -> DenoiserBase:
    """A core Denoiser, or the `.denoiser()` of a model (ImageDDPM)."""
    if isinstance(model, DenoiserBase):
        return model
    if callable(getattr(model, "denoiser", None)):
        return model.denoiser()
    raise ValueError(f"{name}: expected a core Denoiser or a model with .denoiser() (ImageDDPM), "
                     f"got {type(model).__name__}")


def _device(den: DenoiserBase) -> torch.device:
    net = getattr(den, "net", None)
    if isinstance(net, torch.nn.Module):
        for p in net.parameters():
            return p.device
    return torch.device("cpu")


def restore(
    denoiser,
    y: Tensor,
    operator: LinearOperator,
    solver: str = "ddnm",
    steps: int = 100,
    generator: torch.Generator | None = None,
    *,
    sigma_y: float = 0.0,
    image_shape: tuple[int, int, int] | None = None,
    x_T: Tensor | None = None,
    **options,
) -> Tensor:
    """x (B, C, H, W) with A x ~ y, from the prior `denoiser` and the measurement y (both in the model's range).

    solver: ddnm | ddnm+ | dps | repaint | sdedit (solvers.py); options go to it (eta, zeta, likelihood,
    jump_length, jump_n_sample, t0, method, grid). `sigma_y` is the measurement noise std (model range).
    `image_shape` (C, H, W) is checked against the operator's when given (e.g. the model's image size).
    """
    den = as_denoiser(denoiser)
    if solver not in SOLVERS:
        raise ValueError(f"solver: expected one of {sorted(SOLVERS)}, got {solver!r}")
    if not isinstance(operator, LinearOperator):
        raise ValueError(f"operator: expected an inverse.LinearOperator, got {type(operator).__name__}")
    if not isinstance(y, Tensor) or y.ndim != 4 or not y.is_floating_point():
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y: expected a float measurement tensor (B, ...), got {got}")
    shape = operator.image_shape(tuple(y.shape))
    if image_shape is not None and tuple(image_shape) != tuple(shape):
        raise ValueError(f"y: {operator.name} of an image {tuple(image_shape)} (the model's) has shape "
                         f"{operator.measurement_shape((1, *image_shape))}, got {tuple(y.shape[1:])}")
    operator.check_measurement(y, shape)
    y = y.to(_device(den))
    kwargs = dict(options)
    if solver in ("ddnm", "ddnm+", "dps"):
        kwargs["sigma_y"] = sigma_y
    return SOLVERS[solver](den, y, operator, shape=(y.shape[0], *shape), steps=steps, x_T=x_T,
                           generator=generator, **kwargs)


__all__ = [
    "LUMA",
    "SOLVERS",
    "TASKS",
    "Downsample",
    "GaussianBlur",
    "Grey",
    "Inpaint",
    "LinearOperator",
    "as_denoiser",
    "consistency",
    "ddnm",
    "ddnm_plus",
    "dps",
    "make_operator",
    "measure",
    "network_calls",
    "pixel_offset",
    "repaint",
    "restore",
    "sdedit",
]
