"""Bad input to omnidiffusion-purification: every case is one clear error naming the argument and what was expected.

The CLI cases run `cli.main` in-process through the shared `cli_error` fixture (exit 2, no traceback, one error
line); the API cases call DiffPure, PurifiedClassifier, PurificationPipeline and the evaluation functions. One tiny
untrained checkpoint (a 16x16 grey ImageDDPM and a SmallCNN) is built once per module; no test trains a model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnidiffusion.core.io import save_pretrained
from omnidiffusion.purification import AttackConfig, DiffPure, PurifiedClassifier, SmallCNN, load_images
from omnidiffusion.purification.attacks import check_threat
from omnidiffusion.purification.classifier import train_classifier
from omnidiffusion.purification.cli import cli
from omnidiffusion.purification.evaluation import evaluate, evaluate_robustness, sweep_t_star
from omnidiffusion.purification.pipeline import PurificationPipeline
from omnidiffusion.purification.settings import load_purification_config

vision = pytest.importorskip("omnidiffusion.vision")
UNET = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_resolutions": [], "norm_groups": 4}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """Folders: diffusion (16x16 grey), diffusion_rgb8 (8x8 RGB), classifier (1 ch), classifier_rgb (3 ch), files."""
    root = tmp_path_factory.mktemp("purification_bad")
    torch.manual_seed(0)
    save_pretrained(vision.ImageDDPM(16, 1, UNET), root / "diffusion")
    save_pretrained(vision.ImageDDPM(8, 3, UNET), root / "diffusion_rgb8")
    save_pretrained(SmallCNN(1, 10, 4), root / "classifier")
    save_pretrained(SmallCNN(3, 10, 4), root / "classifier_rgb")
    (root / "noweights").mkdir()
    (root / "noweights" / "config.json").write_bytes((root / "diffusion" / "config.json").read_bytes())
    (root / "notimage.png").write_text("not a png")
    (root / "empty.png").write_bytes(b"")
    (root / "empty").mkdir()
    (root / "corrupt" / "a").mkdir(parents=True)
    (root / "corrupt" / "a" / "x.png").write_text("junk")
    rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(root / "rgb20.png")
    (root / "afile").write_text("x")
    from safetensors.torch import save_file

    save_file(SmallCNN(1, 10, 8).state_dict(), root / "cnn8.safetensors")  # the tiny config's width is 4
    torch.save({"w": torch.zeros(1), "object": _NotATensor()}, root / "object.pt")
    (root / "cifar_short" / "cifar-10-batches-bin").mkdir(parents=True)
    (root / "cifar_short" / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(bytes(3073 * 2 - 5))
    return root


class _NotATensor:
    """A picklable object that torch.load(weights_only=True) must refuse."""


def _purify(ckpt, *extra, diffusion="diffusion"):
    base = ["purify", "--config", "tiny", "--checkpoint", ckpt / diffusion, "--out", ckpt / "out"]
    return base + ["--input", "digits", "--n", "2", *extra] if "--input" not in extra else base + list(extra)


def _evaluate(ckpt, *extra, diffusion="diffusion", classifier="classifier"):
    base = ["evaluate", "--config", "tiny", "--quiet", "--set", "evaluate.n=2", "--checkpoint", ckpt / diffusion]
    return base + ["--set", f"classifier.weights={ckpt / classifier}", *extra]


def _data(ckpt, source, *extra):
    return _evaluate(ckpt, "--set", f"data.source={source}", *extra)


# (argv builder, fragments the one error line must hold: the flag or key, and what was expected)
CLI_CASES = {
    "purify without --checkpoint": (
        lambda c: ["purify", "--config", "tiny", "--input", "digits"],
        ("--checkpoint", "required"),
    ),
    "purify --input missing": (lambda c: _purify(c, "--input", c / "nope.png"), ("--input", "no such file")),
    "purify --input not an image": (
        lambda c: _purify(c, "--input", c / "notimage.png"),
        ("--input", "notimage.png", "not a readable image"),
    ),
    "purify --input empty file": (lambda c: _purify(c, "--input", c / "empty.png"), ("--input", "empty.png")),
    "purify --input empty folder": (lambda c: _purify(c, "--input", c / "empty"), ("--input", "no readable images")),
    "purify --input corrupt image": (
        lambda c: _purify(c, "--input", c / "corrupt"),
        ("--input", "x.png", "not a readable image"),
    ),
    "purify --out is a file": (lambda c: _purify(c, "--out", c / "afile"), ("--out", "expected a folder")),
    "purify --n -1": (lambda c: _purify(c, "--n", "-1"), ("--n", "expected an integer >= 1")),
    "purify --n 0": (lambda c: _purify(c, "--n", "0"), ("--n", "expected an integer >= 1")),
    "purify sampler.t_star=1.5": (
        lambda c: _purify(c, "--set", "sampler.t_star=1.5"),
        ("sampler.t_star", "[0, 1)"),
    ),
    "purify sampler.t_star=nan": (
        lambda c: _purify(c, "--set", "sampler.t_star=nan"),
        ("sampler.t_star", "finite number"),
    ),
    "purify sampler.t_star=-0.1": (
        lambda c: _purify(c, "--set", "sampler.t_star=-0.1"),
        ("sampler.t_star", "[0, 1)"),
    ),
    "purify --device gpu": (lambda c: _purify(c, "--device", "gpu"), ("--device", "cpu, cuda")),
    "purify sampler.steps=0": (lambda c: _purify(c, "--set", "sampler.steps=0"), ("sampler.steps", "integer >= 1")),
    "purify sampler.batch_size=0": (
        lambda c: _purify(c, "--set", "sampler.batch_size=0"),
        ("sampler.batch_size", "integer >= 1"),
    ),
    "purify sampler.grid=foo": (
        lambda c: _purify(c, "--set", "sampler.grid=foo"),
        ("sampler.grid", "time-uniform"),
    ),
    "purify sampler.method=heun": (
        lambda c: _purify(c, "--set", "sampler.method=heun"),
        ("sampler.method", "heun"),
    ),
    "purify data.channels=2": (lambda c: _purify(c, "--set", "data.channels=2"), ("data.channels", "1 (grey)")),
    "purify --checkpoint missing": (
        lambda c: _purify(c, diffusion="nope"),
        ("--checkpoint", "nope", "no such directory"),
    ),
    "purify --checkpoint without weights": (
        lambda c: _purify(c, diffusion="noweights"),
        ("model.safetensors", "no such file"),
    ),
    "purify --checkpoint is a classifier": (
        lambda c: _purify(c, diffusion="classifier"),
        ("--checkpoint", "SmallCNN", ".denoiser()"),
    ),
    "evaluate classifier.weights is a diffusion model": (
        lambda c: _evaluate(c, classifier="diffusion"),
        ("classifier.weights", "ImageDDPM", "expected a classifier"),
    ),
    "evaluate classifier 3 channels, diffusion 1": (
        lambda c: _evaluate(c, classifier="classifier_rgb"),
        ("classifier", "3 channels", "1 channels"),
    ),
    "evaluate diffusion 3 channels, classifier 1": (
        lambda c: _evaluate(c, diffusion="diffusion_rgb8"),
        ("classifier", "1 channels", "3 channels"),
    ),
    "evaluate data.source unknown form": (lambda c: _data(c, "foo"), ("data.source", "not a directory")),
    "evaluate data.source torchvision:Nope": (
        lambda c: _data(c, "torchvision:Nope:/tmp"),
        ("data", "no dataset 'Nope'"),
    ),
    "evaluate evaluate.eps=-0.1": (
        lambda c: _evaluate(c, "--set", "evaluate.eps=-0.1"),
        ("evaluate.eps", "(0, inf)"),
    ),
    "evaluate evaluate.eps empty": (
        lambda c: _evaluate(c, "--set", "evaluate.eps="),
        ("evaluate.eps", "at least one"),
    ),
    "evaluate evaluate.eps=abc": (lambda c: _evaluate(c, "--set", "evaluate.eps=abc"), ("evaluate.eps", "abc")),
    "evaluate evaluate.eps=inf": (
        lambda c: _evaluate(c, "--set", "evaluate.eps=inf"),
        ("evaluate.eps", "finite number"),
    ),
    "evaluate evaluate.norm=l3": (lambda c: _evaluate(c, "--set", "evaluate.norm=l3"), ("evaluate.norm", "linf")),
    "evaluate evaluate.attacks=cw": (
        lambda c: _evaluate(c, "--set", "evaluate.attacks=cw"),
        ("evaluate.attacks", "'cw'"),
    ),
    "evaluate evaluate.seed=-1": (
        lambda c: _evaluate(c, "--set", "evaluate.seed=-1"),
        ("evaluate.seed", "integer >= 0"),
    ),
    "evaluate evaluate.n=0": (lambda c: _evaluate(c, "--set", "evaluate.n=0"), ("evaluate.n", "integer >= 1")),
    "evaluate evaluate.batch_size=0": (
        lambda c: _evaluate(c, "--set", "evaluate.batch_size=0"),
        ("evaluate.batch_size", "integer >= 1"),
    ),
    "evaluate evaluate.t_stars=1.5": (
        lambda c: _evaluate(c, "--set", "evaluate.t_stars=1.5"),
        ("evaluate.t_stars", "[0, 1)"),
    ),
    "evaluate attack.alpha=inf": (lambda c: _evaluate(c, "--set", "attack.alpha=inf"), ("alpha", "finite number")),
    "evaluate --seed (a sampler key) is refused": (
        lambda c: _evaluate(c, "--seed", "1"),
        ("unrecognized arguments", "--seed"),
    ),
    "train-classifier classifier.num_classes=5": (
        lambda c: ["train-classifier", "--config", "tiny", "--out", c / "tc", "--set", "classifier.num_classes=5"],
        ("classifier.num_classes", "at least 10"),
    ),
    "train-classifier data.image_size=4": (
        lambda c: ["train-classifier", "--config", "tiny", "--out", c / "tc", "--set", "data.image_size=4"],
        ("data.image_size", "integer >= 8"),
    ),
    "evaluate without a classifier": (
        lambda c: ["evaluate", "--config", "tiny", "--quiet", "--checkpoint", c / "diffusion"],
        ("classifier.weights", "got none"),
    ),
    "evaluate classifier.weights of another width": (
        lambda c: _evaluate(c, classifier="cnn8.safetensors"),
        ("classifier.weights", "cnn8.safetensors", "tensor shapes differ from SmallCNN"),
    ),
    "evaluate classifier.weights pickled object": (
        lambda c: _evaluate(c, classifier="object.pt"),
        ("classifier.weights", "object.pt", "refused: torch.load(weights_only=True)"),
    ),
    "evaluate classifier.weights missing file": (
        lambda c: _evaluate(c, classifier="nope.safetensors"),
        ("classifier.weights", "nope.safetensors", "no such file or directory"),
    ),
    "evaluate data.source=cifar10 without data.root": (
        lambda c: _data(c, "cifar10"),
        ("data.root", "cifar-10-batches-bin", "got none"),
    ),
    "evaluate data.source=cifar10 file of the wrong length": (
        lambda c: _data(c, f"cifar10:{c / 'cifar_short'}"),
        ("test_batch.bin", "3073-byte CIFAR-10 records", "got 6141 bytes"),
    ),
    "evaluate data.source=torchvision:CIFAR10 (pickled)": (
        lambda c: _data(c, f"torchvision:CIFAR10:{c}"),
        ("data", "never done here", "binary version"),
    ),
    "evaluate evaluate.subset_seed=-1": (
        lambda c: _evaluate(c, "--set", "evaluate.subset_seed=-1"),
        ("evaluate.subset_seed", "integer >= 0"),
    ),
    "train-classifier classifier.arch=wrn-27-10": (
        lambda c: ["train-classifier", "--config", "tiny", "--out", c / "tc", "--set", "classifier.arch=wrn-27-10"],
        ("classifier.arch", "6n + 4", "'wrn-27-10'"),
    ),
    "train-classifier classifier.width=0": (
        lambda c: ["train-classifier", "--config", "tiny", "--out", c / "tc", "--set", "classifier.width=0"],
        ("classifier.width", "integer >= 1"),
    ),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_is_one_clear_error(case, ckpt, cli_error):
    argv, fragments = CLI_CASES[case]
    cli_error(cli, argv(ckpt), *fragments)
    assert not (ckpt / "out").exists() or case.startswith("purify --out")  # nothing written before the error


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of a GPU this machine does not have")
@pytest.mark.parametrize("command", ["purify", "evaluate"])
def test_cli_refuses_a_missing_gpu(command, ckpt, cli_error):
    argv = _purify(ckpt, "--device", "cuda") if command == "purify" else _evaluate(ckpt, "--device", "cuda")
    cli_error(cli, argv, "--device", "no CUDA GPU")


def test_cli_converts_a_colour_image_of_another_size_and_says_so(ckpt, capsys):
    out = ckpt / "converted"
    argv = ["purify", "--config", "tiny", "--checkpoint", ckpt / "diffusion", "--input", ckpt / "rgb20.png"]
    assert cli.main([str(a) for a in argv + ["--out", out]]) == 0
    err = capsys.readouterr().err
    assert "note: --input: 20x20, 3 channel(s) converted to the diffusion model's 16x16, 1 channel(s)" in err
    with Image.open(out / "rgb20.png") as im:
        assert im.size == (16, 16) and im.mode == "L"


def test_cli_t_star_zero_is_the_identity_and_says_so(ckpt, capsys):
    out = ckpt / "identity"
    argv = _purify(ckpt, "--set", "sampler.t_star=0")
    argv[argv.index("--out") + 1] = out
    assert cli.main([str(a) for a in argv]) == 0
    assert "note: t* = 0: DiffPure is the identity" in capsys.readouterr().err
    x, _ = load_images("digits", split="test", size=16, channels=1)
    for i in range(2):
        with Image.open(out / f"{i:05d}.png") as im:
            assert np.array_equal(np.asarray(im), (x[i, 0].numpy() * 255).round().astype(np.uint8))


# ---- Python API


@pytest.fixture(scope="module")
def pipe(ckpt):
    config = load_purification_config("tiny", ["sampler.t_star=0.05", "sampler.steps=1"])
    return PurificationPipeline.from_pretrained(ckpt / "diffusion", config=config, classifier=ckpt / "classifier")


def _x(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


API_CASES = {
    "DiffPure t_star nan": (lambda p, c: DiffPure(p.purifier.denoiser, t_star=float("nan")), "t_star: expected a"),
    "DiffPure t_star True": (lambda p, c: DiffPure(p.purifier.denoiser, t_star=True), "t_star: expected a number"),
    "DiffPure steps True": (lambda p, c: DiffPure(p.purifier.denoiser, steps=True), "steps: expected an integer"),
    "DiffPure seed 'a'": (lambda p, c: DiffPure(p.purifier.denoiser, seed="a"), "seed: expected an integer >= 0"),
    "DiffPure x 3 channels": (lambda p, c: p.purifier(_x(2, 3, 16, 16)), "x: expected images (B, 1, 16, 16)"),
    "DiffPure x 8x8 for a 16x16 model": (lambda p, c: p.purifier(_x(2, 1, 8, 8)), "x: expected images (B, 1, 16, 16)"),
    "DiffPure x NaN": (lambda p, c: p.purifier(_x(2, 1, 16, 16) * float("nan")), "x: expected values in [0, 1]"),
    "PurifiedClassifier n_purify True": (
        lambda p, c: PurifiedClassifier(p.purifier, p.classifier, n_purify=True),
        "n_purify: expected an integer >= 1",
    ),
    "PurifiedClassifier 3-channel classifier": (
        lambda p, c: PurifiedClassifier(p.purifier, SmallCNN(3, 10, 4)),
        "classifier: expects images with 3 channels",
    ),
    "from_pretrained missing folder": (
        lambda p, c: PurificationPipeline.from_pretrained(c / "nope"),
        "directory: ",
    ),
    "from_pretrained folder without weights": (
        lambda p, c: PurificationPipeline.from_pretrained(c / "noweights"),
        "model.safetensors: no such file",
    ),
    "from_pretrained diffusion as classifier": (
        lambda p, c: PurificationPipeline.from_pretrained(c / "diffusion", classifier=c / "diffusion"),
        "classifier: ",
    ),
    "from_pretrained device gpu": (
        lambda p, c: PurificationPipeline.from_pretrained(c / "diffusion", device="gpu"),
        "device: expected auto, cpu, cuda",
    ),
    "from_pretrained config of another type": (
        lambda p, c: PurificationPipeline.from_pretrained(c / "diffusion", config={"sampler": {"steps": 1}}),
        "config: expected a PurificationConfig",
    ),
    "purify numpy RGB for a grey model": (
        lambda p, c: p.purify(np.zeros((16, 16, 3), np.float32)),
        "images: expected 1 channel(s) of 16x16",
    ),
    "purify torch 8x8 for a 16x16 model": (lambda p, c: p.purify(_x(1, 1, 8, 8)), "images: expected 1 channel(s)"),
    "purify numpy values 2": (lambda p, c: p.purify(np.full((16, 16), 2.0, np.float32)), "images: expected values"),
    "purify numpy int 300": (lambda p, c: p.purify(np.full((16, 16), 300, np.int64)), "images: expected values"),
    "purify empty batch": (lambda p, c: p.purify(_x(0, 1, 16, 16)), "images: expected a batch"),
    "purify batch_size 0": (lambda p, c: p.purify(_x(1, 1, 16, 16), batch_size=0), "batch_size: expected an integer"),
    "classify votes 0": (lambda p, c: p.classify(_x(1, 1, 16, 16), votes=0), "votes: expected an integer >= 1"),
    "evaluate_robustness eps inf": (
        lambda p, c: evaluate_robustness(_model(p), (_x(2, 1, 16, 16), torch.tensor([1, 2])), eps=float("inf")),
        "eps (a perturbation budget): expected a finite number in (0, inf)",
    ),
    "evaluate_robustness eps []": (
        lambda p, c: evaluate_robustness(_model(p), (_x(2, 1, 16, 16), torch.tensor([1, 2])), eps=[]),
        "eps: expected a perturbation budget or a non-empty list",
    ),
    "evaluate_robustness batch_size 0": (
        lambda p, c: evaluate_robustness(_model(p), (_x(2, 1, 16, 16), torch.tensor([1, 2])), eps=0.1, batch_size=0),
        "batch_size: expected an integer >= 1",
    ),
    "evaluate_robustness labels >= classes": (
        lambda p, c: evaluate_robustness(_model(p), (_x(2, 1, 16, 16), torch.tensor([1, 12])), eps=0.1),
        "labels: expected class indices in [0, 10)",
    ),
    "sweep_t_star t* 1.5": (
        lambda p, c: sweep_t_star(_model(p), (_x(2, 1, 16, 16), torch.tensor([1, 2])), [1.5], [0.1]),
        "t_stars (diffusion times): expected a finite number in [0, 1)",
    ),
    "train_classifier labels >= num_classes": (
        lambda p, c: train_classifier(SmallCNN(1, 5, 4), _x(2, 1, 16, 16), torch.tensor([1, 9]), None, c / "tc"),
        "labels: expected class indices in [0, 5)",
    ),
    "load_images cifar10 without root": (
        lambda p, c: load_images("cifar10", size=32, channels=3),
        "data.root: expected the folder holding cifar-10-batches-bin",
    ),
    "from_pretrained classifier weights of another width": (
        lambda p, c: PurificationPipeline.from_pretrained(
            c / "diffusion", config=load_purification_config("tiny"), classifier=c / "cnn8.safetensors"
        ),
        "classifier: ",
    ),
    "load_images channels 2": (lambda p, c: load_images("digits", channels=2), "channels: expected 1 (grey) or 3"),
    "load_images corrupt image": (lambda p, c: load_images(str(c / "corrupt")), "x.png: not a readable image"),
    "check_threat eps nan": (lambda p, c: check_threat(float("nan"), "linf"), "eps (a perturbation budget)"),
    "AttackConfig alpha inf": (lambda p, c: AttackConfig(alpha=float("inf")), "AttackConfig.alpha"),
    "config sampler.steps 0": (
        lambda p, c: load_purification_config("tiny", ["sampler.steps=0"]),
        "sampler.steps (none = the paper's dt = 1e-3): expected an integer >= 1, got 0",
    ),
    "evaluate without a classifier": (
        lambda p, c: evaluate(
            PurificationPipeline.from_pretrained(c / "diffusion"), data=(_x(2, 1, 16, 16), torch.tensor([1, 2]))
        ),
        "classifier.weights: expected a classifier directory",
    ),
}


def _model(p):
    return PurifiedClassifier(p.purifier, p.classifier)


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_bad_input_names_the_argument(case, pipe, ckpt):
    call, message = API_CASES[case]
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        call(pipe, ckpt)
    assert message in str(info.value), str(info.value)


def test_api_converts_grey_digits_to_three_channels_and_says_so():
    notes = []
    x, _ = load_images("digits", split="test", size=8, channels=3, note=notes.append)
    grey, _ = load_images("digits", split="test", size=8, channels=1)
    assert x.shape == (300, 3, 8, 8) and torch.equal(x, grey.expand(-1, 3, -1, -1))
    assert notes == ["data: the digits are grey; repeated to 3 channels"]


def test_api_purify_steps_none_is_the_paper_dt():
    assert load_purification_config("tiny", ["sampler.steps=none"]).sampler.steps is None
