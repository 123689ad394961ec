"""CLI error wording: the Python API names its parameters, the commands name their flags.

An API check raises ValueError("image: expected ..."); inside `as_flags(image="--input")` a command re-raises it
as ValueError("--input: expected ..."), so the one error line `omnidiffusion-vision` prints names what the user
typed. Messages that start with anything else pass through unchanged.

    with as_flags(image="--input", mask="--mask"):
        out = inpainter.inpaint(image, args.mask, steps=r.steps)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image


@contextmanager
def as_flags(**names: str) -> Iterator[None]:
    """Re-raise a ValueError "<param>: ..." as "<flag>: ..." for every param=flag pair given."""
    try:
        yield
    except ValueError as e:
        head, sep, rest = str(e).partition(": ")
        if sep and head in names:
            raise ValueError(f"{names[head]}: {rest}") from None
        raise


def image_output(path: str | Path, flag: str = "--output") -> Path:
    """Check, before any work, that `path` names an image file PIL can write (by its suffix)."""
    path = Path(path)
    known = Image.registered_extensions()
    if path.suffix.lower() not in known or known[path.suffix.lower()] not in Image.SAVE:
        raise ValueError(f"{flag}: expected an image file name (.png, .jpg, .bmp, .tif, ...), got {str(path)!r}")
    return path
