"""The vision networks, all built on core's `nn.UNet` and saved/loaded with core's io (config.json + safetensors).

- `ImageDDPM`: an unconditional image DDPM (Ho et al. 2020): UNet(x_t, t) plus its DiscreteVP schedule and
  prediction type. `.denoiser()` is the core Denoiser that samplers, RePaint and purification use.
- `SR3`: the SR3 network (Saharia et al. 2021): the noisy HR image concatenated on channels with the bicubic
  upsampled LR image, conditioned on the continuous noise level gamma = sqrt(alpha_bar) instead of a step index.
  Core calls every network with the continuous time t; SR3 converts t to gamma = alpha(t) of its schedule inside
  `forward`, so the UNet itself only ever sees gamma (embedded as WaveGrad does, sinusoids of 5000 * gamma).
- `RegressionSR`: the same UNet mapping the upsampled LR image to the HR image in one pass (SR3's regression
  baseline), output = upsampled LR + UNet residual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from omnidiffusion.core import Denoiser, DiscreteVP, clip_x0
from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.consistency import ConsistencyDenoiser
from omnidiffusion.core.denoiser import DenoiserBase
from omnidiffusion.core.io import ConfigurableModule, Pretrained, has_run_config, open_pretrained, save_pretrained
from omnidiffusion.core.nn import UNet
from omnidiffusion.core.settings import SCHEDULE_KEYS

DDPM_SCHEDULE = {"name": "linear", "timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}  # Ho et al. 2020
SR3_SCHEDULE = {"name": "linear", "timesteps": 2000, "beta_start": 1e-6, "beta_end": 1e-2}  # Saharia et al. 2021


def make_schedule(spec: dict[str, Any]) -> DiscreteVP:
    """DiscreteVP from {"name", "timesteps", "beta_start", "beta_end"} (the beta bounds only for linear-type tables).

    The table length was called "T" before the config keys were shared with core ([schedule] timesteps); model
    folders saved then still load.
    """
    name = spec.get("name", "linear")
    if name not in SCHEDULE_KEYS:
        raise ValueError(f"schedule.name: expected one of {sorted(SCHEDULE_KEYS)}, got {name!r}")
    kwargs = {k: float(spec[k]) for k in SCHEDULE_KEYS[name] if k in spec}
    return DiscreteVP.named(name, int(spec.get("timesteps", spec.get("T", 1000))), **kwargs)


class PretrainedModule(ConfigurableModule):
    """save_pretrained / from_pretrained through core io, refusing a directory that holds another model class."""

    def save_pretrained(self, directory: str | Path, metadata: dict | None = None) -> Path:
        """Write config.json (class + constructor kwargs) and model.safetensors to `directory`."""
        return save_pretrained(self, directory, metadata=metadata)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu"):
        """Load a directory written by `save_pretrained` or by `train` (EMA weights); returns the model in eval mode."""
        return open_pretrained(directory, cls, device=map_location, what=f"a {cls.__name__} folder").model


def open_checkpoint(
    directory: str | Path, model_cls: type[nn.Module], *, device: str | torch.device = "cpu", subfolder: str = ""
) -> Pretrained:
    """What every vision pipeline's `from_pretrained` reads: core `open_pretrained` with the run config.

    `.config` is the VisionConfig `train` stored (run_config.json); for an older checkpoint, the one its metadata
    kept (settings.legacy_config), else None (a folder written by save_pretrained alone).
    """
    from .settings import VisionConfig, legacy_config

    config_cls = VisionConfig if has_run_config(directory) else None
    what = f"a {model_cls.__name__} checkpoint written by `train`"
    pre = open_pretrained(directory, model_cls, config_cls=config_cls, device=device, subfolder=subfolder, what=what)
    if pre.config is None:
        pre.config = legacy_config(pre.metadata)
    return pre


def check_unet_kwargs(unet: dict | None) -> dict:
    """The core UNet kwargs of a model's `unet` argument, refusing those the model sets itself."""
    kwargs = dict(unet or {})
    for key in ("in_channels", "out_channels", "cond_channels", "resolution", "num_classes"):
        if key in kwargs:
            raise ValueError(f"unet: {key!r} is set by the model (image size, channels), remove it from the config")
    return kwargs


