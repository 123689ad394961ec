"""omnidiffusion.core.nn: layers two or more apps share (time embeddings, FiLM, a configurable 2-D UNet)."""

from omnidiffusion.core.nn.embeddings import (
    GaussianFourierFeatures,
    SinusoidalEmbedding,
    TimeEmbedding,
    sinusoidal_embedding,
)
from omnidiffusion.core.nn.film import FiLM, film
from omnidiffusion.core.nn.unet import ResBlock, SelfAttention2d, UNet, default_unet_config

__all__ = [
    "FiLM",
    "GaussianFourierFeatures",
    "ResBlock",
    "SelfAttention2d",
    "SinusoidalEmbedding",
    "TimeEmbedding",
    "UNet",
    "default_unet_config",
    "film",
    "sinusoidal_embedding",
]
