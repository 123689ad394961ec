"""Segmentation data: image/mask folder pairs and the bundled synthetic sets with exact masks.

Bundled (nothing is downloaded; everything is drawn from scikit-image's bundled images):
- "shapes": random ellipses and polygons filled with one scikit-image texture (brick / grass / gravel) and pasted on
  another, both crops rescaled to a random mean and contrast so that the two regions differ in texture more than in
  brightness, plus Gaussian pixel noise. The mask is the exact pixel set the shape was drawn on.
- "horse": scikit-image's horse silhouette (`skimage.data.horse`, False = horse) at a random scale, shift and flip,
  filled and backed with textures the same way.
- "mixed": both, 4 shapes for every horse.
Item i is drawn from its own generator seeded by (seed, i), so a set is the same on every machine and a larger set
extends a smaller one. `split_indices` splits indices into train / held-out by a seeded permutation.

User data: `load_mask_pairs(image_dir, mask_dir)` matches images and masks by file stem (PNG masks; white or 1 =
foreground). A missing mask, a size mismatch or a mask with values other than two levels raises an error naming the
file. `write_mask_pairs` writes a set in that layout (what `evaluate --image-dir --mask-dir` reads).

From a VisionConfig: `training_data(config)` (the bundled train split, or the [seg] folders) and
`held_out_data(config)` (the bundled held-out split); `check_pairs` validates images and masks.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..imaging import check_images, image_files, read_images

TEXTURES = ("brick", "grass", "gravel")
SOURCES = ("shapes", "horse", "mixed")


@cache
def _texture(name: str) -> np.ndarray:
    from skimage import data as skdata

    return getattr(skdata, name)().astype(np.float32) / 255.0  # (512, 512) in [0, 1]


@cache
def _horse() -> np.ndarray:
    from skimage import data as skdata

    return ~skdata.horse()  # (328, 400) bool, True = horse


def _texture_patch(rng: np.random.Generator, name: str, size: int, mean: float, contrast: float) -> np.ndarray:
    """A (size, size) patch: a random 3*size crop of the texture, 3x3 block-averaged, set to mean / std contrast."""
    tex = _texture(name)
    top, left = rng.integers(0, tex.shape[0] - 3 * size + 1, size=2)
    crop = tex[top : top + 3 * size, left : left + 3 * size].reshape(size, 3, size, 3).mean(axis=(1, 3))
    z = (crop - crop.mean()) / max(float(crop.std()), 1e-6)
    return mean + contrast * z


def _shape_mask(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A (size, size) bool mask of one ellipse, polygon or horse silhouette, at least 4% of the image."""
    from skimage.draw import ellipse, polygon
    from skimage.transform import resize

    mask = np.zeros((size, size), dtype=bool)
    if kind == "ellipse":
        r_a, r_b = rng.uniform(0.12, 0.32, size=2) * size
        cy, cx = rng.uniform(0.3, 0.7, size=2) * size
        rr, cc = ellipse(cy, cx, r_a, r_b, shape=mask.shape, rotation=rng.uniform(0, np.pi))
        mask[rr, cc] = True
    elif kind == "polygon":
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
        radii = rng.uniform(0.15, 0.38, size=n) * size
        cy, cx = rng.uniform(0.35, 0.65, size=2) * size
        rr, cc = polygon(cy + radii * np.sin(angles), cx + radii * np.cos(angles), shape=mask.shape)
        mask[rr, cc] = True
    elif kind == "horse":
        width = int(rng.integers(int(0.6 * size), size + 1))
        height = max(4, int(round(width * 328 / 400)))
        small = resize(_horse().astype(np.float32), (height, width), order=1, anti_aliasing=True) >= 0.5
        if rng.random() < 0.5:
            small = small[:, ::-1]
        top = int(rng.integers(0, size - height + 1))
        left = int(rng.integers(0, size - width + 1))
        mask[top : top + height, left : left + width] = small
    else:
        raise ValueError(f"kind: expected ellipse, polygon or horse, got {kind!r}")
    return mask


