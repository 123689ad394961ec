"""[seg] section of VisionConfig: mask diffusion (task "segdiff"), its UNet baseline ("seg-unet"), DDPM-Seg.

The networks' widths come from [model], the diffusion table from [schedule], the sampler from [sampler] and the
training loop from [train]; this section holds what only segmentation has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnidiffusion.core.checks import positive_int, real_number


@dataclass
class SegConfig:
    """Segmentation settings; `n_samples` masks are averaged into the mean mask and its uncertainty."""

    # data: bundled synthetic set ("shapes" | "horse" | "mixed") or image/mask folder pairs ("folder")
    source: Literal["shapes", "horse", "mixed", "folder"] = "mixed"
    image_dir: str = ""  # source = "folder": images
    mask_dir: str = ""  # source = "folder": masks with the same file stems
    n_images: int = 600  # bundled set size (train + held-out)
    n_test: int = 100  # held out by the seeded split
    data_seed: int = 0
    split_seed: int = 0
    flips: bool = True  # random left-right / up-down flips of image and mask together
    # SegDiff (Amit et al. 2021) / MedSegDiff-style conditioning
    fusion: Literal["add", "concat", "both"] = "add"
    encoder_blocks: int = 1  # RRDBs in the image encoder
    encoder_growth: int = 8
    dice_weight: float = 0.0  # + weight x soft Dice of x0_hat in the SegDiff loss (0 = the paper's L_simple)
    self_condition: bool = False  # feed the previous x0_hat back as an input channel (Chen et al. 2022)
    t_power: float = 1.0  # training steps drawn as floor(T u^(1/p)): 1 = uniform (paper), > 1 favours noisy steps
    mask_head: Literal["linear", "sigmoid"] = "linear"  # sigmoid: x0_hat = 2 sigmoid(out) - 1 (x0-prediction)
    bce_weight: float = 0.0  # + weight x BCE of (x0_hat + 1) / 2 against the mask (needs mask_head "sigmoid")
    n_samples: int = 5  # ensemble size: mean mask, threshold, per-pixel std
    threshold: float = 0.5
    unet_checkpoint: str = ""  # evaluate: a seg-unet checkpoint to score beside the model
    # DDPM-Seg (Baranchuk et al. 2022)
    ddpm_checkpoint: str = ""  # an ImageDDPM directory to take features from; "" = train one on the images
    ddpm_steps: int = 0  # training steps of that ImageDDPM; 0 = train.steps
    feature_blocks: list[int] = field(default_factory=lambda: [1, 3, 4, 6])  # indices into the UNet's decoder
    feature_steps: list[int] = field(default_factory=lambda: [50, 150, 250])  # noise levels, table steps of T
    n_labelled: int = 8  # labelled images the pixel classifiers see
    pixels_per_image: int = 512  # pixels sub-sampled per labelled image (half foreground where possible)
    n_mlps: int = 5  # ensemble size (majority vote)
    mlp_hidden: list[int] = field(default_factory=lambda: [128, 32])
    mlp_epochs: int = 40
    mlp_batch: int = 256
    mlp_lr: float = 1e-3
    patch: int = 5  # raw-pixel baseline: the k x k neighbourhood of each pixel

    def __post_init__(self) -> None:
        positive_int(self.n_samples, "seg.n_samples")
        real_number(self.threshold, "seg.threshold", low=0.0, high=1.0, low_open=True)
