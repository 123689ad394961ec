"""PurificationPipeline: load a trained diffusion model (and optionally a classifier), purify and classify images.

    pipe = PurificationPipeline.from_pretrained("runs/purification/digits")   # a `train` run: its run config,
                                                                               # diffusion/ and classifier/
    config = load_purification_config("cifar10-paper", ["classifier.weights=wrn-28-10.safetensors"])
    pipe = PurificationPipeline.from_pretrained("ddpm-cifar10-32", config=config)  # a diffusers folder (or a bare
                                                                               # ImageDDPM folder): no run config
    clean = pipe.purify(pil_image)               # PIL in, PIL out; numpy and torch work the same way
    labels = pipe.classify(batch)                # (N,) numpy int64 from the defended classifier
    purify_to_folder(pipe, "digits", "purified", n=8)   # what `omnidiffusion-purification purify` runs

The purifier follows the config's `[sampler]` (t_star, method, steps, grid, seed, batch_size, checkpointing): the
run's stored config, or `config=` (the CLI passes the stored one with its --set overrides applied).

Accepted images: a PIL image or a list of them; numpy (H, W), (H, W, C) or (N, H, W, C), uint8 (0..255) or float
in [0, 1]; torch (C, H, W) or (N, C, H, W) float in [0, 1]. Outputs come back in the type and layout given.
Images are resized (and converted to the model's channels) only when they come as PIL images; numpy and torch
images of another size or channel count, values outside [0, 1] or NaN raise ValueError naming `images`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from omnidiffusion.core import DenoiserBase
from omnidiffusion.core.checks import positive_int, resolve_device
from omnidiffusion.core.interop import from_diffusers, is_diffusers_folder
from omnidiffusion.core.io import CONFIG_NAME, has_run_config, load_pretrained, open_pretrained
from omnidiffusion.vision import ImageDDPM

from .classifier import build_classifier
from .data import Note, load_images
from .diffpure import DiffPure, check_unit_range
from .purified import PurifiedClassifier, check_channels_agree
from .settings import DataConfig, PurificationConfig
from .wideresnet import load_classifier_weights


def _load(directory: str | Path, what: str) -> nn.Module:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{what}: {directory} is not a directory (expected a save_pretrained directory)")
    return load_pretrained(directory)


def load_denoiser(directory: str | Path, *, name: str = "diffusion") -> DenoiserBase:
    """The core Denoiser of a diffusion model folder, told apart by its files (on CPU, x0 not clipped).

    - ours (`save_pretrained`: config.json with a "class" entry + model.safetensors), e.g. a vision ImageDDPM:
      its `.denoiser(clip=False)`;
    - a diffusers folder (model_index.json + unet/ + scheduler/, or a bare UNet folder with a scheduler config):
      `omnidiffusion.core.interop.from_diffusers(directory, clip_sample=False)`, whose DiscreteVP is diffusers'
      alpha_bar table (needs the optional dependency diffusers).
    DiffPure solves the reverse SDE from the score, so x0_hat is not clipped in either case.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{name}: {directory} is not a directory (expected a save_pretrained directory or a diffusers folder)"
        )
    if is_diffusers_folder(directory):
        try:
            return from_diffusers(directory, clip_sample=False)
        except ImportError:
            raise ValueError(
                f"{name}: {directory} is a diffusers folder; reading it needs the optional dependency diffusers "
                "(pip install 'omnidiffusion-core[diffusers]')"
            ) from None
        except (FileNotFoundError, ValueError) as e:  # a folder that exists but lacks a part: bad input, named
            raise ValueError(f"{name}: {directory} (a diffusers folder): {_strip_path(e)}") from None
    model = _load(directory, name)
    make = getattr(model, "denoiser", None)
    if isinstance(model, DenoiserBase):
        return model
    if not callable(make):
        raise ValueError(f"{name}: {directory} holds a {type(model).__name__}, which has no .denoiser()")
    return make(clip=False) if "clip" in inspect.signature(make).parameters else make()


def _strip_path(e: Exception) -> str:
    """from_diffusers' message without its leading "path: " (the folder is named by the caller)."""
    text = str(e)
    return text[len("path: ") :] if text.startswith("path: ") else text