def synthetic_item(seed: int, index: int, size: int = 32, source: str = "mixed") -> tuple[np.ndarray, np.ndarray]:
    """Item `index` of a bundled set: (image (size, size) float32 in [0, 1], mask (size, size) bool), exact mask."""
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {SOURCES}, got {source!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    if source == "horse":
        kind = "horse"
    else:
        kinds = ("ellipse", "polygon") if source == "shapes" else ("ellipse", "polygon", "ellipse", "polygon", "horse")
        kind = kinds[int(rng.integers(0, len(kinds)))]
    for _ in range(20):  # redraw the rare shape that falls under 4% of the image
        mask = _shape_mask(rng, size, kind)
        if mask.mean() >= 0.04:
            break
    fg_tex, bg_tex = rng.choice(len(TEXTURES), size=2, replace=False)
    base = rng.uniform(0.35, 0.65)
    # brightness difference between the regions, of either sign: often too small for a global threshold
    gap = rng.choice((-1.0, 1.0)) * rng.uniform(0.03, 0.2)
    fg = _texture_patch(rng, TEXTURES[fg_tex], size, base + gap / 2, rng.uniform(0.08, 0.16))
    bg = _texture_patch(rng, TEXTURES[bg_tex], size, base - gap / 2, rng.uniform(0.08, 0.16))
    image = np.where(mask, fg, bg) + rng.normal(0.0, 0.04, size=(size, size))
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


def synthetic_set(n: int, size: int = 32, source: str = "mixed", seed: int = 0) -> tuple[Tensor, Tensor]:
    """n bundled items: images (n, 1, size, size) float in [0, 1] and masks (n, 1, size, size) float in {0, 1}."""
    if n < 1:
        raise ValueError(f"n: expected at least 1 item, got {n}")
    items = [synthetic_item(seed, i, size, source) for i in range(n)]
    images = torch.from_numpy(np.stack([im for im, _ in items]))[:, None]
    masks = torch.from_numpy(np.stack([m for _, m in items]).astype(np.float32))[:, None]
    return images, masks


def split_indices(n: int, n_test: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded permutation of range(n) cut into (train indices, held-out indices of length n_test)."""
    if not 0 < n_test < n:
        raise ValueError(f"n_test: expected 0 < n_test < n = {n}, got {n_test}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def bundled_split(
    n: int, n_test: int, size: int = 32, source: str = "mixed", seed: int = 0, split_seed: int = 0
) -> dict[str, tuple[Tensor, Tensor]]:
    """{"train": (images, masks), "test": (images, masks)} of a bundled set split by `split_seed`."""
    images, masks = synthetic_set(n, size, source, seed)
    tr, te = split_indices(n, n_test, split_seed)
    return {"train": (images[tr], masks[tr]), "test": (images[te], masks[te])}


def read_mask(path: str | Path, size: tuple[int, int] | None = None) -> Tensor:
    """A binary mask PNG -> (1, H, W) float in {0, 1} (the brighter of its two levels = foreground).

    Accepts mode "1" and single-level or two-level 8-bit images (0/255, 0/1, ...); RGB masks must be grey.
    `size` (H, W) is checked against the image the mask belongs to.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mask file")
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L") if im.mode not in ("1", "L") else im).astype(np.float32)
    levels = np.unique(arr)
    if levels.size > 2:
        shown = ", ".join(f"{v:g}" for v in levels[:6])
        raise ValueError(f"{path}: expected a binary mask (two levels), got {levels.size} levels ({shown}, ...)")
    fg = arr >= levels.max() if levels.size == 2 else np.full(arr.shape, bool(levels[0] > 0))
    if size is not None and fg.shape != tuple(size):
        raise ValueError(f"{path}: mask size {fg.shape} does not match its image size {tuple(size)}")
    return torch.from_numpy(fg.astype(np.float32))[None]


def load_mask_pairs(image_dir: str | Path, mask_dir: str | Path, channels: int = 1) -> tuple[Tensor, Tensor, list]:
    """Images and masks matched by file stem: (images (N, C, H, W) in [0, 1], masks (N, 1, H, W), stems).

    Every image needs a mask of the same stem and size; all pairs must share one size.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"mask_dir: {mask_dir}: no such folder (expected PNG masks named like the images)")
    masks_by_stem = {p.stem: p for p in image_files(mask_dir)}
    images, masks, stems = [], [], []
    paths = image_files(image_dir)
    for path in paths:
        if path.stem not in masks_by_stem:
            raise FileNotFoundError(f"mask_dir: no mask for image {path.name} (expected {mask_dir / path.stem}.png)")
    for path, img in zip(paths, read_images(paths, channels, str(image_dir)), strict=True):
        mask = read_mask(masks_by_stem[path.stem], tuple(img.shape[-2:]))
        if images and img.shape != images[0].shape:
            raise ValueError(f"{path}: size {tuple(img.shape[-2:])} differs from {tuple(images[0].shape[-2:])}")
        images.append(img)
        masks.append(mask)
        stems.append(path.stem)
    return torch.stack(images), torch.stack(masks), stems


def write_mask_pairs(images: Tensor, masks: Tensor, image_dir: str | Path, mask_dir: str | Path) -> None:
    """Write (N, C, H, W) images in [0, 1] and (N, 1, H, W) masks as image_dir/NNNN.png and mask_dir/NNNN.png."""
    from ..imaging import tensor_to_pil

    if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(f"images, masks: expected matching (N, H, W), got {tuple(images.shape)}, {tuple(masks.shape)}")
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    for i in range(images.shape[0]):
        tensor_to_pil(images[i]).save(image_dir / f"{i:04d}.png")
        Image.fromarray((masks[i, 0].numpy() >= 0.5).astype(np.uint8) * 255, "L").save(mask_dir / f"{i:04d}.png")


def check_pairs(images: Tensor, masks: Tensor, channels: int | None = None) -> None:
    """Validate images (N, C, H, W) in [0, 1] and masks (N, 1, H, W) with values in {0, 1}."""
    check_images(images, "images", channels=channels, low=0.0, high=1.0)
    if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[1] != 1:
        got = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        raise ValueError(f"masks: expected shape (N, 1, H, W), got {got}")
    if masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"masks: expected {images.shape[0]} masks of size {tuple(images.shape[-2:])} (one per image), "
            f"got shape {tuple(masks.shape)}"
        )
    if not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError("masks: expected binary values in {0, 1}, got other values")


def training_data(config) -> tuple[Tensor, Tensor]:
    """(images, masks) to train on: the bundled set's train split, or every pair of seg.image_dir / seg.mask_dir."""
    s = config.seg
    if s.source == "folder":
        if not s.image_dir or not s.mask_dir:
            raise ValueError("seg.image_dir, seg.mask_dir: expected two folders when seg.source = 'folder', got ''")
        images, masks, _ = load_mask_pairs(s.image_dir, s.mask_dir, config.data.channels)
        return images, masks
    split = bundled_split(s.n_images, s.n_test, config.data.image_size, s.source, s.data_seed, s.split_seed)
    return split["train"]


def held_out_data(config) -> tuple[Tensor, Tensor]:
    """The bundled set's held-out split (what `evaluate` scores when no folders are given)."""
    s = config.seg
    source = "mixed" if s.source == "folder" else s.source
    return bundled_split(s.n_images, s.n_test, config.data.image_size, source, s.data_seed, s.split_seed)["test"]
