"""DiffPure: diffuse an input to a small time t*, then solve the reverse process back to t = 0 (Nie et al. 2022).

    purifier = DiffPure(ddpm.denoiser(), t_star=0.1)          # any core Denoiser on data in [-1, 1]
    x_pure = purifier(x)                                      # x: (B, C, H, W) in [0, 1] -> same shape, [0, 1]

Stage 1 is the closed-form forward marginal x(t*) = alpha(t*) x + sigma(t*) eps (Nie et al. 2022, eq. 3); stage 2
runs a core sampler from t* to 0 (eq. 4): the reverse SDE by Euler-Maruyama ("sde", the paper's solver, dt = 1e-3
by default), ancestral DDPM steps ("ddpm"), or the probability-flow ODE ("ode", deterministic DDIM; "dpm++2m",
the few-step DPM-Solver++). Without
gradients this is exactly `omnidiffusion.core.sample(..., t_start=t_star)`; with gradients the same core sampler
function runs on the same grid outside `sample`'s no_grad, so an attacker differentiates through every step
(optionally with gradient checkpointing per network call, bounding memory to one state per step). The BPDA mode
(Athalye et al. 2018) runs the purifier forward and passes the incoming gradient through unchanged.

Randomness comes from the purifier's own torch.Generator (seeded by `seed`), so attacks that reseed torch's global
RNG (torchattacks' APGD does) do not fix the purifier's noise; `fixed_noise=True` reseeds it on every call, the
deterministic white-box control of Liu et al. 2024.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from omnidiffusion.core import DenoiserBase, DenoiserOutput, ForwardProcess, make_grid, sample
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.samplers import METHODS
from omnidiffusion.core.tensors import randn_like

# Purification methods: our names -> (core sampler, its options).
PURIFY_METHODS: dict[str, tuple[str, dict]] = {
    "sde": ("euler-maruyama", {}),  # the paper's reverse-SDE solver
    "ddpm": ("ddpm", {"variance": "fixed-small"}),  # ancestral steps (DiffPure's DDPM runner, Lee & Kim 2023)
    "ode": ("ddim", {"eta": 0.0}),  # probability-flow ODE, deterministic
    "dpm++2m": ("dpm++2m", {}),  # probability-flow ODE, few-step DPM-Solver++(2M) (Lu et al. 2022)
}
GRADIENTS = ("full", "bpda")
PAPER_DT = 1e-3  # DiffPure's Euler-Maruyama step in diffusion time (torchsde default dt)


def check_unit_range(x: Tensor, name: str = "x") -> None:
    """Raise ValueError unless x is a floating (B, ...) tensor with every value in [0, 1]."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor in [0, 1], got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"{name}: expected a batch (B, C, H, W), got shape {tuple(x.shape)}")
    lo, hi = torch.aminmax(x.detach())
    lo, hi = lo.item(), hi.item()
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"{name}: expected values in [0, 1], got range [{lo:.6g}, {hi:.6g}]")


def _positive(v) -> bool:  # noqa: ANN001 - any recorded value
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def model_image_shape(denoiser: DenoiserBase) -> tuple[int | None, int | None]:
    """(channels, image_size) of the network behind `denoiser` when it records them.

    Read from a vision ImageDDPM (.channels, .image_size), a core UNet (.config in_channels, resolution) or a
    diffusers UNet2DModel wrapped by `core.interop.from_diffusers` (.unet.config in_channels, sample_size).
    """
    net = getattr(denoiser, "net", None)
    config = getattr(net, "config", None)
    config = config if isinstance(config, dict) else {}  # a bare core UNet keeps its kwargs in .config
    channels = getattr(net, "channels", None) or config.get("in_channels")
    size = getattr(net, "image_size", None) or config.get("resolution")
    unet_config = getattr(getattr(net, "unet", None), "config", None)  # diffusers: a FrozenDict
    if isinstance(unet_config, dict) and unet_config.get("_class_name", "UNet2DModel") != "UNet1DModel":
        channels = channels or unet_config.get("in_channels")
        sample = unet_config.get("sample_size")
        if isinstance(sample, (list, tuple)) and len(sample) == 2 and sample[0] == sample[1]:
            sample = sample[0]
        size = size or sample
    return (int(channels) if _positive(channels) else None, int(size) if _positive(size) else None)


