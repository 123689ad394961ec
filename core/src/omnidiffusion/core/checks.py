"""Argument checks shared by the core and every app, for the Python API and the CLI alike.

One mistake, one wording: each check raises ValueError("<name>: expected <what>, got <value>") so a user sees
which argument was wrong, what it should have been and what it was, whether they called a pipeline from Python
or typed a command. The CLI layer (`omnidiffusion.core.cli`) turns these into one-line errors with exit code 2.

    n = positive_int(n, "n")                       # 1, 2, ...; refuses 0, -3, 2.5, True, "4"
    steps = positive_int(steps, "sample.steps")
    device = resolve_device("auto")                # cuda when available, else cpu; refuses a missing GPU
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch


def positive_int(value: Any, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """`value` as an int in [minimum, maximum]; bools, floats (even 2.0), strings and None are refused."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.dtype.is_floating_point:
        value, ok = int(value), value.dtype != torch.bool
    if not ok or value < minimum or (maximum is not None and value > maximum):
        want = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name}: expected {want}, got {value!r}")
    return int(value)


def non_negative_int(value: Any, name: str, *, maximum: int | None = None) -> int:
    """`value` as an int >= 0 (for counts where 0 means 'none' or 'all', as the caller documents)."""
    return positive_int(value, name, minimum=0, maximum=maximum)


def real_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a finite float inside the interval [low, high] (an end is excluded when `*_open`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    x = float(value)
    bad = not math.isfinite(x)
    if low is not None:
        bad = bad or (x <= low if low_open else x < low)
    if high is not None:
        bad = bad or (x >= high if high_open else x > high)
    if bad:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        span = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name}: expected a finite number in {span}, got {value!r}")
    return x


_DEVICE_FORMS = "auto, cpu, cuda or cuda:N"


def resolve_device(device: str | torch.device | None = "auto", *, name: str = "device") -> torch.device:
    """The torch.device to run on: 'auto' (or None) picks cuda when one is usable, else cpu.

    Refuses, with a one-line ValueError naming `name`, a device string torch does not know and a GPU this
    machine does not have (instead of the driver traceback the first tensor move would give).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}: expected {_DEVICE_FORMS}, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name}: {str(device)!r} asked for, but no CUDA GPU is usable here "
                "(torch.cuda.is_available() is False); use cpu or auto"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{name}: expected cuda:0 to cuda:{count - 1} ({count} visible), got {str(device)!r}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{name}: 'mps' asked for, but the Metal backend is not available here; use cpu")
    elif dev.type != "cpu":
        raise ValueError(f"{name}: expected {_DEVICE_FORMS}, got {device!r}")
    return dev


__all__ = ["non_negative_int", "positive_int", "real_number", "resolve_device"]
