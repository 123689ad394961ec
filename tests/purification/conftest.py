"""Shared fixtures: a tiny randomly initialised core UNet denoiser on 1x8x8 images and a tiny CNN classifier."""

from __future__ import annotations

import pytest
import torch

from omnidiffusion.core import Denoiser, DiscreteVP
from omnidiffusion.core.nn import UNet
from omnidiffusion.purification import SmallCNN


def tiny_unet_denoiser(seed: int = 0) -> Denoiser:
    """A UNet whose zero-initialised output layers are perturbed, so the network is not the zero map."""
    torch.manual_seed(seed)
    net = UNet(
        in_channels=1,
        out_channels=1,
        base_channels=8,
        channel_mults=[1, 2],
        num_res_blocks=1,
        attention_resolutions=[],
        dropout=0.0,
        resolution=8,
        norm_groups=4,
    )
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Denoiser(net.eval(), DiscreteVP.linear(1000), prediction="eps")


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny convolutions on a shared 2-core machine are many times faster without spinning."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def denoiser() -> Denoiser:
    return tiny_unet_denoiser()


@pytest.fixture
def classifier() -> SmallCNN:
    torch.manual_seed(1)
    return SmallCNN(in_channels=1, num_classes=10, width=4).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