def check_model_input(x: Tensor, module: nn.Module | None, shape: tuple[int | None, int | None], name: str) -> None:
    """Raise ValueError unless x (B, C, H, W) fits the diffusion network: its channels, size and device.

    The dtype may differ: the core Denoiser runs the network in its own dtype (e.g. float64 states, bf16 weights).
    """
    channels, size = shape
    if channels is not None or size is not None:
        want = f"(B, {channels or 'C'}, {size or 'H'}, {size or 'W'})"
        fits = x.ndim == 4 and channels in (None, x.shape[1]) and size in (None, x.shape[2], x.shape[3])
        fits = fits and (size is None or x.shape[2] == x.shape[3] == size)
        if not fits:
            raise ValueError(f"{name}: expected images {want} for this diffusion model, got shape {tuple(x.shape)}")
    param = next(module.parameters(), None) if module is not None else None
    if param is not None and x.device != param.device:
        raise ValueError(f"{name}: expected a tensor on {param.device} (the diffusion model's device), got {x.device}")


class _Checkpointed(DenoiserBase):
    """A Denoiser whose every call is gradient-checkpointed: activations are recomputed in the backward pass."""

    def __init__(self, inner: DenoiserBase) -> None:
        self.inner = inner
        self.schedule = inner.schedule

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        if not (torch.is_grad_enabled() and x_t.requires_grad):
            return self.inner.predict(x_t, t, **cond)

        def run(x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
            out = self.inner.predict(x, t, **cond)
            return out.x0, out.eps, out.variance

        x0, eps, variance = checkpoint(run, x_t, use_reentrant=False)
        return DenoiserOutput(x0, eps, variance)


class _BPDA(torch.autograd.Function):
    """Forward: the purifier without a graph. Backward: the identity (Athalye et al. 2018, BPDA)."""

    @staticmethod
    def forward(ctx, x: Tensor, purify) -> Tensor:  # noqa: ANN001 - purify is a callable
        with torch.no_grad():
            return purify(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def _as_denoiser(diffusion) -> tuple[DenoiserBase, nn.Module | None]:
    """Accept a core Denoiser or a model with `.denoiser()` (omnidiffusion.vision.ImageDDPM); return it and a module."""
    if isinstance(diffusion, DenoiserBase):
        net = getattr(diffusion, "net", None)
        return diffusion, net if isinstance(net, nn.Module) else None
    make = getattr(diffusion, "denoiser", None)
    if callable(make):
        den = make()
        if not isinstance(den, DenoiserBase):
            raise ValueError(f"diffusion: .denoiser() returned a {type(den).__name__}, expected a core Denoiser")
        return den, diffusion if isinstance(diffusion, nn.Module) else None
    raise ValueError(
        "diffusion: expected an omnidiffusion.core Denoiser or a model with .denoiser(), "
        f"got {type(diffusion).__name__}"
    )


class DiffPure(nn.Module):
    """Adversarial purification by diffusion (Nie et al. 2022): [0, 1] images in, purified [0, 1] images out.

    Args:
        diffusion: a core Denoiser on data in `data_range` (default [-1, 1]), e.g. the one
            `omnidiffusion.core.interop.from_diffusers(dir)` returns for a diffusers folder, or a model with
            `.denoiser()` (omnidiffusion.vision.ImageDDPM).
        t_star: diffusion time t* in [0, 1) (DiffPure: 0.1 for CIFAR-10 Linf, 0.075 for L2); 0 is the identity.
        method: "sde" (reverse SDE, Euler-Maruyama), "ddpm" (ancestral), "ode" (probability flow, DDIM eta=0)
            or "dpm++2m" (probability flow, DPM-Solver++ 2M).
        steps: solver steps from t* to 0; default round(t*/1e-3), the paper's dt.
        grid: a core time grid name (`omnidiffusion.core.GRIDS`).
        gradient: "full" (autograd through every step) or "bpda" (identity backward).
        checkpointing: recompute each network call in the backward pass (memory O(steps x state)).
        seed: seed of the purifier's own noise generator.
        fixed_noise: reseed the generator on every call, so the purifier is a deterministic function.
        data_range: (low, high) of the diffusion model's data.
    """

    def __init__(
        self,
        diffusion,
        t_star: float = 0.1,
        method: str = "sde",
        steps: int | None = None,
        *,
        grid: str = "time-uniform",
        gradient: str = "full",
        checkpointing: bool = False,
        seed: int = 0,
        fixed_noise: bool = False,
        data_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        t_star = real_number(t_star, "t_star", low=0.0, high=1.0, high_open=True)
        if method not in PURIFY_METHODS:
            raise ValueError(f"method: expected one of {sorted(PURIFY_METHODS)}, got {method!r}")
        steps = max(1, round(t_star / PAPER_DT)) if steps is None else positive_int(steps, "steps")
        seed = non_negative_int(seed, "seed")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient: expected one of {GRADIENTS}, got {gradient!r}")
        low, high = (float(v) for v in data_range)
        if not low < high:
            raise ValueError(f"data_range: expected (low, high) with low < high, got {data_range!r}")
        self.denoiser, module = _as_denoiser(diffusion)
        self.diffusion = module  # registered so .to(device) and parameters() see the network
        self.image_shape = model_image_shape(self.denoiser)  # (channels, image_size), None where not recorded
        self.t_star = float(t_star)
        self.method = method
        self.steps = steps
        self.grid = grid
        self.gradient = gradient
        self.checkpointing = bool(checkpointing)
        self.seed = int(seed)
        self.fixed_noise = bool(fixed_noise)
        self.data_range = (low, high)
        self._generator: torch.Generator | None = None
        if self.t_star > 0:
            make_grid(self.denoiser.schedule, grid, steps, t_start=self.t_star)  # fail early on a bad grid

    def extra_repr(self) -> str:
        return (
            f"t_star={self.t_star}, method={self.method!r}, steps={self.steps}, grid={self.grid!r}, "
            f"gradient={self.gradient!r}, checkpointing={self.checkpointing}, seed={self.seed}"
        )

    # ---- randomness
    def reset_noise(self, seed: int | None = None) -> None:
        """Restart the purifier's noise stream (from `seed` when given, else the constructor's seed)."""
        if seed is not None:
            self.seed = non_negative_int(seed, "seed")
        self._generator = None

    def _noise_generator(self) -> torch.Generator:
        """The purifier's one CPU generator (its draws are moved to the input's device), fresh when fixed_noise."""
        if self.fixed_noise or self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    @contextlib.contextmanager
    def gradient_mode(self, gradient: str) -> Iterator[DiffPure]:
        """Temporarily switch between "full" and "bpda" gradients (for the attack study)."""
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient: expected one of {GRADIENTS}, got {gradient!r}")
        old, self.gradient = self.gradient, gradient
        try:
            yield self
        finally:
            self.gradient = old

    # ---- purification
    def forward(self, x: Tensor) -> Tensor:
        """Purify x: (B, C, H, W) in [0, 1] -> (B, C, H, W) in [0, 1]."""
        check_unit_range(x, "x")
        check_model_input(x, self.diffusion, self.image_shape, "x")
        if self.t_star == 0.0:
            return x
        if self.gradient == "bpda" and torch.is_grad_enabled() and x.requires_grad:
            return _BPDA.apply(x, self._purify)
        return self._purify(x)

    def _purify(self, x: Tensor) -> Tensor:
        low, high = self.data_range
        gen = self._noise_generator()
        z = x * (high - low) + low  # (B, C, H, W) in the model's range
        noise = randn_like(z, gen)
        x_t = ForwardProcess(self.denoiser.schedule).q_sample(z, self.t_star, noise)  # eq. 3
        name, options = PURIFY_METHODS[self.method]
        if torch.is_grad_enabled() and x_t.requires_grad:
            den = _Checkpointed(self.denoiser) if self.checkpointing else self.denoiser
            times = make_grid(den.schedule, self.grid, self.steps, t_start=self.t_star)
            z0 = METHODS[name](den, x_t, times, generator=gen, **options)
        else:
            z0 = sample(
                self.denoiser,
                x_t,
                method=name,
                steps=self.steps,
                grid=self.grid,
                t_start=self.t_star,
                generator=gen,
                options=dict(options),
            )
        return ((z0 - low) / (high - low)).clamp(0.0, 1.0)


__all__ = [
    "GRADIENTS",
    "PAPER_DT",
    "PURIFY_METHODS",
    "DiffPure",
    "check_model_input",
    "check_unit_range",
    "model_image_shape",
]
