"""Anomaly-detection data: bundled normal images, pasted anomalies with exact masks, image/mask folder pairs.

Bundled (nothing is downloaded):
- `texture_crops(name, split, n, size, zoom)`: crops of a scikit-image texture (brick | grass | gravel, 512 x 512
  grayscale) downscaled by `zoom`; "train" crops come from the left 3/4 of the texture, "test" crops from the
  right 1/4, so they never overlap.
- `normal_images(settings, split, size)`: the normal set of the configured dataset (textures or digits 16 x 16).
- `paste_anomalies(images, ...)`: a test set with known pixel masks. Kinds: "texture" (an elliptic patch of
  another texture), "intensity" (a bright or dark elliptic blob), "scratch" (a straight 1-2 px line of constant
  intensity), by default matched to the normal image's intensity statistics. A fraction of the images stays
  normal (empty mask) for the image-level AUROC.

User data: `read_pairs(image_dir, mask_dir)` pairs images and masks by file name (masks: white = anomalous,
thresholded at 0.5); `write_pairs` writes the same layout as PNG. MVTec AD (Bergmann et al. 2019), one class
folder `<class>/`: `train/good/` trains (data.source = "folder"), and `read_mvtec_test(class_dir)` reads
`test/<defect>/*.png` with `ground_truth/<defect>/<name>_mask.png` (`test/good/` has no masks: all normal).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..imaging import image_files, read_image, read_images, tensor_to_pil
from .settings import AnomalyConfig

TEXTURES = ("brick", "grass", "gravel")
KINDS = ("texture", "intensity", "scratch")


def _texture(name: str, zoom: int) -> Tensor:
    """A scikit-image texture as (1, 512 / zoom, 512 / zoom) float in [0, 1] (area downscaling)."""
    if name not in TEXTURES:
        raise ValueError(f"texture: expected one of {TEXTURES}, got {name!r}")
    if not isinstance(zoom, int) or zoom < 1:
        raise ValueError(f"zoom: expected an int >= 1, got {zoom!r}")
    from skimage import data as skdata

    img = torch.from_numpy(getattr(skdata, name)().astype(np.float32) / 255.0)[None, None]  # (1, 1, 512, 512)
    side = img.shape[-1] // zoom
    return F.interpolate(img, size=(side, side), mode="area")[0]


def texture_crops(
    name: str, split: str = "train", n: int = 256, size: int = 32, zoom: int = 3, seed: int = 0
) -> Tensor:
    """n random size x size crops of texture `name` downscaled by `zoom`: (n, 1, size, size) in [0, 1]."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    tex = _texture(name, zoom)
    h, w = tex.shape[-2:]
    cut = (3 * w) // 4
    lo, hi = (0, cut - size) if split == "train" else (cut, w - size)
    if hi < lo or size > h:
        raise ValueError(f"size: {size} px crops do not fit the {split} part of {name} at zoom {zoom} ({h}x{w})")
    gen = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
    tops = torch.randint(0, h - size + 1, (n,), generator=gen).tolist()
    lefts = torch.randint(lo, hi + 1, (n,), generator=gen).tolist()
    return torch.stack([tex[:, t : t + size, left : left + size] for t, left in zip(tops, lefts, strict=True)])


def normal_images(settings: AnomalyConfig, split: str, size: int, n: int | None = None) -> Tensor:
    """Normal (anomaly-free) images of settings.dataset: (N, 1, size, size) in [0, 1]."""
    if settings.dataset == "textures":
        count = n or (settings.train_crops if split == "train" else settings.test_images)
        return texture_crops(settings.texture, split, count, size, settings.zoom, settings.seed)
    if settings.dataset == "digits":
        from ..data import load_digits_16

        x = load_digits_16(split)
        if size != x.shape[-1]:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        return x[:n] if n else x
    raise ValueError(f"anomaly.dataset: expected 'textures' or 'digits', got {settings.dataset!r}")


def _ellipse(size: int, gen: torch.Generator, lo: float, hi: float) -> Tensor:
    """A random filled ellipse (H, W) bool, semi-axes in [lo, hi] * size, any rotation, centre inside the image."""
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    r = torch.rand(5, generator=gen)
    a, b = (lo + (hi - lo) * r[0]) * size, (lo + (hi - lo) * r[1]) * size
    cy, cx = size * (0.2 + 0.6 * r[2]), size * (0.2 + 0.6 * r[3])
    th = math.pi * float(r[4])
    u = (xs - cx) * math.cos(th) + (ys - cy) * math.sin(th)
    v = -(xs - cx) * math.sin(th) + (ys - cy) * math.cos(th)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _scratch(size: int, gen: torch.Generator) -> Tensor:
    """A straight line (H, W) bool, 1-2 px wide, through a random point at a random angle, 40-80% of the side."""
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    r = torch.rand(5, generator=gen)
    cy, cx = size * (0.25 + 0.5 * r[0]), size * (0.25 + 0.5 * r[1])
    th = math.pi * float(r[2])
    half_len = size * (0.2 + 0.2 * float(r[3]))
    width = 0.5 + 0.5 * float(r[4])
    along = (xs - cx) * math.cos(th) + (ys - cy) * math.sin(th)
    across = -(xs - cx) * math.sin(th) + (ys - cy) * math.cos(th)
    return (across.abs() <= width) & (along.abs() <= half_len)


