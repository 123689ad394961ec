"""omnidiffusion.vision: image diffusion on omnidiffusion-core.

- `ImageDDPM` / `train_image_ddpm`: unconditional image DDPM (Ho et al. 2020) on core's UNet and `fit`.
- `SR3` / `train_sr3` / `SuperResolution`: SR3 super-resolution (Saharia et al. 2021); `distil_sr3`: its
  consistency-distilled 1/2/4-step version (core.consistency).
- `repaint_inpaint` / `Inpainter`: RePaint inpainting with any unconditional model (Lugmayr et al. 2022).
- `Segmenter` / `SegDiff` / `SegUNet` / `train_ddpm_seg`: segmentation by mask diffusion (Amit et al. 2021) and
  DDPM-Seg pixel classifiers (Baranchuk et al. 2022); see `segmentation`.
- `PointCloudDiffusion` / `PointDiffusionModel`: point-cloud DDPM, generation and completion (Luo & Hu 2021, PVD).
- `AnomalyDetector`: AnoDDPM anomaly maps with simplex or Gaussian noise (Wyatt et al. 2022).
- `inverse`: zero-shot restoration with one unconditional prior (DDNM, DDNM+, DPS, RePaint, SDEdit): `restore`.
- `load_image_prior` / `DenoiserPrior`: an ImageDDPM folder or a local diffusers folder as an image prior.
- `data`: bundled demo images (digits, lfw faces, photo crops) and image folders; `metrics`: PSNR, SSIM, ...
"""

from . import baselines, data, evaluation, imaging, inverse, masks, metrics
from .anomaly.pipeline import AnomalyDetector
from .data import ImageFolder, PairedFolders, load_digits_16, load_faces, load_photo_crops
from .evaluation import evaluate_inpaint, evaluate_sr
from .inpaint import repaint_inpaint
from .masks import box_mask, half_mask, lines_mask, load_mask, make_mask, stroke_mask
from .models import SR3, ImageDDPM, RegressionSR
from .pipeline import Inpainter, SuperResolution
from .points.model import PointDiffusionModel
from .points.pipeline import PointCloudDiffusion
from .points.training import train_points
from .priors import DenoiserPrior, load_image_prior
from .segmentation.ddpm_seg import train_ddpm_seg
from .segmentation.models import SegDiff, SegUNet
from .segmentation.pipeline import Segmenter
from .segmentation.training import train_seg_unet, train_segdiff
from .settings import VisionConfig, load_vision_config
from .sr3 import sample_noise_level, sr3_upscale
from .training import distil_sr3, train, train_image_ddpm, train_regression, train_sr3

__version__ = "0.1.0"

__all__ = [
    "AnomalyDetector",
    "DenoiserPrior",
    "inverse",
    "load_image_prior",
    "PointCloudDiffusion",
    "PointDiffusionModel",
    "SegDiff",
    "SegUNet",
    "Segmenter",
    "train_ddpm_seg",
    "train_points",
    "train_seg_unet",
    "train_segdiff",
    "ImageFolder",
    "Inpainter",
    "PairedFolders",
    "SuperResolution",
    "baselines",
    "box_mask",
    "evaluate_inpaint",
    "evaluate_sr",
    "evaluation",
    "half_mask",
    "lines_mask",
    "load_mask",
    "make_mask",
    "masks",
    "metrics",
    "repaint_inpaint",
    "sample_noise_level",
    "sr3_upscale",
    "stroke_mask",
    "SR3",
    "ImageDDPM",
    "RegressionSR",
    "VisionConfig",
    "data",
    "distil_sr3",
    "imaging",
    "load_digits_16",
    "load_faces",
    "load_photo_crops",
    "load_vision_config",
    "train",
    "train_image_ddpm",
    "train_regression",
    "train_sr3",
]
