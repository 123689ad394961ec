"""What a downstream user calls: `TextToImage.from_pretrained(dir)(prompts) -> list of PIL images`.

    pipe = TextToImage.from_pretrained("runs/multimodal")
    images = pipe(["a small red circle left of a large blue square"], n_per_prompt=4, guidance_scale=3.0)
    x = pipe.generate_tensor(prompts, method="ddpm", steps=250)      # (N, 3, 32, 32) in [-1, 1]

Sampling follows the checkpoint's `[sampler]` (run_config.json) unless a call says otherwise. It goes through
`omnidiffusion.core.sample` (via `LatentDenoiser.generate` in latent space) with classifier-free guidance from core
(`ClassifierFreeGuidance`, null condition = the empty caption).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from omnidiffusion.core import ClassifierFreeGuidance, Denoiser, sample
from omnidiffusion.core.io import has_run_config, load_pretrained, open_pretrained
from omnidiffusion.core.latent import AutoencoderKL, LatentDenoiser, read_latent_config

from .data import canonical_caption, to_uint8
from .models import TextToImageNet
from .settings import MultimodalConfig, legacy_config
from .text import encode_captions, load_tokenizer

RESOLUTION = 32


class TextToImage:
    """A trained text-to-image model (latent or pixel space) with its tokenizer and sampler settings."""

    def __init__(self, net: TextToImageNet, tokenizer, config: MultimodalConfig,
                 autoencoder: AutoencoderKL | None = None, scale_factor: float = 1.0) -> None:
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.denoiser = Denoiser(net, config.schedule.build(), "eps")
        self.latent = None if autoencoder is None else LatentDenoiser(self.denoiser, autoencoder.eval(), scale_factor)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: MultimodalConfig | None = None
    ) -> TextToImage:
        """Load a directory written by `training.train` (run_config.json, tokenizer.json, denoiser/, ...);
        `config` replaces the stored run config's `[sampler]` (the CLI passes it with the --set overrides applied;
        the networks' own settings always come from the checkpoint)."""
        has_config = has_run_config(directory)
        pre = open_pretrained(directory, TextToImageNet, config_cls=MultimodalConfig if has_config else None,
                              device=device, subfolder="denoiser", what="a text-to-image run written by `train`")
        stored = pre.config if has_config else legacy_config(pre.directory)  # an older run: multimodal.json
        if config is not None:
            stored = replace(stored, sampler=config.sampler)
        tok = load_tokenizer(pre.directory)
        ae, scale = None, 1.0
        if stored.unet.space == "latent":
            scale = float(read_latent_config(pre.directory)["scale_factor"])
            ae = load_pretrained(pre.directory / "autoencoder", cls=AutoencoderKL, map_location=pre.device)
        return cls(pre.model, tok, stored, ae, scale)

    @property
    def device(self) -> torch.device:
        return self.net.unet.input_conv.weight.device

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(context (B, L, D), context_mask (B, L)) of the prompts; "" is the unconditional prompt. Prompts of the
        bundled grammar are put in canonical order first when the model was trained so (text.canonical)."""
        prompts = [canonical_caption(p) for p in prompts] if self.config.text.canonical else list(prompts)
        ids, mask = encode_captions(self.tokenizer, prompts, self.config.text.max_length)
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
        n_per_prompt: int | None = None,
        guidance_scale: float | None = None,
        method: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Images (len(prompts) * n_per_prompt, 3, 32, 32) in [-1, 1], prompt-major; None = the config's
        `[sampler]` value (n_per_prompt: sampler.samples).

        guidance_scale w: eps_u + w (eps_c - eps_u) (w = 0 unconditional, 1 conditional, > 1 guided).
        """
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts: expected a non-empty list of strings, got {prompts!r}")
        given = {"samples": n_per_prompt, "guidance_scale": guidance_scale, "method": method, "steps": steps,
                 "grid": grid, "seed": seed, "batch_size": batch_size}
        s = replace(self.config.sampler, **{k: v for k, v in given.items() if v is not None})  # checked there
        n_per_prompt, w, batch_size = s.samples, s.guidance_scale, s.batch_size
        expanded = [p for p in prompts for _ in range(n_per_prompt)]
        gen = torch.Generator().manual_seed(s.seed)
        out = []
        for i in range(0, len(expanded), batch_size):
            chunk = expanded[i : i + batch_size]
            context, mask = self.encode_prompts(chunk)
            cond = {"context": context, "context_mask": mask}
            guide = None if w == 1.0 else w  # w = 1 is the conditional model: one network pass per step
            null = self.null_cond(len(chunk))
            opts = {**s.sample_kwargs(), "generator": gen, "progress": progress}
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