def paste_anomalies(
    images: Tensor,
    kinds: list[str] | tuple[str, ...] = KINDS,
    *,
    other: Tensor | None = None,
    anomalous_fraction: float = 0.75,
    match_intensity: bool = True,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Paste one anomaly into a fraction of `images` (N, 1, S, S) in [0, 1]: (images, masks (N, 1, S, S) bool).

    "texture" copies the same region of `other` (N, 1, S, S), another texture; "intensity" adds a smooth-edged
    elliptic blob of constant offset; "scratch" draws a 1-2 px line of constant value. With `match_intensity`
    the anomalies stay inside the normal image's intensity range, so that a per-pixel intensity test alone
    cannot find them: the pasted texture is rescaled to the image's mean and standard deviation, blobs shift by
    +-(0.15..0.3) in a random direction, scratches take the image's 90th-percentile value (the brightness of brick
    mortar). Without it: raw texture, blobs of +-(0.35..0.6) away from mid-grey, scratches 0.35 away from the
    mean. The first round(fraction * N) images get anomalies (kinds in turn), the rest stay normal; the mask is
    exactly the pasted region.
    """
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images: expected shape (N, 1, S, S), got {tuple(images.shape)}")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"anomaly_kinds: expected a non-empty list from {KINDS}, got {list(kinds)}")
    if "texture" in kinds and (other is None or other.shape != images.shape):
        raise ValueError(f"other: 'texture' anomalies need a second texture of shape {tuple(images.shape)}")
    if not 0.0 <= anomalous_fraction <= 1.0:
        raise ValueError(f"anomalous_fraction: expected a value in [0, 1], got {anomalous_fraction}")
    gen = torch.Generator().manual_seed(seed)
    n, _, s, _ = images.shape
    out, masks = images.clone(), torch.zeros(n, 1, s, s, dtype=torch.bool)
    for i in range(round(anomalous_fraction * n)):
        kind = kinds[i % len(kinds)]
        img = out[i, 0]
        mean, std = float(img.mean()), float(img.std())
        if kind == "texture":
            m = _ellipse(s, gen, 0.12, 0.28)
            patch = other[i, 0]
            if match_intensity:
                patch = (patch - patch.mean()) / patch.std().clamp(min=1e-6) * std + mean
            img[m] = patch[m].clamp(0.0, 1.0)
        elif kind == "intensity":
            m = _ellipse(s, gen, 0.1, 0.25)
            r = torch.rand(2, generator=gen)
            if match_intensity:
                sign, amp = (1.0 if float(r[0]) < 0.5 else -1.0), 0.15 + 0.15 * float(r[1])
            else:
                sign, amp = (1.0 if float(img[m].mean()) < 0.5 else -1.0), 0.35 + 0.25 * float(r[1])
            img[m] = (img[m] + sign * amp).clamp(0.0, 1.0)
        else:
            m = _scratch(s, gen)
            if match_intensity:
                level = float(torch.quantile(img, 0.9))
            else:
                level = mean + 0.35 if mean < 0.5 else mean - 0.35
            img[m] = level
        masks[i, 0] = m
    return out, masks


def anomaly_test_set(settings: AnomalyConfig, size: int) -> tuple[Tensor, Tensor]:
    """The bundled held-out set of the configured dataset: images (N, 1, S, S) in [0, 1] and masks (N, 1, S, S)."""
    normal = normal_images(settings, "test", size)
    other = None
    if "texture" in settings.anomaly_kinds:
        if settings.dataset == "textures":
            other = texture_crops(settings.other_texture, "test", normal.shape[0], size, settings.zoom, settings.seed)
        else:  # digits: the "other texture" is another digit image, flipped upside down
            other = normal.flip(-2).roll(1, dims=0)
    return paste_anomalies(
        normal,
        settings.anomaly_kinds,
        other=other,
        anomalous_fraction=settings.anomalous_fraction,
        match_intensity=settings.match_intensity,
        seed=settings.seed,
    )


def write_pairs(images: Tensor, masks: Tensor, image_dir: str | Path, mask_dir: str | Path) -> list[Path]:
    """Write images (N, C, H, W) in [0, 1] and masks (N, 1, H, W) as PNG pairs 0000.png, ... in two folders."""
    if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(
            f"masks: expected {images.shape[0]} masks of {tuple(images.shape[-2:])}, got {tuple(masks.shape)}"
        )
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (img, m) in enumerate(zip(images, masks, strict=True)):
        name = f"{i:04d}.png"
        tensor_to_pil(img).save(image_dir / name)
        tensor_to_pil(m.float()).save(mask_dir / name)
        paths.append(image_dir / name)
    return paths


def read_pairs(
    image_dir: str | Path, mask_dir: str | Path, channels: int = 1, size: int | None = None
) -> tuple[Tensor, Tensor, list[str]]:
    """Images (N, C, H, W) in [0, 1], masks (N, 1, H, W) bool and the file names, paired by name.

    Every image needs a mask of the same name and size (mask white = anomalous); all images share one size,
    which must equal `size` when given. Errors name the file and the sizes found.
    """
    images = {p.name: p for p in image_files(image_dir)}
    masks = {p.name: p for p in image_files(mask_dir)}
    missing = sorted(set(images) - set(masks))
    if missing:
        raise ValueError(f"mask_dir: no mask for image(s) {missing[:5]} (masks are matched by file name)")
    names = sorted(images)
    xs, ms = [], []
    loaded = read_images([images[n] for n in names], channels, str(image_dir))
    for name, img in zip(names, loaded, strict=True):
        mask = read_image(masks[name], 1, notes=False)
        if mask.shape[-2:] != img.shape[-2:]:
            raise ValueError(
                f"mask_dir: mask {name} is {tuple(mask.shape[-2:])}, expected the image's size {tuple(img.shape[-2:])}"
            )
        if xs and img.shape != xs[0].shape:
            raise ValueError(f"image_dir: {name} is {tuple(img.shape[-2:])}, expected {tuple(xs[0].shape[-2:])}")
        if size is not None and tuple(img.shape[-2:]) != (size, size):
            raise ValueError(f"image_dir: {name} is {tuple(img.shape[-2:])}, the model expects {size}x{size}")
        xs.append(img)
        ms.append(mask > 0.5)
    return torch.stack(xs), torch.stack(ms), names


def read_mvtec_test(
    class_dir: str | Path, channels: int, size: int | None = None
) -> tuple[Tensor, Tensor, list[str]]:
    """MVTec AD's test split of one class: images (N, C, S, S) in [0, 1], masks (N, 1, S, S) bool and each
    image's `<defect>/<name>`, resized to `size` when given (images with antialiasing, masks by nearest).

    `class_dir` holds `test/<defect>/` and `ground_truth/<defect>/<name>_mask.png`; `test/good/` images are
    normal (an empty mask). A defect image without its mask, or a mask of another size, is refused by name."""
    class_dir = Path(class_dir)
    test = class_dir / "test"
    if not test.is_dir():
        raise FileNotFoundError(f"{class_dir}: no test/ folder (expected an MVTec AD class folder, e.g. bottle/)")
    defects = sorted(d.name for d in test.iterdir() if d.is_dir())
    if not defects:
        raise ValueError(f"{test}: no defect folders (expected test/good/ and test/<defect>/)")
    xs, ms, names = [], [], []
    for defect in defects:
        for path in image_files(test / defect):
            img = read_image(path, channels, notes=False)
            if defect == "good":
                mask = torch.zeros(1, *img.shape[-2:], dtype=torch.bool)
            else:
                mask_path = class_dir / "ground_truth" / defect / f"{path.stem}_mask.png"
                if not mask_path.is_file():
                    raise FileNotFoundError(f"{mask_path}: no mask for test image {defect}/{path.name}")
                mask = read_image(mask_path, 1, notes=False) > 0.5
                if mask.shape[-2:] != img.shape[-2:]:
                    raise ValueError(
                        f"{mask_path}: mask is {tuple(mask.shape[-2:])}, the image {tuple(img.shape[-2:])}"
                    )
            if size is not None and tuple(img.shape[-2:]) != (size, size):
                img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True)[0].clamp(0, 1)
                mask = F.interpolate(mask[None].float(), size=(size, size), mode="nearest")[0] > 0.5
            if xs and img.shape != xs[0].shape:
                raise ValueError(f"{path}: {tuple(img.shape[-2:])}, expected {tuple(xs[0].shape[-2:])} (or pass size)")
            xs.append(img)
            ms.append(mask)
            names.append(f"{defect}/{path.name}")
    return torch.stack(xs), torch.stack(ms), names
