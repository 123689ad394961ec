"""Training and evaluation images: bundled demo sets and the folders users have.

Bundled (nothing is downloaded):
- `load_digits_16`: scikit-learn's 1797 handwritten digits (8x8, 0..16), bilinearly upsampled to 16x16, 1 channel.
- `load_faces`: scikit-image `lfw_subset` faces (the first 100 of its 200 25x25 grayscale images);
  `load_lfw_nonfaces`: its other 100 images, 25x25 patches of the same photographs that are not faces.
- `load_photo_crops`: random crops of scikit-image's sample photographs (astronaut, coffee, chelsea, camera).
Every loader returns a float tensor (N, C, H, W) in [0, 1] and splits deterministically into train / test.

User data:
- `ImageFolder`: every PNG/JPEG in a folder, random crops of a fixed size (HR images for SR, images for a DDPM).
- `PairedFolders`: LR / HR folders matched by file name (evaluation of SR on pre-made pairs).

`random_crop_flip` is the batch augmentation `train` applies inside the loss (on torch's global RNG, which core's
checkpoints save, so a resumed run continues exactly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .cifar10 import cifar10_binary, is_cifar10_binary
from .imaging import check_scale, image_files, read_image, read_images

SPLITS = ("train", "test", "all")
DIGITS_TEST = 300  # the last 300 digits are held out
FACES_TEST = 20  # the last 20 of lfw_subset's 100 faces are held out


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")


def load_digits_16(split: str = "train") -> Tensor:
    """scikit-learn digits as (N, 1, 16, 16) float in [0, 1]: 8x8 (0..16) / 16, bilinear 2x upsampling.

    split: "train" (first 1497), "test" (last 300) or "all" (1797).
    """
    _check_split(split)
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    if split == "train":
        return x[:-DIGITS_TEST].contiguous()
    if split == "test":
        return x[-DIGITS_TEST:].contiguous()
    return x


def load_faces(split: str = "train") -> Tensor:
    """scikit-image lfw_subset faces as (N, 1, 25, 25) float in [0, 1]; "train" = 80, "test" = 20, "all" = 100."""
    _check_split(split)
    from skimage.data import lfw_subset

    faces = torch.from_numpy(lfw_subset()[:100].astype(np.float32))[:, None]  # first 100 are faces
    if split == "train":
        return faces[:-FACES_TEST].contiguous()
    if split == "test":
        return faces[-FACES_TEST:].contiguous()
    return faces


def load_lfw_nonfaces() -> Tensor:
    """scikit-image lfw_subset's 100 non-face patches (its images 100..199) as (100, 1, 25, 25) float in [0, 1].

    They come from the same photographs as the faces, so they add image statistics but no held-out face; the
    "lfw" data source trains on them beside the 80 training faces.
    """
    from skimage.data import lfw_subset

    return torch.from_numpy(lfw_subset()[100:].astype(np.float32))[:, None].contiguous()


def center_crop(x: Tensor, size: int) -> Tensor:
    """Central size x size crop of (..., H, W)."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"size: crop {size} is larger than the image {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def load_photo_crops(split: str = "train", size: int = 32, n: int = 256, channels: int = 3, seed: int = 0) -> Tensor:
    """`n` random size x size crops of scikit-image's sample photographs, (n, C, size, size) in [0, 1].

    Train crops come from the left 3/4 of each photograph and test crops from the right 1/4, so they never overlap.
    Photographs: astronaut, coffee, chelsea (RGB) and camera (grayscale, repeated to RGB when channels = 3).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels: expected 1 or 3, got {channels}")
    from skimage import data as skdata

    from .imaging import image_to_tensor

    photos = [
        image_to_tensor(getattr(skdata, name)(), channels) for name in ("astronaut", "coffee", "chelsea", "camera")
    ]
    gen = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
    crops = []
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[-2:]
        cut = (3 * w) // 4
        lo, hi = (0, cut - size) if split == "train" else (cut, w - size)
        top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        left = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        crops.append(img[:, top : top + size, left : left + size])
    return torch.stack(crops)


def random_crop_flip(x: Tensor, size: int, hflip: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample random size x size crops of (B, C, H, W), each flipped left-right with probability 1/2."""
    b, _, h, w = x.shape
    if size > h or size > w:
        raise ValueError(f"size: crop {size} is larger than the images {h}x{w}")
    if size == h and size == w:
        out = x
    else:
        tops = torch.randint(0, h - size + 1, (b,), generator=generator).tolist()
        lefts = torch.randint(0, w - size + 1, (b,), generator=generator).tolist()
        out = torch.stack(
            [x[i, :, t : t + size, l : l + size] for i, (t, l) in enumerate(zip(tops, lefts, strict=True))]
        )
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        out = torch.where(flip[:, None, None, None].to(out.device), out.flip(-1), out)
    return out


class ImageFolder(Dataset):
    """Every image file in `folder` as (C, size, size) in [-1, 1]: a random crop per access (center crop if
    `random_crop` is False), or with `resize` the whole image resized (antialiased) so its shorter side is `size`
    first (MVTec AD, ImageNet-style folders). Images smaller than `size` raise a ValueError naming the file."""

    def __init__(
        self, folder: str | Path, size: int, channels: int = 3, random_crop: bool = True, resize: bool = False
    ) -> None:
        self.files = image_files(folder)
        self.size = int(size)
        self.channels = int(channels)
        self.random_crop = random_crop
        self.resize = bool(resize)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        img = read_image(self.files[i], self.channels, notes=False)  # (C, H, W) in [0, 1]
        h, w = img.shape[-2:]
        if self.resize and min(h, w) != self.size:
            h, w = (self.size, max(self.size, round(w * self.size / h))) if h <= w else (
                max(self.size, round(h * self.size / w)), self.size)  # fmt: skip
            img = F.interpolate(img[None], size=(h, w), mode="bilinear", antialias=True)[0].clamp(0, 1)
        if h < self.size or w < self.size:
            raise ValueError(f"{self.files[i]}: image {h}x{w} is smaller than the crop size {self.size}")
        if self.random_crop:
            top = int(torch.randint(0, h - self.size + 1, (1,)))
            left = int(torch.randint(0, w - self.size + 1, (1,)))
            img = img[:, top : top + self.size, left : left + self.size]
        else:
            img = center_crop(img, self.size)
        return img * 2.0 - 1.0


class PairedFolders(Dataset):
    """LR / HR image pairs matched by file name in two folders; item i = (lr (C, h, w), hr (C, H, W)) in [0, 1].

    Every HR side must equal `scale` times the LR side; a missing partner or a wrong size raises ValueError.
    """

    def __init__(self, lr_dir: str | Path, hr_dir: str | Path, scale: int, channels: int = 3) -> None:
        hr = {p.name: p for p in image_files(hr_dir)}
        lr = {p.name: p for p in image_files(lr_dir)}
        missing = sorted(set(hr) ^ set(lr))
        if missing:
            raise ValueError(f"lr_dir, hr_dir: files without a partner of the same name: {missing[:5]}")
        self.names = sorted(hr)
        self.hr, self.lr = hr, lr
        self.scale, self.channels = int(scale), int(channels)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        name = self.names[i]
        hr = read_image(self.hr[name], self.channels)
        lr = read_image(self.lr[name], self.channels)
        check_scale(tuple(hr.shape[-2:]), self.scale, f"HR image {name}")
        expected = (hr.shape[-2] // self.scale, hr.shape[-1] // self.scale)
        if tuple(lr.shape[-2:]) != expected:
            raise ValueError(
                f"LR image {name}: expected size {expected} (HR / {self.scale}), got {tuple(lr.shape[-2:])}"
            )
        return lr, hr


def load_folder_images(folder: str | Path, channels: int, size: int | None = None) -> Tensor:
    """All images of a folder as one (N, C, H, W) tensor in [0, 1] (center-cropped to `size` when given).

    Without `size` every image must have the same size (a ValueError names the first that differs). A folder
    holding CIFAR-10's binary version (cifar-10-batches-bin) gives its test batch, the 10,000 images of the
    paper's test split.
    """
    if is_cifar10_binary(folder):
        x = cifar10_binary(folder, "test", channels=channels, name=str(folder))[0]
        return x if size is None else center_crop(x, size)
    images = []
    paths = image_files(folder)
    for path, img in zip(paths, read_images(paths, channels, str(folder)), strict=True):
        if size is not None:
            img = center_crop(img, size)
        if images and img.shape != images[0].shape:
            raise ValueError(
                f"{path}: size {tuple(img.shape[-2:])} differs from {tuple(images[0].shape[-2:])}; center-crop them "
                "to one size (size=N; --crop N on the command line)"
            )
        images.append(img)
    return torch.stack(images)


def training_images(
    source: str, channels: int, size: int, folder: str = "", photo_crops: int = 512, resize: bool = False
) -> Tensor | Dataset:
    """The training set named by a config's [data] section: a [-1, 1] tensor (N, C, H, W) or an ImageFolder."""
    if source == "digits":
        x = load_digits_16("train")
    elif source == "faces":
        x = load_faces("train")
    elif source == "lfw":
        x = torch.cat([load_faces("train"), load_lfw_nonfaces()])
    elif source == "photos":
        return load_photo_crops("train", size, photo_crops, channels) * 2.0 - 1.0
    elif source == "folder":
        if not folder:
            raise ValueError("data.root: expected a folder of images when data.source = 'folder', got ''")
        return ImageFolder(folder, size, channels, resize=resize)
    elif source == "cifar10":
        if not folder:
            raise ValueError("data.root: expected the folder holding cifar-10-batches-bin (source cifar10)")
        x = cifar10_binary(folder, "train", size=size, channels=channels, name="data.root")[0]
    else:
        raise ValueError(f"data.source: expected digits, faces, lfw, photos, folder or cifar10, got {source!r}")
    if x.shape[1] != channels:
        raise ValueError(f"data.channels: the {source} images have {x.shape[1]} channel(s), got {channels}")
    return x * 2.0 - 1.0
