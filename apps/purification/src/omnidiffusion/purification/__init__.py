"""omnidiffusion.purification: DiffPure adversarial purification (Nie et al. 2022), evaluated with torchattacks.

`DiffPure` purifies [0, 1] images with any core Denoiser (diffuse to t*, solve back to 0 through
`omnidiffusion.core.sample`), including one read from a diffusers folder by `omnidiffusion.core.interop`;
`PurifiedClassifier` is the defended model torchattacks attacks; `evaluate_robustness` reports clean and robust
accuracy for the classifier alone, transfer, BPDA+EOT and full-gradient EOT-PGD attacks.

`train(config, out_dir)` fits the classifier and (through omnidiffusion.vision) the DDPM;
`PurificationPipeline.from_pretrained(out_dir)` loads both with the run config; `evaluate(pipe)` is the report of
`omnidiffusion-purification evaluate`.
"""

from omnidiffusion.vision.cifar10 import cifar10_binary

from .attacks import ATTACKS, NORMS, THREATS, AttackConfig, make_attack
from .classifier import SmallCNN, TorchvisionClassifier, build_classifier, predict_labels, train_classifier
from .data import digits_images, digits_split, image_folder, load_images, torchvision_dataset
from .diffpure import PURIFY_METHODS, DiffPure, check_unit_range
from .evaluation import defended_logits, evaluate, evaluate_robustness, sweep_t_star
from .metrics import accuracy, attack_success_rate, perturbation_norms, wilson_interval, worst_case
from .pipeline import PurificationPipeline
from .purified import PurifiedClassifier
from .settings import PurificationConfig, load_purification_config
from .training import train
from .wideresnet import WideResNet, load_classifier_weights

__version__ = "0.1.0"

__all__ = [
    "ATTACKS",
    "NORMS",
    "PURIFY_METHODS",
    "THREATS",
    "AttackConfig",
    "DiffPure",
    "PurificationConfig",
    "PurificationPipeline",
    "PurifiedClassifier",
    "SmallCNN",
    "TorchvisionClassifier",
    "WideResNet",
    "accuracy",
    "attack_success_rate",
    "build_classifier",
    "check_unit_range",
    "cifar10_binary",
    "defended_logits",
    "digits_images",
    "digits_split",
    "evaluate",
    "evaluate_robustness",
    "image_folder",
    "load_classifier_weights",
    "load_images",
    "load_purification_config",
    "make_attack",
    "perturbation_norms",
    "predict_labels",
    "sweep_t_star",
    "torchvision_dataset",
    "train",
    "train_classifier",
    "wilson_interval",
    "worst_case",
]