def load_classifier(
    classifier: str | Path | nn.Module,
    *,
    arch: str = "wrn-28-10",
    num_classes: int = 10,
    in_channels: int = 3,
    width: int = 16,
    name: str = "classifier",
) -> nn.Module:
    """A classifier from a `save_pretrained` directory, or `arch` (see `build_classifier`) with a weight file.

    A weight file is .safetensors, or a .pt/.pth state dict read with torch.load(weights_only=True) (never
    unpickled); RobustBench / TRADES WideResNet names load into "wrn-D-K" unchanged. An nn.Module is returned as is.
    """
    if isinstance(classifier, nn.Module):
        net = classifier
    elif isinstance(classifier, (str, Path)) and Path(classifier).is_file():
        net = load_classifier_weights(build_classifier(arch, num_classes, in_channels, width), classifier, name)
    elif isinstance(classifier, (str, Path)) and is_diffusers_folder(classifier):
        raise ValueError(
            f"{name}: {classifier} is a diffusers folder (a diffusion model); expected a classifier directory "
            "(train-classifier output) or a weight file"
        )
    elif isinstance(classifier, (str, Path)):
        directory = Path(classifier)
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{name}: {directory}: no such file or directory (expected a save_pretrained directory or a weight "
                "file: .safetensors, .pt, .pth)"
            )
        net = load_pretrained(directory)
    else:
        raise ValueError(
            f"{name}: expected a directory, a weight file or an nn.Module, got {type(classifier).__name__}"
        )
    if callable(getattr(net, "denoiser", None)) or isinstance(net, DenoiserBase):
        raise ValueError(
            f"{name}: {classifier} holds a {type(net).__name__}, a diffusion model; expected a classifier "
            "directory (train-classifier output)"
        )
    return net.eval()


def is_run_directory(directory: str | Path) -> bool:
    """Whether `directory` is a run `omnidiffusion-purification train` wrote (run_config.json and diffusion/; runs
    of older versions lack the run config), rather than a diffusion model folder (config.json of save_pretrained,
    or a diffusers folder)."""
    directory = Path(directory)
    model_folder = (directory / CONFIG_NAME).is_file() or is_diffusers_folder(directory)
    run = has_run_config(directory) or (directory / "diffusion" / CONFIG_NAME).is_file()
    return run and not model_folder


