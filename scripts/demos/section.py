"""What a demo section hands back to the driver (scripts/demo.py), which turns it into part of report.md.

A section is a module under scripts/demos/ with three names:

    TITLE: str                                        the report heading
    DESCRIPTION: str                                  one short paragraph (markdown) saying what it shows
    run(out_dir: Path, quick: bool) -> SectionResult  does the work, writes its files under out_dir

`out_dir` is the section's own folder (OUT/<module name>/). `quick` asks for a seconds-long smoke run (tests).
The driver times `run` and writes the wall time; the section reports everything else here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SectionResult:
    """Figures (caption, path), metric tables (caption, rows of {column: value}) and free-text notes."""

    figures: list[tuple[str, Path]] = field(default_factory=list)
    tables: list[tuple[str, list[dict[str, object]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # other outputs worth a link (metrics.json, checkpoints)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with n intra-op torch threads, then restore the previous count (small nets: 1 is fastest)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