class ImageDDPM(PretrainedModule):
    """Unconditional image DDPM: eps/x0/v-prediction UNet on (B, channels, image_size, image_size) in [-1, 1].

    Args: image_size and channels of the images; `unet` = core UNet kwargs other than in/out channels and
    resolution; `schedule` = {"name", "timesteps", "beta_start", "beta_end"} (default: DDPM's linear 1e-4..0.02
    over 1000 steps); `prediction` = "eps" | "x0" | "v".
    """

    def __init__(
        self,
        image_size: int = 16,
        channels: int = 1,
        unet: dict | None = None,
        schedule: dict | None = None,
        prediction: str = "eps",
    ) -> None:
        super().__init__()
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"prediction: expected 'eps', 'x0' or 'v', got {prediction!r}")
        self.image_size, self.channels, self.prediction = int(image_size), int(channels), prediction
        self.schedule_spec = dict(DDPM_SCHEDULE if schedule is None else schedule)
        self.schedule = make_schedule(self.schedule_spec)
        self.net = UNet(in_channels=channels, out_channels=channels, resolution=image_size, **check_unet_kwargs(unet))

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """(B, C, H, W), t (B,) in [0, 1] -> the raw prediction (B, C, H, W)."""
        return self.net(x_t, t)

    def denoiser(self, clip: bool = True) -> Denoiser:
        """The core Denoiser of this model; `clip` clamps x0_hat to [-1, 1] (DDPM's clipped sampling)."""
        return Denoiser(self, self.schedule, self.prediction, x0_hooks=[clip_x0()] if clip else ())

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        method: str = "ddpm",
        steps: int | None = None,
        grid: str = "trailing",
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Draw n images (n, C, H, W) in [-1, 1] with core `sample` (steps None: the full ancestral chain, T steps)."""
        return draw_images(self, n, method=method, steps=steps, grid=grid, generator=generator, progress=progress)


@torch.no_grad()
def draw_images(
    model,
    n: int,
    *,
    method: str = "ddpm",
    steps: int | None = None,
    grid: str = "trailing",
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """n images (n, C, H, W) in [-1, 1] from an unconditional image model (`.denoiser()`, `.channels`,
    `.image_size`, `.schedule`: ImageDDPM or priors.DenoiserPrior) with core `sample`."""
    from omnidiffusion.core import sample

    n = positive_int(n, "n")
    steps = model.schedule.T if steps is None else positive_int(steps, "steps")
    device = next(model.parameters()).device
    shape = (n, model.channels, model.image_size, model.image_size)
    x = torch.randn(shape, generator=generator).to(device)
    return sample(model.denoiser(), x, method, steps, grid, generator=generator, progress=progress).clamp(-1, 1)


class SR3(PretrainedModule):
    """SR3 network: UNet([x_t, upsample(LR)], gamma) predicting eps, gamma = sqrt(alpha_bar) (Saharia et al. 2021).

    Args: HR `image_size`, `channels`, SR factor `scale`, core UNet kwargs `unet`, `schedule` (default SR3's linear
    1e-6..1e-2 over timesteps=2000), `noise_embedding_scale` (sinusoids of scale * gamma; WaveGrad uses 5000),
    `consistency` (None: an eps-prediction SR3; a dict of core ConsistencyDenoiser kwargs: a consistency-distilled
    SR3, `training.distil_sr3`, sampled with method "consistency" in 1, 2 or 4 steps).
    """

    def __init__(
        self,
        image_size: int = 24,
        channels: int = 1,
        scale: int = 4,
        unet: dict | None = None,
        schedule: dict | None = None,
        noise_embedding_scale: float = 5000.0,
        consistency: dict | None = None,
    ) -> None:
        super().__init__()
        if image_size % scale:
            raise ValueError(f"image_size: {image_size} is not divisible by scale {scale}")
        if consistency is not None and not isinstance(consistency, dict):
            raise ValueError(f"consistency: expected None or a dict of ConsistencyDenoiser kwargs, got {consistency!r}")
        self.image_size, self.channels, self.scale = int(image_size), int(channels), int(scale)
        self.prediction = "eps"
        self.consistency = None if consistency is None else dict(consistency)
        self.schedule_spec = dict(SR3_SCHEDULE if schedule is None else schedule)
        self.schedule = make_schedule(self.schedule_spec)
        self.net = UNet(
            in_channels=channels,
            out_channels=channels,
            cond_channels=channels,
            resolution=image_size,
            time_embedding="sinusoidal",
            time_embedding_scale=noise_embedding_scale,
            **check_unet_kwargs(unet),
        )

    def noise_level(self, t: Tensor) -> Tensor:
        """gamma = sqrt(alpha_bar) = alpha(t) of the schedule, computed in float64: (B,) -> (B,)."""
        return self.schedule.alpha(t.detach().to(torch.float64)).to(t.dtype)

    def forward(self, x_t: Tensor, t: Tensor, *, lr_up: Tensor) -> Tensor:
        """x_t (B, C, H, W), t (B,) in [0, 1], lr_up (B, C, H, W) bicubic-upsampled LR -> eps_hat (B, C, H, W)."""
        return self.net(x_t, self.noise_level(t), cond=lr_up)

    def denoiser(self, clip: bool = True, net: nn.Module | None = None) -> DenoiserBase:
        """The core Denoiser (eps-prediction, x0_hat clipped to [-1, 1] with `clip`), or for a distilled model the
        ConsistencyDenoiser; pass `lr_up=` to the sampler as conditioning. `net`: a stand-in for this module
        with the same call (e.g. the tiled network of sr3.sr3_upscale)."""
        net = self if net is None else net
        if self.consistency is not None:
            return ConsistencyDenoiser(net, self.schedule, **self.consistency)
        return Denoiser(net, self.schedule, "eps", x0_hooks=[clip_x0()] if clip else ())


class RegressionSR(PretrainedModule):
    """SR3's regression baseline: HR_hat = upsample(LR) + UNet(upsample(LR)), trained with L2 (one pass)."""

    def __init__(self, image_size: int = 24, channels: int = 1, scale: int = 4, unet: dict | None = None) -> None:
        super().__init__()
        self.image_size, self.channels, self.scale = int(image_size), int(channels), int(scale)
        self.net = UNet(in_channels=channels, out_channels=channels, resolution=image_size, **check_unet_kwargs(unet))

    def forward(self, lr_up: Tensor) -> Tensor:
        """(B, C, H, W) upsampled LR in [-1, 1] -> HR estimate (B, C, H, W)."""
        t = torch.ones(lr_up.shape[0], dtype=lr_up.dtype, device=lr_up.device)  # a constant input; no noise here
        return lr_up + self.net(lr_up, t)

