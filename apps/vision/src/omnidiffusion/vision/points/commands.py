"""CLI wiring of the points task: extra verbs and `evaluate --task`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from omnidiffusion.core.cli import AppCLI


def register(cli: AppCLI, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this task's verbs to `omnidiffusion-vision` (`common` adds --checkpoint and --device)."""


def evaluate(args: argparse.Namespace, config) -> dict:
    """`omnidiffusion-vision evaluate --task ...`: one JSON-able dict with the model and its baselines."""
    raise NotImplementedError("points evaluation is not written yet")


def train(config, out_dir, resume):
    """`omnidiffusion-vision train` for this task's config.task values; returns the trained model."""
    raise NotImplementedError("points training is not written yet")
