"""Labelled images in [0, 1] for purification: bundled digits, image folders and torchvision datasets on disk.

Every loader returns `(images, labels)`: images (N, C, H, W) float32 in [0, 1] (the range torchattacks attacks
in) and labels (N,) int64 class indices. Nothing is downloaded.

- "digits": scikit-learn's bundled 8x8 digits (1797 images, 10 classes, 17 grey levels), divided by 16 and
  upsampled bilinearly to `size` x `size`; the last 300 are the held-out test split.
- a folder path: torchvision ImageFolder layout (one sub-folder per class), resized to `size`, `channels` 1 or 3.
- "cifar10" (with `root`), "cifar10:ROOT", or a folder holding `cifar-10-batches-bin`: CIFAR-10's binary version,
  read byte by byte (`cifar10.py`); the test split is test_batch.bin, the train split data_batch_1..5.bin.
- "torchvision:NAME:ROOT": a torchvision dataset class (MNIST, FashionMNIST, ...) already under ROOT. Not CIFAR-10
  or CIFAR-100: torchvision reads their pickled python version, which is never unpickled here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from omnidiffusion.core.checks import positive_int
from omnidiffusion.vision.cifar10 import cifar10_binary, is_cifar10_binary, is_cifar10_python
from omnidiffusion.vision.imaging import decode_image

Note = Callable[[str], None]  # receives a one-line note when images are converted (resized, channels changed)

DIGITS_TEST = 300  # the last 300 digits are held out
PICKLED_TORCHVISION = ("CIFAR10", "CIFAR100")  # torchvision reads these with pickle.load


def digits_images(size: int = 16) -> tuple[Tensor, Tensor]:
    """All 1797 scikit-learn digits as (N, 1, size, size) in [0, 1] and (N,) labels (pixel / 16, bilinear)."""
    from sklearn.datasets import load_digits

    size = positive_int(size, "size", minimum=8)
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0), torch.from_numpy(d.target.astype(np.int64))


def digits_split(split: str = "train", size: int = 16) -> tuple[Tensor, Tensor]:
    """The fixed digits split: "train" (the first 1497), "test" (the last 300, held out) or "all" (1797).

    The same split as `omnidiffusion.vision.data.load_digits_16`, so a digits DDPM trained by the vision app on
    its train split never saw the held-out test digits.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    x, y = digits_images(size)
    if split == "train":
        return x[:-DIGITS_TEST].contiguous(), y[:-DIGITS_TEST].contiguous()
    if split == "test":
        return x[-DIGITS_TEST:].contiguous(), y[-DIGITS_TEST:].contiguous()
    return x, y


def _stack(dataset, what: str) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for img, label in dataset:
        xs.append(img)
        ys.append(int(label))
    if not xs:
        raise ValueError(f"{what}: holds no images")
    return torch.stack(xs).float().clamp(0.0, 1.0), torch.tensor(ys, dtype=torch.int64)


def _check_channels(channels: int, name: str = "channels") -> int:
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"{name}: expected 1 (grey) or 3 (RGB), got {channels!r}")
    return int(channels)


def _transform(size: int, channels: int):
    from torchvision import transforms

    _check_channels(channels)
    steps = [transforms.Grayscale(1) if channels == 1 else transforms.Lambda(lambda im: im.convert("RGB"))]
    steps += [transforms.Resize((size, size)), transforms.ToTensor()]
    return transforms.Compose(steps)


