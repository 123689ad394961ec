"""`train(config, out_dir, *, resume=None)`: the classifier, then the unconditional DDPM that DiffPure purifies with.

    result = train(load_purification_config("digits"), "runs/purification/digits")
    result.final_model                                   # the classifier (EMA weights); core's TrainResult
    pipe = PurificationPipeline.from_pretrained("runs/purification/digits")   # DDPM + classifier, the run config

out_dir/
  run_config.json   the resolved PurificationConfig (`purify` / `evaluate --checkpoint out_dir` start from it)
  classifier/       core `fit` run of the classifier (config.classifier, config.train) on the train split of
                    data.source: config.json + model.safetensors + run_config.json + checkpoint/
  diffusion/        the ImageDDPM omnidiffusion.vision trains on the same images (config.diffusion: a vision config
                    name plus overrides; data.image_size, data.channels and no flips are set from config.data)

`fit_classifier` and `fit_diffusion` are the two halves (the `train-classifier` and `train-diffusion` commands);
each resumes from its checkpoint after a kill, runs under torchrun, and stores the run config in out_dir.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from omnidiffusion.core.cli import as_flags
from omnidiffusion.core.io import save_run_config
from omnidiffusion.core.training import TrainResult, is_main_process, seed_everything
from omnidiffusion.vision import train_image_ddpm

from .classifier import build_classifier, predict_labels, train_classifier
from .data import Note, load_images
from .settings import PurificationConfig


def _check_config(config: PurificationConfig) -> None:
    if not isinstance(config, PurificationConfig):
        raise ValueError(f"config: expected a PurificationConfig, got {type(config).__name__}")


def training_images(config: PurificationConfig, note: Note | None = None) -> tuple[Tensor, Tensor]:
    """The train split of data.source at data.image_size and data.channels: images in [0, 1], labels."""
    d = config.data
    return load_images(
        d.source, split="train", size=d.image_size, channels=d.channels, name="data.source", note=note, root=d.root
    )


def fit_classifier(
    config: PurificationConfig, out_dir: str | Path, *, resume: bool | None = None, note: Note | None = None
) -> TrainResult:
    """Train the classifier into out_dir/classifier (initial weights seeded by train.seed); prints its train
    accuracy. Returns core's TrainResult (`.final_model`: the EMA weights when EMA is on)."""
    _check_config(config)
    out = Path(out_dir)
    d, c = config.data, config.classifier
    seed_everything(config.train.seed)  # the initial weights (fit seeds only its own loop)
    with as_flags(arch="classifier.arch"):
        model = build_classifier(c.arch, c.num_classes, d.channels, c.width)
    x, y = training_images(config, note)
    if y.max().item() >= c.num_classes:
        raise ValueError(
            f"classifier.num_classes: expected at least {y.max().item() + 1} (the labels of {d.source!r} go up to "
            f"{y.max().item()}), got {c.num_classes}"
        )
    result = train_classifier(model, x, y, config.train, out / "classifier", resume=resume, run_config=config)
    if is_main_process():
        acc = (predict_labels(result.final_model.cpu(), x) == y).float().mean().item()
        print(f"classifier {type(model).__name__}: train accuracy {acc:.4f} -> {out / 'classifier'}")
        save_run_config(out, config)
    return result


def fit_diffusion(
    config: PurificationConfig, out_dir: str | Path, *, resume: bool | None = None, note: Note | None = None
) -> nn.Module:
    """Train the unconditional DDPM into out_dir/diffusion through omnidiffusion.vision; returns its EMA model."""
    _check_config(config)
    out = Path(out_dir)
    d = config.data
    x, _ = training_images(config, note)
    sets = [f"data.image_size={d.image_size}", f"data.channels={d.channels}", "data.hflip=false"]
    model = train_image_ddpm(
        x * 2 - 1,
        config.diffusion.vision_config,
        out / "diffusion",
        resume=resume,
        overrides=sets + list(config.diffusion.overrides),
    )
    if is_main_process():
        print(f"diffusion model -> {out / 'diffusion'}")
        save_run_config(out, config)
    return model


def train(
    config: PurificationConfig, out_dir: str | Path, *, resume: bool | None = None, note: Note | None = None
) -> TrainResult:
    """Train the classifier and the DDPM of `config` into `out_dir` (see the module docstring); returns the
    classifier's TrainResult (the DDPM is out_dir/diffusion, which `PurificationPipeline.from_pretrained(out_dir)`
    loads with the classifier).

    resume: None continues from the checkpoints present, True requires them, False refuses them. `note` hears
    about conversions of the data (e.g. grey digits repeated to 3 channels).
    """
    result = fit_classifier(config, out_dir, resume=resume, note=note)
    fit_diffusion(config, out_dir, resume=resume, note=note)
    return result


__all__ = ["fit_classifier", "fit_diffusion", "train", "training_images"]
