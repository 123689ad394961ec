"""CLI wiring of the anomaly task: `train` (task "anomaly"), `evaluate --task anomaly` and `anomaly-score`.

omnidiffusion-vision train --config anomaly-textures [--set anomaly.noise=gaussian]
omnidiffusion-vision evaluate --task anomaly --checkpoint DIR [--image-dir F --mask-dir F] [--set anomaly.t_star=..]
omnidiffusion-vision anomaly-score --checkpoint DIR --input img.png --output-dir OUT
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from omnidiffusion.core.cli import AppCLI

from ..flags import as_flags


def _overrides(args: argparse.Namespace, config) -> dict:
    """The [anomaly] values given with --set on the command line (they replace the checkpoint's settings)."""
    keys = [o.split("=", 1)[0].strip() for o in getattr(args, "overrides", None) or []]
    names = [k.split(".", 1)[1] for k in keys if k.startswith("anomaly.")]
    return {n: getattr(config.anomaly, n) for n in names}


def _detector(args: argparse.Namespace, config):
    from .pipeline import AnomalyDetector

    return AnomalyDetector.from_pretrained(args.checkpoint, args.device, **_overrides(args, config))


def run_score(args: argparse.Namespace, config) -> int:
    """anomaly-score: write <stem>_map.png (the map scaled to its max) and <stem>_overlay.png for one image."""
    from ..imaging import read_image
    from .pipeline import map_image, overlay

    det = _detector(args, config)
    image = read_image(args.input, det.model.channels)
    with as_flags(image="--input", images="--input"):
        amap, score = det.score(image)
    import torch

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.input).stem
    m = torch.from_numpy(amap)
    map_image(m).save(out / f"{stem}_map.png")
    overlay(image, m).save(out / f"{stem}_overlay.png")
    if args.save_npy:
        import numpy as np

        np.save(out / f"{stem}_map.npy", amap)
    s = det.settings
    print(
        f"score {score:.5g} ({s.score} of the map; {s.noise} noise, t*={s.t_star}, {s.method}) -> "
        f"{out / (stem + '_map.png')}, {out / (stem + '_overlay.png')}"
    )
    return 0


def register(cli: AppCLI, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this task's verbs to `omnidiffusion-vision` (`common` adds --checkpoint and --device)."""
    from ..settings import VisionConfig

    p = cli.add_command(
        "anomaly-score",
        run_score,
        VisionConfig,
        help="AnoDDPM anomaly map and score of one image (writes the map and an overlay PNG)",
    )
    common(p)
    p.add_argument("--input", required=True, help="the image (PNG/JPEG) at the model's size")
    p.add_argument("--output-dir", default="anomaly", help="folder for <name>_map.png and <name>_overlay.png")
    p.add_argument("--save-npy", action="store_true", help="also write the raw map as <name>_map.npy")


def evaluate(args: argparse.Namespace, config) -> dict:
    """`evaluate --task anomaly`: detector and both baselines on --image-dir/--mask-dir (else the bundled test set)."""
    from .data import anomaly_test_set, read_pairs
    from .evaluation import evaluate_anomaly

    det = _detector(args, config)
    size = det.model.image_size
    if bool(args.image_dir) != bool(args.mask_dir):
        raise ValueError("--image-dir, --mask-dir: give both folders (images and their masks), or neither")
    if args.image_dir:
        images, masks, _ = read_pairs(args.image_dir, args.mask_dir, det.model.channels, size)
        data = {"image_dir": str(args.image_dir), "mask_dir": str(args.mask_dir)}
    else:
        images, masks = anomaly_test_set(det.settings, size)
        data = {"bundled": det.settings.dataset, "texture": det.settings.texture}
    result = evaluate_anomaly(det, images, masks)
    result["protocol"]["data"] = data
    return result


def train(config, out_dir, resume):
    """`omnidiffusion-vision train` for task "anomaly": AnoDDPM's DDPM on the normal images; returns the EMA model."""
    import torch

    from ..data import training_images
    from ..models import ImageDDPM
    from ..training import TensorImages, _fit, _out
    from .anoddpm import AnoDDPMLoss
    from .data import normal_images
    from .pipeline import save_reference

    d = config.data
    if d.source == "folder":
        data = training_images("folder", d.channels, d.image_size, d.folder)
        mean = torch.stack([data[i] for i in range(len(data))]).mean(dim=0) * 0.5 + 0.5
    else:
        if d.channels != 1:
            raise ValueError(f"data.channels: the bundled anomaly data are grayscale (1 channel), got {d.channels}")
        x = normal_images(config.anomaly, "train", d.image_size)  # (N, 1, S, S) in [0, 1]
        data = TensorImages((x * 2.0 - 1.0).contiguous())
        mean = x.mean(dim=0)
    model = ImageDDPM(
        d.image_size, d.channels, config.model.unet_kwargs(), config.schedule.to_dict(), config.prediction
    )
    loss = AnoDDPMLoss(config.anomaly, d.hflip)
    final = _fit(model, loss, data, config, out_dir, resume, "anomaly")
    out = _out(out_dir, config)
    if (out / "config.json").is_file():  # rank 0 wrote the model
        save_reference(out, mean)
    return final
