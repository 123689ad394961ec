"""What a downstream user calls: `TextToImage.from_pretrained(dir)(prompts) -> list of PIL images`.

    pipe = TextToImage.from_pretrained("runs/multimodal")
    images = pipe(["a small red circle left of a large blue square"], n_per_prompt=4, guidance_scale=3.0)
    x = pipe.generate_tensor(prompts, method="ddpm", steps=250)      # (N, 3, 32, 32) in [-1, 1]

Sampling goes through `omnidiffusion.core.sample` (via `LatentDenoiser.generate` in latent space) with
classifier-free guidance from core (`ClassifierFreeGuidance`, null condition = the empty caption).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from omnidiffusion.core import ClassifierFreeGuidance, Denoiser, sample
from omnidiffusion.core.checks import positive_int, real_number, resolve_device
from omnidiffusion.core.config import from_dict
from omnidiffusion.core.io import load_pretrained, read_json
from omnidiffusion.core.latent import AutoencoderKL, LatentDenoiser, latent_schedule, read_latent_config

from .data import to_uint8
from .models import TextToImageNet
from .settings import MultimodalConfig, check_sampler_value
from .text import encode_captions, load_tokenizer
from .training import SETTINGS_NAME

RESOLUTION = 32


class TextToImage:
    """A trained text-to-image model (latent or pixel space) with its tokenizer and sampler settings."""

    def __init__(self, net: TextToImageNet, tokenizer, config: MultimodalConfig,
                 autoencoder: AutoencoderKL | None = None, scale_factor: float = 1.0) -> None:
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.config = config
        schedule = latent_schedule(config.diffusion.betas, config.diffusion.T)
        self.denoiser = Denoiser(net, schedule, "eps")
        self.latent = None if autoencoder is None else LatentDenoiser(self.denoiser, autoencoder.eval(), scale_factor)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> TextToImage:
        """Load a directory written by `training.train` (multimodal.json, tokenizer.json, denoiser/, ...)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such directory (expected one written by `train`)")
        device = resolve_device(device)
        config = from_dict(MultimodalConfig, read_json(directory / SETTINGS_NAME, "the multimodal training config"))
        tok = load_tokenizer(directory)
        net = load_pretrained(directory / "denoiser", cls=TextToImageNet, map_location=device)
        ae, scale = None, 1.0
        if config.diffusion.space == "latent":
            scale = float(read_latent_config(directory)["scale_factor"])
            ae = load_pretrained(directory / "autoencoder", cls=AutoencoderKL, map_location=device)
        return cls(net, tok, config, ae, scale)

    @property
    def device(self) -> torch.device:
        return self.net.unet.input_conv.weight.device

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(context (B, L, D), context_mask (B, L)) of the prompts; "" is the unconditional prompt."""
        ids, mask = encode_captions(self.tokenizer, list(prompts), self.config.text.max_length)
        mask = mask.to(self.device)
        return self.net.encode_text(ids.to(self.device), mask), mask

    def null_cond(self, batch: int) -> dict[str, Tensor]:
        """The unconditional (empty caption) condition for classifier-free guidance, expanded to `batch`."""
        ctx, mask = self.encode_prompts([""])
        return {"context": ctx.expand(batch, -1, -1), "context_mask": mask.expand(batch, -1)}

    @torch.no_grad()
    def generate_tensor(
        self,
        prompts: Sequence[str],
        *,
        n_per_prompt: int = 1,
        guidance_scale: float | None = None,
        method: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Images (len(prompts) * n_per_prompt, 3, 32, 32) in [-1, 1], prompt-major; None = the config's value.

        guidance_scale w: eps_u + w (eps_c - eps_u) (w = 0 unconditional, 1 conditional, > 1 guided).
        """
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts: expected a non-empty list of strings, got {prompts!r}")
        n_per_prompt = positive_int(n_per_prompt, "n_per_prompt")
        s = self.config.sampler
        w = s.guidance_scale if guidance_scale is None else real_number(guidance_scale, "guidance_scale", low=0.0)
        method = s.method if method is None else check_sampler_value("method", method)
        steps = s.steps if steps is None else positive_int(steps, "steps")
        grid = s.grid if grid is None else check_sampler_value("grid", grid)
        seed = s.seed if seed is None else positive_int(seed, "seed", minimum=0)
        batch_size = s.batch_size if batch_size is None else positive_int(batch_size, "batch_size")
        expanded = [p for p in prompts for _ in range(n_per_prompt)]
        gen = torch.Generator(self.device).manual_seed(seed)
        out = []
        for i in range(0, len(expanded), batch_size):
            chunk = expanded[i : i + batch_size]
            context, mask = self.encode_prompts(chunk)
            cond = {"context": context, "context_mask": mask}
            guide = None if w == 1.0 else w  # w = 1 is the conditional model: one network pass per step
            null = self.null_cond(len(chunk))
            opts = {"method": method, "steps": steps, "grid": grid, "generator": gen, "progress": progress}
            if self.latent is not None:
                x = self.latent.generate(len(chunk), RESOLUTION, RESOLUTION, guidance_scale=guide, null_cond=null,
                                         **opts, **cond)
            else:
                den = self.denoiser if guide is None else ClassifierFreeGuidance(self.denoiser, guide, null)
                x = sample(den, (len(chunk), 3, RESOLUTION, RESOLUTION), device=self.device, **opts, **cond)
            out.append(x.clamp(-1, 1).cpu())
        return torch.cat(out)

    def __call__(self, prompts: Sequence[str], **kwargs):
        """PIL images (prompt-major), keyword arguments as `generate_tensor`."""
        from PIL import Image

        return [Image.fromarray(a) for a in to_uint8(self.generate_tensor(prompts, **kwargs))]

    generate = __call__