def image_folder(
    path: str | Path, size: int, channels: int = 3, *, name: str = "data", note: Note | None = None
) -> tuple[Tensor, Tensor]:
    """An ImageFolder tree (root/<class>/<image>) as tensors; labels follow sorted class names.

    Every image is converted to `channels` and resized to `size` x `size`; `note` (if given) hears once when any
    image had another size or channel count. A file that is not a readable image raises ValueError naming it.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets import ImageFolder

    size, channels = positive_int(size, "size"), _check_channels(channels)
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{name}: {path} is not a directory (expected root/<class>/<image files>)")
    try:
        samples = ImageFolder(str(path)).samples  # [(file, class index)], classes sorted by name
    except (FileNotFoundError, RuntimeError) as e:
        raise FileNotFoundError(f"{name}: {path}: no readable images in class sub-folders ({e})") from None
    from torchvision.transforms.functional import resize

    xs, ys, seen = [], [], set()
    for file, label in samples:
        try:
            with Image.open(file) as im:
                im.load()
                seen.add((im.size, len(im.getbands())))
                # vision's one decoder: 16-bit kept (/65535), alpha dropped, ITU-R 601 grey
                x, _ = decode_image(im, channels, str(file))
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{name}: {file}: not a readable image file (expected PNG/JPEG/...): {e}") from None
        if tuple(x.shape[-2:]) != (size, size):
            x = resize(x, [size, size], antialias=True)
        xs.append(x)
        ys.append(label)
    other = sorted({f"{w}x{h}, {c} channel(s)" for (w, h), c in seen if (w, h) != (size, size) or c != channels})
    if other and note is not None:
        note(
            f"{name}: images of {'; '.join(other[:3])}{' ...' if len(other) > 3 else ''} converted to "
            f"{size}x{size}, {channels} channel(s)"
        )
    return torch.stack(xs).float().clamp(0.0, 1.0), torch.tensor(ys, dtype=torch.int64)


def torchvision_dataset(name: str, root: str | Path, size: int, channels: int, train: bool = False):
    """A torchvision dataset class already on disk under `root` (never downloaded)."""
    if name in PICKLED_TORCHVISION:
        raise ValueError(
            f"data: torchvision's {name} unpickles the python version of the dataset, which is never done here; "
            f"use the binary version: data.source = 'cifar10' with data.root = DIR (cifar-10-batches-bin)"
            if name == "CIFAR10"
            else f"data: torchvision's {name} unpickles its files, which is never done here; convert it to an "
            "ImageFolder tree (root/<class>/<image>) and pass the folder"
        )
    import torchvision.datasets as tvd

    cls = getattr(tvd, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"data: torchvision.datasets has no dataset {name!r}")
    try:
        ds = cls(str(root), train=train, download=False, transform=_transform(size, channels))
    except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True ..."
        raise FileNotFoundError(f"data: {name} not found under {root} (downloads are disabled): {e}") from None
    return _stack(ds, f"data {name}")


def load_images(
    spec: str,
    *,
    split: str = "test",
    size: int = 16,
    channels: int = 1,
    name: str = "data",
    note: Note | None = None,
    root: str | Path | None = None,
    root_name: str = "data.root",
) -> tuple[Tensor, Tensor]:
    """Resolve a data spec: "digits", "cifar10" (under `root`), "cifar10:ROOT", "torchvision:NAME:ROOT" or a folder
    (CIFAR-10 binary when it holds the .bin files, else ImageFolder); see the module docstring.

    Images come back with `channels` (the grey digits are repeated to 3 for channels=3) at `size` x `size`;
    `name` (`root_name` for `root`) is the argument named in errors, `note` hears about conversions the caller did
    not ask for explicitly.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(
            f"{name}: expected 'digits', 'cifar10', 'cifar10:ROOT', 'torchvision:NAME:ROOT' or a folder path, "
            f"got {spec!r}"
        )
    size, channels = positive_int(size, "size"), _check_channels(channels)
    if spec == "cifar10":
        if root is None or root == "":
            raise ValueError(
                f"{root_name}: expected the folder holding cifar-10-batches-bin (--set {root_name}=DIR) for "
                f"{name} = 'cifar10', got none"
            )
        return cifar10_binary(root, split, size=size, channels=channels, name=root_name, note=note)
    if spec.startswith("cifar10:"):
        folder = spec.split(":", 1)[1]
        if not folder:
            raise ValueError(
                f"{name}: expected 'cifar10:ROOT' with the folder holding cifar-10-batches-bin, got {spec!r}"
            )
        return cifar10_binary(folder, split, size=size, channels=channels, name=name, note=note)
    if spec == "digits":
        x, y = digits_split(split, size)
        if channels == 3:
            if note is not None:
                note(f"{name}: the digits are grey; repeated to 3 channels")
            x = x.expand(-1, 3, -1, -1).contiguous()  # (N, 3, size, size)
        return x, y
    if spec.startswith("torchvision:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ValueError(f"{name}: expected 'torchvision:NAME:ROOT', got {spec!r}")
        return torchvision_dataset(parts[1], parts[2], size, channels, train=split == "train")
    if is_cifar10_binary(spec) or is_cifar10_python(spec):  # the python version is refused, naming the fix
        return cifar10_binary(spec, split, size=size, channels=channels, name=name, note=note)
    return image_folder(spec, size, channels, name=name, note=note)


def check_labelled(images: Tensor, labels: Tensor) -> None:
    """Raise ValueError unless images (N, C, H, W) in [0, 1] and labels (N,) integer class indices match."""
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images: expected a (N, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"labels: expected a (N,) integer tensor, got {getattr(labels, 'shape', type(labels))}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images, labels: sizes differ ({images.shape[0]} images, {labels.shape[0]} labels)")
    if images.shape[0] == 0:
        raise ValueError("images: expected at least one image, got an empty batch")
    if labels.min().item() < 0:
        raise ValueError(f"labels: expected class indices >= 0, got {labels.min().item()}")
    lo, hi = images.min().item(), images.max().item()
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(f"images: expected values in [0, 1], got range [{lo:.6g}, {hi:.6g}]")


__all__ = [
    "check_labelled",
    "digits_images",
    "digits_split",
    "image_folder",
    "load_images",
    "torchvision_dataset",
]
