"""CLI error wording: the Python API names its parameters, the commands name their flags.

An API check raises ValueError("image: expected ..."); inside core's `as_flags(image="--input")` a command
re-raises it as ValueError("--input: expected ..."), so the one error line `omnidiffusion-vision` prints names
what the user typed. `image_output` checks an image file name before any work is spent.

    with as_flags(image="--input", mask="--mask"):
        out = inpainter.inpaint(image, args.mask, steps=r.steps)
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from omnidiffusion.core.cli import as_flags

__all__ = ["as_flags", "image_output"]


def image_output(path: str | Path, flag: str = "--out") -> Path:
    """Check, before any work, that `path` names an image file PIL can write (by its suffix)."""
    path = Path(path)
    known = Image.registered_extensions()
    if path.suffix.lower() not in known or known[path.suffix.lower()] not in Image.SAVE:
        raise ValueError(f"{flag}: expected an image file name (.png, .jpg, .bmp, .tif, ...), got {str(path)!r}")
    return path
