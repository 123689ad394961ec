"""Diffusion in a learned latent space: a KL-regularised autoencoder and a `LatentDenoiser` (feature-space unification).

Latent diffusion (Rombach et al. 2022, LDM sec. 3.1 and app. G): an autoencoder E, D with a diagonal-Gaussian
posterior q(z|x) = N(mu(x), diag(exp(logvar(x)))) is trained first on reconstruction + a small KL to N(0, I);
the diffusion model then runs on z * scale_factor, where scale_factor = 1 / std(z) over a batch of encoded
training images (LDM's 0.18215 for Stable Diffusion), so the latent diffusion sees unit-variance data like a
pixel model. Sampling runs any core sampler in latent space and decodes once at the end. LSGM (Vahdat et al.
2021) trains both jointly; here they are trained in two stages, as LDM does.

    ae = AutoencoderKL(in_channels=3, latent_channels=4, channels=(32, 64, 64))   # 32x32 -> 4x8x8
    fit_autoencoder(ae, images, TrainConfig(steps=2000), "runs/ae")
    scale = estimate_scale_factor(ae, images[:512])
    latent = LatentDenoiser(Denoiser(unet, schedule), ae, scale)
    x = latent.generate(16, method="dpm++2m", steps=20)                        # (16, 3, 32, 32) images
    latent.save_pretrained("runs/ldm", schedule_spec={"betas": "cosine", "T": 1000})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from .checks import positive_int, real_number
from .conditioning import ClassifierFreeGuidance
from .denoiser import PREDICTIONS, Denoiser, DenoiserBase, DenoiserOutput, check_state
from .io import ConfigurableModule, load_pretrained, read_json, read_pretrained_config, save_pretrained, write_json
from .samplers import sample
from .schedules import DiscreteVP, NoiseSchedule
from .tensors import mean_flat, randn
from .training import TrainConfig, TrainResult, fit

LATENT_CONFIG = "latent.json"
BETAS = ("linear", "cosine", "scaled-linear")


# ----------------------------------------------------------------------------------------------------------------
# The autoencoder


class _Res(nn.Module):
    """GroupNorm-SiLU-conv twice, plus a (1x1 conv) skip; no time input (the autoencoder sees clean images)."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


