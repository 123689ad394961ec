"""CIFAR-10 binary (`cifar-10-batches-bin`) read from miniature files written here byte by byte.

Each record is written with an explicit loop over (channel, row, column) from a closed-form pixel value, so the
checks compare the loader against the format's definition (1 label byte, then the R, G and B planes of 32x32 in
row-major order), not against its own reshape. No test unpickles: pickle and torch.load are disabled around the
loader, and a pickled python-version folder holding a trap object is refused without running it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from omnidiffusion.purification.data import load_images
from omnidiffusion.vision.cifar10 import (
    CLASSES,
    RECORD_BYTES,
    cifar10_binary,
    cifar10_folder,
    read_batch,
    read_class_names,
)

TRAIN_RECORDS = 3  # per data_batch_k.bin
TEST_RECORDS = 4


def pixel(file: int, i: int, c: int, h: int, w: int) -> int:
    """The byte written for record i of batch file `file` at channel c, row h, column w."""
    return (37 * file + 11 * i + 80 * c + 5 * h + 3 * w) % 256


def label(file: int, i: int) -> int:
    return (file + 3 * i) % 10


def write_file(path: Path, file: int, n: int) -> None:
    out = bytearray()
    for i in range(n):
        out.append(label(file, i))
        for c in range(3):  # R plane, G plane, B plane
            for h in range(32):
                for w in range(32):
                    out.append(pixel(file, i, c, h, w))
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """<root>/cifar-10-batches-bin with data_batch_1..5.bin (3 records each), test_batch.bin (4) and the meta file."""
    base = tmp_path_factory.mktemp("cifar")
    folder = base / "cifar-10-batches-bin"
    folder.mkdir()
    for k in range(1, 6):
        write_file(folder / f"data_batch_{k}.bin", k, TRAIN_RECORDS)
    write_file(folder / "test_batch.bin", 0, TEST_RECORDS)
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
    return base


def expected(file: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.array(
        [[[[pixel(file, i, c, h, w) for w in range(32)] for h in range(32)] for c in range(3)] for i in range(n)]
    )
    return x, np.array([label(file, i) for i in range(n)])


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every unpickling entry point raises while the loader runs."""

    def refuse(*args, **kwargs):
        raise AssertionError("the CIFAR-10 binary loader must not unpickle")

    for mod, name in ((pickle, "load"), (pickle, "loads"), (torch, "load"), (np, "load")):
        monkeypatch.setattr(mod, name, refuse)


def test_record_size_is_the_format_s():
    assert RECORD_BYTES == 1 + 32 * 32 * 3 == 3073


def test_test_split_reads_exactly_the_bytes_written(root, no_unpickling):
    x, y = cifar10_binary(root, "test")
    want_x, want_y = expected(0, TEST_RECORDS)
    assert x.shape == (TEST_RECORDS, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(y, torch.from_numpy(want_y)) and y.dtype == torch.int64
    assert np.array_equal(np.round(x.numpy() * 255).astype(np.int64), want_x)
    assert torch.equal(x * 255, torch.from_numpy(want_x).float())  # byte / 255, exactly


def test_train_split_is_the_five_batches_in_order(root, no_unpickling):
    x, y = cifar10_binary(root / "cifar-10-batches-bin", "train")  # the folder itself works too
    parts = [expected(k, TRAIN_RECORDS) for k in range(1, 6)]
    assert x.shape == (5 * TRAIN_RECORDS, 3, 32, 32)
    assert np.array_equal(np.round(x.numpy() * 255).astype(np.int64), np.concatenate([p[0] for p in parts]))
    assert np.array_equal(y.numpy(), np.concatenate([p[1] for p in parts]))
    x_all, _ = cifar10_binary(root, "all")
    assert torch.equal(x_all[: len(x)], x) and len(x_all) == len(x) + TEST_RECORDS


def test_read_batch_gives_the_raw_bytes(root):
    x, y = read_batch(root / "cifar-10-batches-bin" / "data_batch_2.bin")
    want_x, want_y = expected(2, TRAIN_RECORDS)
    assert x.dtype == torch.uint8 and np.array_equal(x.numpy(), want_x) and np.array_equal(y.numpy(), want_y)


def test_grey_is_itu_601_luma_and_resizing_is_announced(root):
    notes = []
    grey, _ = cifar10_binary(root, "test", channels=1, note=notes.append)
    want, _ = expected(0, TEST_RECORDS)
    luma = (0.299 * want[:, 0] + 0.587 * want[:, 1] + 0.114 * want[:, 2]) / 255.0
    assert grey.shape == (TEST_RECORDS, 1, 32, 32)
    assert np.allclose(grey[:, 0].numpy(), luma, atol=1e-6)
    small, _ = cifar10_binary(root, "test", size=16)
    assert small.shape == (TEST_RECORDS, 3, 16, 16) and 0 <= small.min() and small.max() <= 1
    assert len(notes) == 1 and "converted to 32x32, 1 channel(s)" in notes[0]


def test_class_names_from_the_meta_file(root, tmp_path):
    assert read_class_names(root) == CLASSES
    bad = tmp_path / "cifar-10-batches-bin"
    bad.mkdir()
    write_file(bad / "test_batch.bin", 0, 1)
    assert read_class_names(tmp_path) == CLASSES  # absent: the standard names
    (bad / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="expected 10 class names, one per line, got 2"):
        read_class_names(tmp_path)


def test_load_images_reaches_the_binary_loader_every_way(root, no_unpickling):
    x, y = cifar10_binary(root, "test")
    for spec, kwargs in (
        ("cifar10", {"root": root}),
        (f"cifar10:{root}", {}),
        (str(root / "cifar-10-batches-bin"), {}),  # a folder, told apart from ImageFolder by its files
    ):
        got, labels = load_images(spec, split="test", size=32, channels=3, **kwargs)
        assert torch.equal(got, x) and torch.equal(labels, y)


@pytest.mark.parametrize(
    "length, fragment",
    [
        (RECORD_BYTES * 2 - 1, "got 6145 bytes (1 records + 3072)"),
        (RECORD_BYTES + 1, "got 3074 bytes (1 records + 1)"),
        (0, "got 0 bytes"),
    ],
)
def test_a_file_of_the_wrong_length_is_refused(tmp_path, length, fragment):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(bytes(length))
    with pytest.raises(ValueError) as info:
        cifar10_binary(tmp_path, "test")
    msg = str(info.value)
    assert "test_batch.bin" in msg and "3073-byte CIFAR-10 records" in msg and fragment in msg, msg


def test_a_label_byte_out_of_range_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    write_file(folder / "test_batch.bin", 0, 2)
    raw = bytearray((folder / "test_batch.bin").read_bytes())
    raw[RECORD_BYTES] = 57  # the label byte of record 1 (CIFAR-100 files have two label bytes)
    (folder / "test_batch.bin").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"record 1 \(byte offset 3073\): expected a label byte 0..9, got 57"):
        cifar10_binary(tmp_path, "test")


