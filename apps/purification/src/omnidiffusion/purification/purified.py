"""PurifiedClassifier: purifier then classifier as one nn.Module on [0, 1] images, the thing torchattacks attacks.

DiffPure's defended model (Nie et al. 2022, Sec. 3): logits = f(purify(x)) with a frozen, unmodified classifier f.
With `n_purify` > 1 the forward pass averages the logits of several independent purifications (the defended
prediction of the BPDA+EOT protocol); `predict` takes a majority vote over `votes` runs (Lee & Kim 2023).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnidiffusion.core.checks import positive_int

from .diffpure import DiffPure, check_unit_range


def check_channels_agree(purifier: nn.Module, classifier: nn.Module) -> None:
    """Raise ValueError when the classifier's recorded `in_channels` differ from the diffusion model's channels."""
    channels = purifier.image_shape[0] if isinstance(purifier, DiffPure) else None
    wanted = getattr(classifier, "in_channels", None)
    if isinstance(channels, int) and isinstance(wanted, int) and channels != wanted:
        raise ValueError(
            f"classifier: expects images with {wanted} channels (in_channels), but the diffusion model purifies "
            f"images with {channels} channels; use a classifier and a diffusion model trained on the same images"
        )


class PurifiedClassifier(nn.Module):
    """logits = classifier(purifier(x)) for x: (B, C, H, W) in [0, 1]; returns (B, num_classes).

    Args:
        purifier: a DiffPure (or any nn.Module mapping [0, 1] images to [0, 1] images).
        classifier: an nn.Module taking [0, 1] images (normalisation inside it) and returning logits.
        n_purify: purifications per forward pass; their logits are averaged.
    """

    def __init__(self, purifier: nn.Module, classifier: nn.Module, n_purify: int = 1) -> None:
        super().__init__()
        if not isinstance(purifier, nn.Module):
            raise ValueError(f"purifier: expected an nn.Module, got {type(purifier).__name__}")
        if not isinstance(classifier, nn.Module):
            raise ValueError(f"classifier: expected an nn.Module, got {type(classifier).__name__}")
        n_purify = positive_int(n_purify, "n_purify")
        check_channels_agree(purifier, classifier)
        self.purifier = purifier
        self.classifier = classifier
        self.n_purify = n_purify
        # torchattacks reads the device from the first parameter; a parameter-free pair still needs one.
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        check_unit_range(x, "x")
        if self.n_purify == 1:
            return self.classifier(self.purifier(x))
        B = x.shape[0]
        xs = x.repeat(self.n_purify, *([1] * (x.ndim - 1)))  # (n * B, C, H, W): one batch, independent noise
        logits = self.classifier(self.purifier(xs))  # (n * B, K)
        return logits.reshape(self.n_purify, B, -1).mean(0)  # (B, K)

    @torch.no_grad()
    def predict(self, x: Tensor, votes: int = 1) -> Tensor:
        """Labels (B,) by majority vote over `votes` independent purifications (ties: the smallest label)."""
        votes = positive_int(votes, "votes")
        check_unit_range(x, "x")
        counts = None
        for _ in range(votes):
            logits = self.classifier(self.purifier(x))  # (B, K)
            hit = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1])
            counts = hit if counts is None else counts + hit
        return counts.argmax(1)

    @property
    def diffpure(self) -> DiffPure | None:
        return self.purifier if isinstance(self.purifier, DiffPure) else None


__all__ = ["PurifiedClassifier", "check_channels_agree"]
