"""`train(config, out_dir, *, resume)`: autoencoder (latent space only), then the text-conditioned denoiser.

Stage 1 fits the KL autoencoder with core `fit` (out_dir/autoencoder/), then estimates the latent scale factor
from 512 encoded training images (LDM app. G). Stage 2 fits text encoder + CrossAttnUNet jointly with core `fit`
on the eps-prediction denoising loss (out_dir/denoiser/); 10% of the captions are replaced by "" so the same
network is the unconditional model that classifier-free guidance needs (Ho & Salimans 2022, GLIDE sec. 2.3).

out_dir/
  run_config.json         the resolved MultimodalConfig, written at the end (TextToImage.from_pretrained and
                          the --checkpoint commands start from it)
  tokenizer.json          the word-level tokenizer
  latent.json             scale factor, prediction type, schedule (core.latent)
  autoencoder/            fit run of the autoencoder (latent space only)
  denoiser/               fit run of TextToImageNet: config.json + model.safetensors + checkpoint/
Both stages resume from their checkpoints after a kill; under torchrun rank 0 writes the files. Initial weights
are seeded (autoencoder.train.seed, train.seed), so a run is reproducible from a fresh process.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from omnidiffusion.core import Denoiser, denoising_loss
from omnidiffusion.core.io import load_pretrained, save_run_config
from omnidiffusion.core.latent import AutoencoderKL, estimate_scale_factor, fit_autoencoder, write_latent_config
from omnidiffusion.core.training import TrainResult, fit, is_main_process, seed_everything

from .data import CaptionedImages, canonical_caption, collate, load_folder, make_split
from .models import TextToImageNet
from .settings import MultimodalConfig
from .text import bert_config, encode_captions, load_pretrained_encoder, save_tokenizer, train_tokenizer


def training_data(config: MultimodalConfig) -> tuple[torch.Tensor, list[str]]:
    """The training images and captions: the bundled train split, or `data.root`."""
    if config.data.root is not None:
        return load_folder(config.data.root)
    s = make_split("train", config.data.train_size, seed=config.data.seed)
    return s.images, s.captions


def build_net(config: MultimodalConfig, vocab_size: int, text_config: dict[str, Any] | None = None) -> TextToImageNet:
    """TextToImageNet for `config`: latent (4 x 8 x 8) or pixel (3 x 32 x 32) input, a fresh or given encoder."""
    latent = config.unet.space == "latent"
    factor = 2 ** (len(config.autoencoder.channels) - 1)
    channels = config.autoencoder.latent_channels if latent else 3
    u = config.unet
    # Pixel space: the same levels at 32 / factor and below, preceded by levels at 32, 16, ... of the first width.
    extra = [] if latent else [u.channel_mults[0]] * (factor.bit_length() - 1)
    mults = extra + list(u.channel_mults)
    unet = {
        "in_channels": channels, "out_channels": channels, "base_channels": u.base_channels,
        "channel_mults": mults, "num_res_blocks": u.num_res_blocks,
        "attention_resolutions": list(u.attention_resolutions), "num_heads": u.num_heads, "dropout": u.dropout,
        "resolution": 32 // factor if latent else 32, "norm_groups": u.norm_groups,
    }
    t = config.text
    if text_config is None:
        text_config = bert_config(vocab_size, t.hidden, t.layers, t.heads, t.max_length)
    return TextToImageNet(unet, text_config)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def caption_loss(denoiser_of, tok, config: MultimodalConfig, encode_images=None):
    """loss_fn(model, (images, captions)) for `fit`: canonical order (text.canonical), caption dropout, tokenise,
    denoising loss on eps."""
    drop = config.text.caption_dropout
    L = config.text.max_length
    canonical = config.text.canonical

    def loss_fn(model, batch) -> torch.Tensor:
        images, captions = batch
        if canonical:
            captions = [canonical_caption(c) for c in captions]
        keep = torch.rand(len(captions)) >= drop  # torch's global RNG: part of every checkpoint
        captions = [c if k else "" for c, k in zip(captions, keep.tolist(), strict=True)]
        ids, mask = encode_captions(tok, captions, L)
        x0 = images if encode_images is None else encode_images(images)
        return denoising_loss(denoiser_of(model), x0, input_ids=ids.to(x0.device), attention_mask=mask.to(x0.device))

    return loss_fn


def train(config: MultimodalConfig, out_dir: str | Path, *, resume: bool | None = None) -> TrainResult:
    """Train the text-to-image model of `config` into `out_dir` (see the module docstring); returns stage 2's result.

    resume: None continues where checkpoints exist; True requires a checkpoint of the first stage; False
    requires an empty run (no checkpoint in either stage).
    """
    if not isinstance(config, MultimodalConfig):
        raise ValueError(f"config: expected a MultimodalConfig, got {type(config).__name__}")
    out = Path(out_dir)
    latent = config.unet.space == "latent"
    images, captions = training_data(config)

    if config.text.pretrained is not None:
        encoder, text_config, tok = load_pretrained_encoder(config.text.pretrained)
    else:
        encoder, text_config, tok = None, None, train_tokenizer(captions)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        save_tokenizer(tok, out)

    stage2 = out / "denoiser" / "checkpoint"
    if resume is True and not (out / "autoencoder" / "checkpoint").exists() and not stage2.exists():
        raise FileNotFoundError(f"train(resume=True): no checkpoint under {out}")
    schedule = config.schedule.build()
    scale, encode = 1.0, None
    dataset = CaptionedImages(images, captions)
    if latent:
        a = config.autoencoder
        seed_everything(a.train.seed)  # the initial weights (fit seeds only its own loop)
        ae = AutoencoderKL(3, a.latent_channels, list(a.channels), a.num_res_blocks, a.norm_groups)
        fit_autoencoder(ae, dataset, a.train, out / "autoencoder", kl_weight=a.kl_weight, collate_fn=collate,
                        images=lambda b: b[0], resume=None if resume is not False else False)
        _barrier()
        ae = load_pretrained(out / "autoencoder", cls=AutoencoderKL)
        device = torch.device("cpu")
        scale = estimate_scale_factor(ae, images[:512], generator=torch.Generator().manual_seed(config.data.seed))
        ae.requires_grad_(False)

        def encode(x: torch.Tensor) -> torch.Tensor:
            nonlocal device
            if x.device != device:
                ae.to(x.device)
                device = x.device
            with torch.no_grad():
                return ae.encode(x).sample() * scale  # a posterior sample per step, as LDM trains

    seed_everything(config.train.seed)
    net = build_net(config, tok.get_vocab_size(), text_config)
    if encoder is not None:
        net.text_encoder.load_state_dict(encoder.state_dict())
    if not config.text.train_encoder:
        net.text_encoder.requires_grad_(False)
    if is_main_process() and latent:
        write_latent_config(out, scale, "eps", {"betas": config.schedule.name, "T": config.schedule.timesteps})
    result = fit(
        net,
        caption_loss(lambda m: Denoiser(m, schedule, "eps"), tok, config, encode),
        dataset,
        config.train,
        out / "denoiser",
        collate_fn=collate,
        resume=None if resume is not False else False,
        metadata={"kind": "text-to-image", "space": config.unet.space, "train": asdict(config.train)},
    )
    if is_main_process():
        save_run_config(out, config)
    return result