def test_missing_files_and_folders_are_named(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="data.root: .*nope is not a directory"):
        cifar10_binary(tmp_path / "nope")
    (tmp_path / "other").mkdir()
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 binary files"):
        cifar10_folder(tmp_path / "other")
    only_test = tmp_path / "only" / "cifar-10-batches-bin"
    only_test.mkdir(parents=True)
    write_file(only_test / "test_batch.bin", 0, 1)
    with pytest.raises(FileNotFoundError, match=r"missing \['data_batch_1.bin'"):
        cifar10_binary(tmp_path / "only", "train")
    with pytest.raises(ValueError, match="split: expected 'train', 'test' or 'all', got 'val'"):
        cifar10_binary(root, "val")
    with pytest.raises(ValueError, match=r"data.root: expected the folder holding cifar-10-batches-bin"):
        load_images("cifar10", split="test", size=32, channels=3)


class _Trap:
    """Unpickling this creates the file `path`: proof that something ran pickle on it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_the_pickled_python_version_is_never_unpickled(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    sentinel = tmp_path / "unpickled"
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (folder / name).write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "trap": _Trap(sentinel)}))
    for spec in (f"cifar10:{tmp_path}", str(folder), f"torchvision:CIFAR10:{tmp_path}"):
        with pytest.raises(ValueError) as info:
            load_images(spec, split="test", size=32, channels=3)
        assert "never" in str(info.value) and "binary version" in str(info.value), str(info.value)
    assert not sentinel.exists()


def test_cifar10_paper_config_trains_and_evaluates_on_the_binary_files(root, tmp_path, capsys):
    """The paper recipe's wiring at toy size: its data (binary, data.root), its classifier family and eps = 8/255."""
    import json

    from safetensors.torch import save_file

    from omnidiffusion.core.io import save_pretrained
    from omnidiffusion.purification.cli import cli
    from omnidiffusion.purification.wideresnet import WideResNet

    vision = pytest.importorskip("omnidiffusion.vision")
    small = ["--set", f"data.root={root}", "--set", "classifier.arch=wrn-10-1"]
    train = ["train.steps=2", "train.batch_size=4", "train.amp=none", "train.warmup_steps=0", "train.progress=false"]
    argv = ["train-classifier", "--config", "cifar10-paper", "--out", tmp_path / "run", *small]
    assert cli.main([str(a) for a in argv + [x for t in train for x in ("--set", t)]]) == 0
    assert (tmp_path / "run" / "classifier" / "model.safetensors").is_file()
    torch.manual_seed(0)
    unet = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_resolutions": []}
    save_pretrained(vision.ImageDDPM(32, 3, {**unet, "norm_groups": 4}), tmp_path / "ddpm")
    save_file(WideResNet(10, 1).state_dict(), tmp_path / "wrn.safetensors")
    capsys.readouterr()
    fast = ["--quiet"] + [
        x for s in ("evaluate.n=3", "evaluate.attacks=pgd", "sampler.steps=2", "attack.steps=1") for x in ("--set", s)
    ]
    for classifier in (tmp_path / "run" / "classifier", tmp_path / "wrn.safetensors"):
        argv = ["evaluate", "--config", "cifar10-paper", "--checkpoint", tmp_path / "ddpm"]
        argv += ["--set", f"classifier.weights={classifier}"]
        assert cli.main([str(a) for a in argv + small + fast]) == 0
        report = json.loads(capsys.readouterr().out)
        proto = report["protocol"]
        assert proto["data"] == "cifar10" and proto["data_root"] == str(root) and proto["n"] == 3
        assert proto["eps"] == [8 / 255] and proto["norm"] == "linf" and proto["subset_seed"] == 0
        assert proto["purifier"]["t_star"] == 0.1 and "robust_accuracy[pgd, eps=0.0313725, full]" in report["model"]
