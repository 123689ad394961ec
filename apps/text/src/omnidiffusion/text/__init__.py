"""omnidiffusion.text: Diffusion-LM (Li et al. 2022) and a masked discrete diffusion LM on omnidiffusion-core.

Continuous diffusion over learned word vectors with a transformer x0-denoiser, the sqrt schedule, the clamping
trick, classifier-guided control on the latents (semantic content, length) and infilling by known-value
conditioning; beside it a masked (absorbing-state, MDLM-style) diffusion LM over word ids (core.discrete) with
an exact ELBO, classifier-free guided control and exact clamped infilling. Modules: settings (the config tree),
corpus (bundled E2E-like data), data (formats, tokenizer), models, diffusion (loss, clamp, rounding), masked (the
discrete model and its pipeline), control (guidance, control and template parsing), checker (rule-based judges),
metrics, baselines, training, evaluation, pipeline, cli.
"""

from .masked import MaskedDiffusionLM
from .pipeline import DiffusionLM, load_lm

__version__ = "0.1.0"

__all__ = ["DiffusionLM", "MaskedDiffusionLM", "__version__", "load_lm"]