class PurificationPipeline:
    """DiffPure around a pretrained diffusion model, plus an optional classifier behind it."""

    def __init__(
        self,
        purifier: DiffPure,
        classifier: nn.Module | None = None,
        device: str | torch.device = "cpu",
        *,
        config: PurificationConfig | None = None,
    ) -> None:
        if not isinstance(purifier, DiffPure):
            raise ValueError(f"purifier: expected a DiffPure, got {type(purifier).__name__}")
        if classifier is not None:
            if not isinstance(classifier, nn.Module):
                raise ValueError(f"classifier: expected an nn.Module or None, got {type(classifier).__name__}")
            if callable(getattr(classifier, "denoiser", None)):
                raise ValueError(
                    f"classifier: got a {type(classifier).__name__}, a diffusion model; expected an image "
                    "classifier (train-classifier output)"
                )
            check_channels_agree(purifier, classifier)
        self.device = resolve_device(device)
        self.purifier = purifier.to(self.device).eval()
        self.classifier = None if classifier is None else classifier.to(self.device).eval()
        self.channels, self.image_size = purifier.image_shape
        self.config = config  # the run config it was loaded with (from_pretrained), else None
        self.source: dict | None = None  # {"path", "format"} of the diffusion model (from_pretrained)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        device: str | torch.device = "cpu",
        config: PurificationConfig | None = None,
        classifier: str | Path | nn.Module | Literal[False] | None = None,
    ) -> PurificationPipeline:
        """DiffPure around the diffusion model in `directory`, plus a classifier behind it.

        directory: a `train` run (run_config.json, diffusion/ holding a vision ImageDDPM, classifier/), read through
        `core.io.open_pretrained`; or a diffusion model folder, ours (save_pretrained: config.json +
        model.safetensors, e.g. a vision ImageDDPM) or a diffusers folder (`load_denoiser`), which bring no
        purification config. config: the settings to use (purifier: `[sampler]`; classifier: `[classifier]`);
        default the run's stored config, else PurificationConfig(). classifier: None = classifier.weights when set,
        else the run's classifier/ when there is one, else no classifier; False = no classifier; a directory,
        weight file or module = that one (see `load_classifier`).
        """
        directory = Path(directory)
        if is_run_directory(directory):
            pre = open_pretrained(
                directory,
                ImageDDPM,
                config_cls=PurificationConfig if has_run_config(directory) else None,
                device=device,
                subfolder="diffusion",
                what="a run written by `omnidiffusion-purification train`",
            )
            den = pre.model.denoiser(clip=False)  # DiffPure solves the reverse SDE from the score: x0 not clipped
            config = (pre.config or PurificationConfig()) if config is None else config
            own, fmt, device = directory / "classifier", "omnidiffusion", pre.device
        else:
            device = resolve_device(device)
            den = load_denoiser(directory, name="directory")
            config = PurificationConfig() if config is None else config
            own, fmt = None, "diffusers" if is_diffusers_folder(directory) else "omnidiffusion"
        if not isinstance(config, PurificationConfig):
            raise ValueError(f"config: expected a PurificationConfig, got {type(config).__name__}")
        s, c = config.sampler, config.classifier
        purifier = DiffPure(
            den,
            t_star=s.t_star,
            method=s.method,
            steps=s.steps,
            grid=s.grid,
            checkpointing=s.checkpointing,
            seed=s.seed,
        )
        name = "classifier"
        if classifier is None:
            if c.weights:
                classifier, name = c.weights, "classifier.weights"
            elif own is not None and own.is_dir():
                classifier = own
        net = None
        if classifier is not None and classifier is not False:
            net = load_classifier(
                classifier,
                arch=c.arch,
                num_classes=c.num_classes,
                in_channels=purifier.image_shape[0] or 3,
                width=c.width,
                name=name,
            )
        pipe = cls(purifier, net, device, config=config)
        pipe.source = {"path": str(directory), "format": fmt}
        return pipe

    # ---- conversions
    def _to_tensor(self, images) -> tuple[Tensor, object]:
        """(N, C, H, W) float in [0, 1] and how to convert back; ValueError naming `images` for what does not fit."""
        x, kind = self._convert(images)
        check_unit_range(x, "images")
        if x.shape[0] == 0:
            raise ValueError(f"images: expected at least one image, got shape {tuple(x.shape)}")
        want = (self.channels, self.image_size, self.image_size)
        if any(w is not None and w != g for w, g in zip(want, x.shape[1:], strict=True)):
            c, h = (self.channels or "C"), (self.image_size or "H")
            raise ValueError(
                f"images: expected {c} channel(s) of {h}x{h} pixels for this diffusion model, got (N, C, H, W) = "
                f"{tuple(x.shape)}; resize them first, or pass PIL images, which are converted"
            )
        return x, kind

    def _convert(self, images) -> tuple[Tensor, object]:
        if isinstance(images, Image.Image) or (
            isinstance(images, list) and images and all(isinstance(i, Image.Image) for i in images)
        ):
            ims = [images] if isinstance(images, Image.Image) else images
            mode = "L" if self.channels == 1 else "RGB"
            size = self.image_size
            arrs = []
            for im in ims:
                im = im.convert(mode)
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                a = np.asarray(im, dtype=np.float32) / 255.0
                arrs.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
            kind = ("pil", isinstance(images, Image.Image), mode)
            return torch.from_numpy(np.stack(arrs)), kind
        if isinstance(images, np.ndarray):
            a = images
            x = a.astype(np.float32) / (255.0 if np.issubdtype(a.dtype, np.integer) else 1.0)
            if x.ndim == 2:  # (H, W)
                layout, x = "hw", x[None, None]
            elif x.ndim == 3 and x.shape[-1] in (1, 3):  # (H, W, C)
                layout, x = "hwc", x.transpose(2, 0, 1)[None]
            elif x.ndim == 3:  # (N, H, W) grey
                layout, x = "nhw", x[:, None]
            elif x.ndim == 4:  # (N, H, W, C)
                layout, x = "nhwc", x.transpose(0, 3, 1, 2)
            else:
                raise ValueError(f"images: expected a numpy array (H, W), (H, W, C) or (N, H, W, C), got {a.shape}")
            return torch.from_numpy(np.ascontiguousarray(x)), ("numpy", layout, a.dtype)
        if isinstance(images, Tensor):
            if images.ndim == 3:
                return images[None], ("torch", 3)
            if images.ndim == 4:
                return images, ("torch", 4)
            raise ValueError(f"images: expected a tensor (C, H, W) or (N, C, H, W), got {tuple(images.shape)}")
        raise ValueError(
            f"images: expected a PIL image, a list of them, a numpy array or a tensor, got {type(images).__name__}"
        )

    def _from_tensor(self, x: Tensor, kind: tuple):
        if kind[0] == "torch":
            return x if kind[1] == 4 else x[0]
        if kind[0] == "numpy":
            _, layout, dtype = kind
            a = x.detach().cpu().numpy().transpose(0, 2, 3, 1)  # (N, H, W, C)
            a = np.round(a * 255.0).astype(dtype) if np.issubdtype(dtype, np.integer) else a.astype(dtype)
            return {"hw": lambda: a[0, :, :, 0], "hwc": lambda: a[0], "nhw": lambda: a[..., 0], "nhwc": lambda: a}[
                layout
            ]()
        _, single, mode = kind
        a = np.round(x.detach().cpu().numpy() * 255.0).astype(np.uint8)
        ims = [Image.fromarray(i[0] if mode == "L" else i.transpose(1, 2, 0), mode) for i in a]
        return ims[0] if single else ims

    # ---- the verbs
    @torch.no_grad()
    def purify(self, images, batch_size: int | None = None):
        """Purified images, in the type and layout given (see the module docstring); `batch_size` images per
        purifier call (default sampler.batch_size of the config, 128 without one)."""
        if batch_size is None:
            batch_size = self.config.sampler.batch_size if self.config is not None else 128
        batch_size = positive_int(batch_size, "batch_size")
        x, kind = self._to_tensor(images)
        out = torch.cat(
            [self.purifier(x[i : i + batch_size].to(self.device)).cpu() for i in range(0, len(x), batch_size)]
        )
        return self._from_tensor(out.to(x.dtype) if x.is_floating_point() else out, kind)

    @torch.no_grad()
    def classify(self, images, votes: int = 1, batch_size: int = 128) -> np.ndarray:
        """Labels (N,) of the defended classifier: majority vote over `votes` purifications."""
        if self.classifier is None:
            raise ValueError(
                "classifier: this pipeline was loaded without a classifier (set classifier.weights, or pass "
                "classifier=DIR to from_pretrained)"
            )
        votes, batch_size = positive_int(votes, "votes"), positive_int(batch_size, "batch_size")
        x, _ = self._to_tensor(images)
        model = PurifiedClassifier(self.purifier, self.classifier).eval()
        out = [model.predict(x[i : i + batch_size].to(self.device), votes).cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy()


def loading_shape(pipe: PurificationPipeline, data: DataConfig, note: Note | None = None) -> tuple[int, int]:
    """(size, channels) to load images at for `pipe`: its diffusion model's, falling back on data.image_size and
    data.channels where the model records none; `note` hears when data.* asked for another shape."""
    size, channels = pipe.image_size or data.image_size, pipe.channels or data.channels
    if (size, channels) != (data.image_size, data.channels) and note is not None:
        note(
            f"data.image_size={data.image_size}, data.channels={data.channels} differ from the diffusion model's "
            f"{size}x{size}, {channels} channel(s); images are loaded at the model's"
        )
    return size, channels


def read_image(path: str | Path, size: int, channels: int, *, name: str = "source", note: Note | None = None):
    """One image file as a PIL image; `note` hears when its size or channels differ from (size, channels)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{name}: {path}: not a readable image file (expected PNG/JPEG/...): {e}") from None
    bands = len(im.getbands())
    if (im.size != (size, size) or bands != channels) and note is not None:
        note(
            f"{name}: {im.size[0]}x{im.size[1]}, {bands} channel(s) converted to the diffusion model's "
            f"{size}x{size}, {channels} channel(s)"
        )
    return im


def purify_to_folder(
    pipe: PurificationPipeline,
    source: str,
    out_dir: str | Path,
    *,
    data: DataConfig | None = None,
    n: int | None = None,
    note: Note | None = None,
    names: tuple[str, str] = ("source", "out_dir"),
) -> list[Path]:
    """Purify an image file, an image folder or a dataset spec ("digits", "cifar10", ..., see `data.load_images`,
    test split) into PNGs under `out_dir` (FILE_STEM.png, or 00000.png ... for a folder or dataset); returns them.

    data: the config's `[data]` (image shape where the model records none, data.root for "cifar10"); n: only the
    first n images of a folder or dataset; `names` are what errors call `source` and `out_dir`.
    """
    source_name, out_name = names
    src, out = Path(source), Path(out_dir)
    known = source in ("digits", "cifar10") or source.startswith(("torchvision:", "cifar10:"))
    if not known and not src.exists():
        raise FileNotFoundError(
            f"{source_name}: {src}: no such file or folder (expected an image, ImageFolder or 'digits')"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out_name}: {out} is a file, expected a folder (it is created when missing)")
    data = DataConfig() if data is None else data
    size, channels = loading_shape(pipe, data, note)
    if src.is_file():
        stems, images = [src.stem], [pipe.purify(read_image(src, size, channels, name=source_name, note=note))]
    else:
        x, _ = load_images(
            source, split="test", size=size, channels=channels, name=source_name, note=note, root=data.root
        )
        x = x[:n] if n is not None else x
        stems = [f"{i:05d}" for i in range(len(x))]
        pure = pipe.purify(x)  # (N, C, H, W) in [0, 1]
        images = [Image.fromarray((a.permute(1, 2, 0).squeeze(-1).numpy() * 255).round().astype("uint8")) for a in pure]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, im in zip(stems, images, strict=True):
        im.save(out / f"{stem}.png")
        paths.append(out / f"{stem}.png")
    return paths


__all__ = [
    "PurificationPipeline",
    "is_run_directory",
    "load_classifier",
    "load_denoiser",
    "loading_shape",
    "purify_to_folder",
    "read_image",
]