@dataclass
class Posterior:
    """The diagonal Gaussian q(z | x): mean and log-variance of shape (B, latent_channels, h, w)."""

    mean: Tensor
    logvar: Tensor

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = randn(self.mean.shape, generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * noise

    def kl(self) -> Tensor:
        """KL(q(z|x) || N(0, I)) per sample, summed over latent entries: 0.5 sum(mu^2 + var - 1 - logvar)."""
        return 0.5 * (self.mean**2 + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)


class AutoencoderKL(ConfigurableModule):
    """Small conv encoder/decoder with a KL-regularised latent (LDM's "KL-f4/f8" autoencoder, tiny).

    Encoder: conv, then per level `num_res_blocks` residual blocks and a stride-2 conv (not after the last level),
    a middle residual block, GroupNorm-SiLU-conv to 2 * latent_channels (mean, log-variance). The decoder mirrors
    it with nearest-neighbour upsampling. Images (B, in_channels, H, W) with H, W divisible by `factor` map to
    latents (B, latent_channels, H / factor, W / factor), factor = 2 ** (len(channels) - 1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 4,
        channels: Sequence[int] = (32, 64, 64),
        num_res_blocks: int = 1,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        positive_int(in_channels, "in_channels")
        positive_int(latent_channels, "latent_channels")
        positive_int(num_res_blocks, "num_res_blocks")
        positive_int(norm_groups, "norm_groups")
        chans = [int(c) for c in channels]
        if not chans or any(c < 1 or c % norm_groups for c in chans):
            raise ValueError(f"channels: expected a non-empty list of multiples of norm_groups={norm_groups}, "
                             f"got {list(channels)}")
        self.in_channels, self.latent_channels = in_channels, latent_channels
        self.factor = 2 ** (len(chans) - 1)

        enc: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 3, padding=1)]
        ch = chans[0]
        for level, c in enumerate(chans):
            for _ in range(num_res_blocks):
                enc.append(_Res(ch, c, norm_groups))
                ch = c
            if level != len(chans) - 1:
                enc.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        enc += [_Res(ch, ch, norm_groups), nn.GroupNorm(norm_groups, ch), nn.SiLU(),
                nn.Conv2d(ch, 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv2d(latent_channels, ch, 3, padding=1), _Res(ch, ch, norm_groups)]
        for level, c in reversed(list(enumerate(chans))):
            for _ in range(num_res_blocks):
                dec.append(_Res(ch, c, norm_groups))
                ch = c
            if level != 0:
                dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)]
        dec += [nn.GroupNorm(norm_groups, ch), nn.SiLU(), nn.Conv2d(ch, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check_images(self, x: Tensor) -> None:
        check_state(x, "images")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"images: expected shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise ValueError(f"images: expected H and W divisible by {self.factor}, got {tuple(x.shape[2:])}")

    def encode(self, x: Tensor) -> Posterior:
        """q(z | x) for images x (B, C, H, W) in [-1, 1]."""
        self._check_images(x)
        mean, logvar = self.encoder(x.to(self.encoder[0].weight.dtype)).chunk(2, dim=1)
        return Posterior(mean, logvar.clamp(-30.0, 20.0))

    def decode(self, z: Tensor) -> Tensor:
        """Images (B, C, H, W) from latents (B, latent_channels, h, w)."""
        check_state(z, "z")
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f"z: expected shape (B, {self.latent_channels}, h, w), got {tuple(z.shape)}")
        return self.decoder(z.to(self.decoder[0].weight.dtype))

    def forward(self, x: Tensor) -> tuple[Tensor, Posterior]:
        """(reconstruction from a posterior sample, posterior): the training pass."""
        posterior = self.encode(x)
        return self.decode(posterior.sample()), posterior


def autoencoder_loss(model: nn.Module, images: Tensor, kl_weight: float = 1e-4) -> Tensor:
    """Mean squared reconstruction error per pixel + kl_weight * KL(q(z|x) || N(0, I)) per latent entry.

    The L2 part of LDM's objective (its perceptual and adversarial terms are left out at this scale); a small
    KL weight keeps the latent near N(0, I) scale without blurring reconstructions.
    """
    recon, posterior = model(images)
    z_entries = posterior.mean[0].numel()
    return (mean_flat((recon - images) ** 2) + kl_weight * posterior.kl() / z_entries).mean()


def _first_tensor(batch: Any) -> Tensor:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, Mapping) and "image" in batch:
        return batch["image"]
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise ValueError(f"batch: expected a tensor, a (tensor, ...) tuple or a dict with 'image', got {type(batch)}")


def fit_autoencoder(
    model: AutoencoderKL,
    dataset: Dataset,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    kl_weight: float = 1e-4,
    images: Callable[[Any], Tensor] = _first_tensor,
    collate_fn: Callable[[list], Any] | None = None,
    resume: bool | None = None,
) -> TrainResult:
    """Train the autoencoder with core `fit` on `autoencoder_loss`; `images(batch)` picks the image tensor."""
    real_number(kl_weight, "kl_weight", low=0.0)
    return fit(
        model,
        lambda m, batch: autoencoder_loss(m, images(batch), kl_weight),
        dataset,
        config,
        out_dir,
        collate_fn=collate_fn,
        resume=resume,
        metadata={"kind": "autoencoder-kl", "kl_weight": kl_weight},
    )


@torch.no_grad()
def encode_latents(
    autoencoder: AutoencoderKL, images: Tensor, *, batch_size: int = 256, sample_posterior: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Encode images in batches: posterior samples (as LDM trains on) or posterior means; unscaled."""
    positive_int(batch_size, "batch_size")
    device = next(autoencoder.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        posterior = autoencoder.encode(images[i : i + batch_size].to(device))
        out.append(posterior.sample(generator) if sample_posterior else posterior.mean)
    return torch.cat(out)


def estimate_scale_factor(autoencoder: AutoencoderKL, images: Tensor, *, batch_size: int = 256,
                          generator: torch.Generator | None = None) -> float:
    """1 / std of posterior samples z ~ q(z | x) over `images` (LDM app. G: "rescale the latent by the
    component-wise standard deviation" estimated on the first batch); the diffusion then sees unit variance."""
    check_state(images, "images")
    if images.shape[0] < 2:
        raise ValueError(f"images: expected at least 2 images to estimate a standard deviation, got {images.shape[0]}")
    z = encode_latents(autoencoder, images, batch_size=batch_size, generator=generator)
    std = z.double().std().item()
    if not std > 0:
        raise ValueError(f"images: the latents have standard deviation {std}, cannot scale them")
    return 1.0 / std


# ----------------------------------------------------------------------------------------------------------------
# The latent denoiser


def latent_schedule(betas: str = "scaled-linear", T: int = 1000) -> DiscreteVP:
    """The discrete VP schedules latent models use: "scaled-linear" (LDM: sqrt-beta linear from 0.00085 to 0.012),
    "linear" (DDPM: 1e-4 to 0.02) or "cosine" (Nichol & Dhariwal 2021)."""
    positive_int(T, "T")
    if betas == "scaled-linear":
        b = torch.linspace(0.00085**0.5, 0.012**0.5, T, dtype=torch.float64) ** 2
        return DiscreteVP(b, name="scaled-linear")
    if betas in ("linear", "cosine"):
        return DiscreteVP.named(betas, T)
    raise ValueError(f"betas: expected one of {BETAS}, got {betas!r}")


def write_latent_config(directory: str | Path, scale_factor: float, prediction: str,
                        schedule_spec: Mapping[str, Any]) -> Path:
    """Write directory/latent.json: the scale factor, the prediction type and {"betas", "T"} of the schedule."""
    real_number(scale_factor, "scale_factor", low=0.0, low_open=True)
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")
    spec = {"betas": schedule_spec.get("betas"), "T": schedule_spec.get("T")}
    latent_schedule(spec["betas"], spec["T"])
    path = Path(directory) / LATENT_CONFIG
    write_json(path, {"scale_factor": float(scale_factor), "prediction": prediction, "schedule": spec})
    return path


def read_latent_config(directory: str | Path) -> dict[str, Any]:
    """Read and check directory/latent.json (see write_latent_config)."""
    path = Path(directory) / LATENT_CONFIG
    record = read_json(path, "the latent denoiser's scale factor, prediction and schedule")
    if not isinstance(record, dict) or not {"scale_factor", "prediction", "schedule"} <= set(record):
        raise ValueError(f"{path}: expected a JSON object with keys scale_factor, prediction, schedule")
    if record["prediction"] not in PREDICTIONS:
        raise ValueError(f"{path}: prediction {record['prediction']!r} is not one of {PREDICTIONS}")
    spec = record["schedule"]
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: schedule must be an object with betas and T")
    latent_schedule(spec.get("betas"), spec.get("T"))
    real_number(record["scale_factor"], f"{path}: scale_factor", low=0.0, low_open=True)
    return record


class LatentDenoiser(DenoiserBase):
    """A Denoiser over scaled latents plus the autoencoder that maps them to data and back.

    `predict` is the latent denoiser's, so every core sampler, guidance wrapper and loss runs on it unchanged
    in latent space; `encode` / `decode` convert between data and the scaled latent z * scale_factor, and
    `generate` samples latents with `core.sample` and decodes them.
    """

    def __init__(self, denoiser: DenoiserBase, autoencoder: AutoencoderKL, scale_factor: float) -> None:
        if not isinstance(denoiser, DenoiserBase):
            raise ValueError(f"denoiser: expected a DenoiserBase, got {type(denoiser).__name__}")
        if not isinstance(autoencoder, AutoencoderKL):
            raise ValueError(f"autoencoder: expected an AutoencoderKL, got {type(autoencoder).__name__}")
        self.inner = denoiser
        self.schedule: NoiseSchedule = denoiser.schedule
        self.autoencoder = autoencoder
        self.scale_factor = real_number(scale_factor, "scale_factor", low=0.0, low_open=True)

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        return self.inner.predict(x_t, t, **cond)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(latent_channels, h, w) of the latents of an image of this size."""
        f = self.autoencoder.factor
        for name, v in (("height", height), ("width", width)):
            if positive_int(v, name) % f:
                raise ValueError(f"{name}: expected a multiple of the autoencoder factor {f}, got {v}")
        return self.autoencoder.latent_channels, height // f, width // f

    @torch.no_grad()
    def encode(self, images: Tensor, *, sample_posterior: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
        """Scaled latents scale_factor * z of images (B, C, H, W); the posterior mean unless `sample_posterior`."""
        posterior = self.autoencoder.encode(images)
        z = posterior.sample(generator) if sample_posterior else posterior.mean
        return z * self.scale_factor

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Images from scaled latents: D(latents / scale_factor)."""
        return self.autoencoder.decode(latents / self.scale_factor)

    def generate(
        self,
        n: int,
        height: int,
        width: int,
        *,
        method: str = "dpm++2m",
        steps: int = 20,
        guidance_scale: float | None = None,
        null_cond: dict | None = None,
        x_T: Tensor | None = None,
        generator: torch.Generator | None = None,
        return_latents: bool = False,
        **kwargs,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Sample n latents with `core.sample` (any method) and decode them to (n, C, height, width) images.

        With `guidance_scale` w the sampler sees `ClassifierFreeGuidance(self, w, null_cond)` (Ho & Salimans
        2022): eps_u + w (eps_c - eps_u). `kwargs` go to `core.sample` (grid, options, callback, conditioning).
        """
        n = positive_int(n, "n")
        den: DenoiserBase = self
        if guidance_scale is not None:
            den = ClassifierFreeGuidance(self, real_number(guidance_scale, "guidance_scale"), null_cond)
        device = next(self.autoencoder.parameters()).device
        start = x_T if x_T is not None else (n, *self.latent_shape(height, width))
        z = sample(den, start, method=method, steps=steps, generator=generator, device=device, **kwargs)
        images = self.decode(z)
        return (images, z) if return_latents else images

    # ---- save / load the pair
    def save_pretrained(self, directory: str | Path, *, schedule_spec: Mapping[str, Any],
                        metadata: Mapping[str, Any] | None = None) -> Path:
        """directory/autoencoder/ and directory/denoiser/ (save_pretrained of each) + latent.json.

        `schedule_spec` = {"betas": one of BETAS, "T": int} rebuilds the schedule (see `latent_schedule`); the
        inner denoiser must be a core `Denoiser` over an nn.Module network.
        """
        inner = self.inner
        if not isinstance(inner, Denoiser) or not isinstance(inner.net, nn.Module):
            raise ValueError("save_pretrained: the inner denoiser must be a core Denoiser around an nn.Module")
        latent_schedule(schedule_spec.get("betas"), schedule_spec.get("T"))  # validate before writing anything
        directory = Path(directory)
        save_pretrained(self.autoencoder, directory / "autoencoder")
        save_pretrained(inner.net, directory / "denoiser", metadata=dict(metadata or {}))
        write_latent_config(directory, self.scale_factor, inner.prediction, schedule_spec)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, net_cls: type[nn.Module] | None = None,
                        map_location: str | torch.device = "cpu") -> LatentDenoiser:
        """Load what `save_pretrained` wrote; the network class comes from its config.json (or `net_cls`)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such directory (expected a LatentDenoiser.save_pretrained one)")
        record = read_latent_config(directory)
        schedule = latent_schedule(record["schedule"]["betas"], record["schedule"]["T"])
        ae = load_pretrained(directory / "autoencoder", cls=AutoencoderKL, map_location=map_location)
        net = load_pretrained(directory / "denoiser", cls=net_cls, map_location=map_location)
        return cls(Denoiser(net, schedule, record["prediction"]), ae, float(record["scale_factor"]))

    @staticmethod
    def metadata(directory: str | Path) -> dict[str, Any]:
        """The metadata stored with the latent network (see save_pretrained)."""
        return read_pretrained_config(Path(directory) / "denoiser")["metadata"]


__all__ = [
    "AutoencoderKL",
    "LatentDenoiser",
    "Posterior",
    "autoencoder_loss",
    "encode_latents",
    "estimate_scale_factor",
    "fit_autoencoder",
    "latent_schedule",
    "read_latent_config",
    "write_latent_config",
]
