"""PurificationPipeline: load a trained diffusion model (and optionally a classifier), purify and classify images.

    pipe = PurificationPipeline.from_pretrained("runs/purification/digits/diffusion",
                                                classifier="runs/purification/digits/classifier", t_star=0.2)
    pipe = PurificationPipeline.from_pretrained("ddpm-cifar10-32",            # a diffusers folder works the same
                                                classifier="wrn-28-10.safetensors", classifier_arch="wrn-28-10")
    clean = pipe.purify(pil_image)               # PIL in, PIL out; numpy and torch work the same way
    labels = pipe.classify(batch)                # (N,) numpy int64 from the defended classifier

Accepted images: a PIL image or a list of them; numpy (H, W), (H, W, C) or (N, H, W, C), uint8 (0..255) or float
in [0, 1]; torch (C, H, W) or (N, C, H, W) float in [0, 1]. Outputs come back in the type and layout given.
Images are resized (and converted to the model's channels) only when they come as PIL images; numpy and torch
images of another size or channel count, values outside [0, 1] or NaN raise ValueError naming `images`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from omnidiffusion.core import DenoiserBase
from omnidiffusion.core.checks import positive_int, resolve_device
from omnidiffusion.core.interop import from_diffusers, is_diffusers_folder
from omnidiffusion.core.io import load_pretrained

from .diffpure import DiffPure, check_unit_range
from .purified import PurifiedClassifier, check_channels_agree
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
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{name}: {directory} (a diffusers folder): {_strip_path(e)}") from None
        except ValueError as e:
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
        from .classifier import build_classifier

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


class PurificationPipeline:
    """DiffPure around a pretrained diffusion model, plus an optional classifier behind it."""

    def __init__(
        self, purifier: DiffPure, classifier: nn.Module | None = None, device: str | torch.device = "cpu"
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

    @classmethod
    def from_pretrained(
        cls,
        diffusion: str | Path | DenoiserBase,
        classifier: str | Path | nn.Module | None = None,
        *,
        t_star: float = 0.1,
        method: str = "sde",
        steps: int | None = None,
        seed: int = 0,
        grid: str = "time-uniform",
        checkpointing: bool = False,
        device: str | torch.device = "cpu",
        classifier_arch: str = "wrn-28-10",
        num_classes: int = 10,
    ) -> PurificationPipeline:
        """DiffPure around a diffusion model folder (ours or diffusers', see `load_denoiser`) or a core Denoiser, and
        an optional classifier (a directory, a weight file for `classifier_arch`, or a module; `load_classifier`)."""
        device = resolve_device(device)
        den = diffusion if isinstance(diffusion, DenoiserBase) else load_denoiser(diffusion)
        purifier = DiffPure(
            den, t_star=t_star, method=method, steps=steps, grid=grid, checkpointing=checkpointing, seed=seed
        )
        net = None
        if classifier is not None:
            channels = purifier.image_shape[0] or 3
            net = load_classifier(classifier, arch=classifier_arch, num_classes=num_classes, in_channels=channels)
        return cls(purifier, net, device)

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
        from PIL import Image

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
        from PIL import Image

        _, single, mode = kind
        a = np.round(x.detach().cpu().numpy() * 255.0).astype(np.uint8)
        ims = [Image.fromarray(i[0] if mode == "L" else i.transpose(1, 2, 0), mode) for i in a]
        return ims[0] if single else ims

    # ---- the verbs
    @torch.no_grad()
    def purify(self, images, batch_size: int = 128):
        """Purified images, in the type and layout given (see the module docstring)."""
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
            raise ValueError("classifier: this pipeline was loaded without a classifier (pass classifier=DIR)")
        votes, batch_size = positive_int(votes, "votes"), positive_int(batch_size, "batch_size")
        x, _ = self._to_tensor(images)
        model = PurifiedClassifier(self.purifier, self.classifier).eval()
        out = [model.predict(x[i : i + batch_size].to(self.device), votes).cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy()


__all__ = ["PurificationPipeline", "load_classifier", "load_denoiser"]
