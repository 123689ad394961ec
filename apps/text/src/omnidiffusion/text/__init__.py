"""omnidiffusion.text: Diffusion-LM (Li et al. 2022) on omnidiffusion-core.

Continuous diffusion over learned word vectors with a transformer x0-denoiser, the sqrt schedule, the clamping
trick, classifier-guided control on the latents (semantic content, length) and infilling by known-value
conditioning. Modules: corpus (bundled E2E-like data), data (formats, tokenizer), models, diffusion (loss, clamp,
rounding), control (guidance), checker (rule-based judges), metrics, baselines, train, evaluation, pipeline, cli.
"""

from .pipeline import DiffusionLM

__version__ = "0.1.0"

__all__ = ["DiffusionLM", "__version__"]
