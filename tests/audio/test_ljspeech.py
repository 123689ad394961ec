"""LJSpeech on disk: a miniature copy written here (metadata.csv, 16-bit PCM wavs written with the stdlib `wave`
module, HiFi-GAN's split files) is read back exactly, malformed copies are refused with an error naming the file
and what was wrong, nothing is unpickled, and `train/evaluate --config ljspeech-paper` run on it.
"""

from __future__ import annotations

import json
import math
import pickle
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from omnidiffusion.audio.cli import cli
from omnidiffusion.audio.data import FileSegmentDataset, find_audio, read_audio
from omnidiffusion.audio.evaluation import PROTOCOL_METRICS
from omnidiffusion.audio.ljspeech import ljspeech_split, read_ljspeech
from omnidiffusion.audio.mel import MelConfig, log_mel

SR = 22050
ROWS = [  # (id, raw text, normalized text), in the real metadata.csv's style: '|'-separated, quotes unescaped
    (
        "LJ001-0001",
        "Printing, in the only sense with which we are at present concerned,",
        "Printing, in the only sense with which we are at present concerned,",
    ),
    (
        "LJ001-0002",
        'in being comparatively modern. "Said he," in 1869;',
        'in being comparatively modern. "Said he," in eighteen sixty-nine;',
    ),
    ("LJ002-0003", "Mr. Müller paid £5 at No. 10", "Mister Müller paid five pounds at number ten"),
    ("LJ050-0278", "the recommendations", "the recommendations"),
]
LENGTHS = [5000, 3000, 4100, 2600]
VALIDATION = ["LJ002-0003"]
TRAINING = ["LJ050-0278", "LJ001-0001", "LJ001-0002"]  # the split file's order, not the metadata's


def write_wav(path: Path, samples: np.ndarray, rate: int = SR, channels: int = 1) -> None:
    """16-bit little-endian PCM RIFF/WAVE, as LJSpeech ships (written with the stdlib, not the code under test)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def make_ljspeech(root: Path, rate: int = SR, *, splits: bool = True) -> dict[str, np.ndarray]:
    """A 4-clip LJSpeech-1.1 copy under root; returns the int16 samples written per id."""
    (root / "wavs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for (clip_id, _, _), n in zip(ROWS, LENGTHS, strict=True):
        t = np.arange(n) / rate
        x = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.standard_normal(n)
        written[clip_id] = np.round(x * 32767).astype(np.int16)
        write_wav(root / "wavs" / f"{clip_id}.wav", written[clip_id], rate)
    (root / "metadata.csv").write_text("".join(f"{a}|{b}|{c}\n" for a, b, c in ROWS), encoding="utf-8")
    if splits:  # HiFi-GAN's split files: `id|text` per line
        texts = {r[0]: r[1] for r in ROWS}
        (root / "training.txt").write_text("".join(f"{i}|{texts[i]}\n" for i in TRAINING), encoding="utf-8")
        (root / "validation.txt").write_text("".join(f"{i}|{texts[i]}\n" for i in VALIDATION), encoding="utf-8")
    return written


@pytest.fixture
def lj(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    return root, make_ljspeech(root)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every unpickling entry point raises: the code under test must read text, wav and safetensors only."""

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    class RefusingUnpickler(pickle.Unpickler):  # a class still, so that modules may subclass it on import
        def load(self):
            refuse()

    for obj, name in ((pickle, "load"), (pickle, "loads"), (torch, "load"), (np, "load")):
        monkeypatch.setattr(obj, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)


def test_reads_exactly_what_was_written(lj, no_unpickling):
    root, written = lj
    clips = read_ljspeech(root)
    assert [(c.id, c.text, c.normalized_text) for c in clips] == ROWS
    assert [c.path for c in clips] == [root / "wavs" / f"{r[0]}.wav" for r in ROWS]
    for c in clips:
        np.testing.assert_array_equal(read_audio(c.path, SR).numpy(), written[c.id].astype(np.float32) / 32768)
    assert [c.id for c in ljspeech_split(root, "train")] == TRAINING
    assert [c.id for c in ljspeech_split(root, "validation")] == VALIDATION
    assert [c.id for c in ljspeech_split(root, "all")] == [r[0] for r in ROWS]
    assert find_audio(root) == [c.path for c in clips]
    # The split files may live in another folder (they are not part of the LJSpeech archive).
    elsewhere = root.parent / "splits"
    elsewhere.mkdir()
    for name in ("training.txt", "validation.txt"):
        (elsewhere / name).write_text((root / name).read_text(encoding="utf-8"), encoding="utf-8")
        (root / name).unlink()
    assert [c.id for c in ljspeech_split(root, "validation", split_dir=elsewhere)] == VALIDATION


def test_disk_segments_are_slices_of_the_files(lj, no_unpickling):
    root, written = lj
    cfg = MelConfig.hifigan()
    ds = FileSegmentDataset([c.path for c in read_ljspeech(root)], cfg, segment_frames=8)
    torch.manual_seed(0)
    for i in (0, 1, 2):
        item = ds[i]
        audio = item["audio"][0].numpy()
        assert item["audio"].shape == (1, 8 * 256) and item["mel"].shape == (80, 8)
        full = written[ROWS[i][0]].astype(np.float32) / 32768
        windows = np.lib.stride_tricks.sliding_window_view(full, 2048)  # every 2,048-sample slice of the file
        assert (windows == audio).all(axis=1).any()
        torch.testing.assert_close(item["mel"], log_mel(item["audio"][0], cfg)[0])
    short = ds[3]  # 2,600 samples: a segment of 2,048 fits; a longer segment is zero-padded
    long = FileSegmentDataset([ds.paths[3]], cfg, segment_frames=16)[0]["audio"][0]
    np.testing.assert_array_equal(long[:2600].numpy(), written["LJ050-0278"].astype(np.float32) / 32768)
    assert long[2600:].abs().sum() == 0 and short["audio"].shape == (1, 2048)


def test_other_rates_are_resampled_on_load(tmp_path):
    root = tmp_path / "lj16k"
    (root / "wavs").mkdir(parents=True)
    n, rate, f = 8000, 16000, 440.0
    tone = np.round(0.5 * 32767 * np.sin(2 * np.pi * f * np.arange(n) / rate)).astype(np.int16)
    write_wav(root / "wavs" / "LJ001-0001.wav", tone, rate)
    (root / "metadata.csv").write_text("LJ001-0001|a tone|a tone\n")
    wav = read_audio(read_ljspeech(root)[0].path, SR).numpy()
    assert abs(wav.size - n * SR / rate) <= 1
    expected = 0.5 * np.sin(2 * np.pi * f * np.arange(wav.size) / SR)
    np.testing.assert_allclose(wav[200:-200], expected[200:-200], atol=5e-3)
    seg = FileSegmentDataset([root / "wavs" / "LJ001-0001.wav"], MelConfig.hifigan(), segment_frames=4)[0]
    assert seg["audio"].shape == (1, 1024)


def _corrupt(root: Path, case: str) -> None:
    meta = root / "metadata.csv"
    lines = meta.read_text(encoding="utf-8").splitlines()
    if case == "four fields":
        lines[1] += "|extra"
    elif case == "one field":
        lines[1] = "LJ001-0002"
    elif case == "path id":
        lines[1] = "../../etc/passwd|x|x"
    elif case == "duplicate id":
        lines[2] = lines[0]
    elif case == "missing wav":
        (root / "wavs" / "LJ001-0002.wav").unlink()
    elif case == "not utf-8":
        meta.write_bytes(b"LJ001-0001|caf\xe9|caf\xe9\n")
        return
    elif case == "empty metadata":
        lines = []
    elif case == "no wavs folder":
        for p in (root / "wavs").iterdir():
            p.unlink()
        (root / "wavs").rmdir()
    meta.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


METADATA_CASES = {
    "four fields": ("metadata.csv: line 2", "expected 3 '|'-separated fields", "got 4"),
    "one field": ("metadata.csv: line 2", "got 1"),
    "path id": ("metadata.csv: line 2", "expected a clip id", "'../../etc/passwd'"),
    "duplicate id": ("metadata.csv: line 3", "'LJ001-0001' repeats line 1"),
    "missing wav": ("metadata.csv: line 2", "LJ001-0002.wav does not exist"),
    "not utf-8": ("metadata.csv", "expected UTF-8 text"),
    "empty metadata": ("metadata.csv", "at least one"),
    "no wavs folder": ("wavs", "not found"),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_malformed_metadata_is_refused(tmp_path, case):
    root = tmp_path / "lj"
    make_ljspeech(root)
    _corrupt(root, case)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        read_ljspeech(root)
    for fragment in METADATA_CASES[case]:
        assert fragment in str(info.value), str(info.value)


SPLIT_CASES = {
    "unknown id": ("LJ999-0001|x\n", "validation.txt: line 1", "'LJ999-0001' is not in metadata.csv"),
    "listed twice": ("LJ002-0003\nLJ002-0003\n", "validation.txt: line 2", "listed twice"),
    "overlap": ("LJ001-0001|x\n", "validation.txt: shares 1 clip(s) with training.txt", "'LJ001-0001'"),
    "empty": ("\n", "validation.txt", "empty split file"),
}


@pytest.mark.parametrize("case", sorted(SPLIT_CASES))
def test_malformed_split_files_are_refused(lj, case):
    root, _ = lj
    text, *fragments = SPLIT_CASES[case]
    (root / "validation.txt").write_text(text)
    with pytest.raises(ValueError) as info:
        ljspeech_split(root, "validation")
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    (root / "validation.txt").unlink()
    with pytest.raises(FileNotFoundError, match="validation.txt: split file not found.*HiFi-GAN"):
        ljspeech_split(root, "validation")


def test_malformed_wavs_are_refused(lj):
    root, written = lj
    bad = root / "wavs" / "LJ001-0002.wav"
    bad.write_bytes(bad.read_bytes()[:30])  # the RIFF header cut inside its fmt chunk
    stereo = root / "wavs" / "LJ002-0003.wav"
    write_wav(stereo, np.repeat(written["LJ002-0003"], 2), channels=2)
    with pytest.raises(ValueError, match=r"LJ001-0002\.wav: not a readable audio file"):
        FileSegmentDataset([bad], MelConfig.hifigan(), 8)
    with pytest.raises(ValueError, match=r"LJ002-0003\.wav: expected mono audio, got 2 channels"):
        FileSegmentDataset([stereo], MelConfig.hifigan(), 8)
    with pytest.raises(ValueError, match=r"LJ001-0002\.wav: not a readable audio file"):
        read_audio(bad, SR)


TINY = [
    "--set", "model.mel_channels=16", "--set", "model.up_channels=[16,16,8,8,8]",
    "--set", "model.down_channels=[4,8,8,8,16]", "--set", "data.segment_frames=8",
]  # fmt: skip
FAST = ["--set", "train.steps=2", "--set", "train.batch_size=2", "--set", "train.num_workers=0",
        "--set", "train.amp=none", "--set", "train.progress=false", "--set", "train.ckpt_every=2"]  # fmt: skip


def test_paper_recipe_trains_and_evaluates_on_the_copy(lj, tmp_path, capsys, no_unpickling):
    root, written = lj
    out = tmp_path / "run"
    argv = ["train", "--config", "ljspeech-paper", "--set", f"data.root={root}", *TINY, *FAST, "--out", str(out)]
    assert cli.main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["step"] == 2 and res["clips"] == len(TRAINING) and "split train" in res["data"]
    assert (out / "model.safetensors").is_file() and np.isfinite(res["loss"])
    saved = json.loads((out / "config.json").read_text())["metadata"]["mel"]
    assert saved == {**MelConfig.hifigan().__dict__}
    assert json.loads((out / "run_config.json").read_text())["config"]["data"]["root"] == str(root)
    argv = ["evaluate", "--checkpoint", str(out)]  # the stored run config brings data.root and the split
    assert cli.main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["protocol"]["clips"] == len(VALIDATION) and "split validation" in res["protocol"]["data"]
    assert res["protocol"]["seconds"] == pytest.approx(LENGTHS[2] / SR)
    for system in (res["model"], res["baselines"]["griffin_lim_32"]):
        assert set(system) == set(PROTOCOL_METRICS) and all(math.isfinite(v) for v in system.values())
    assert 0 <= res["model"]["ffe"] <= 1
    # Griffin-Lim from the Slaney mel, with its half-hop delay, reproduces the 180 Hz tone's pitch and spectrum
    gl = res["baselines"]["griffin_lim_32"]
    assert gl["ffe"] < 0.2 and gl["log_mel_distance"] < res["model"]["log_mel_distance"]


def test_paper_recipe_bad_input(lj, tmp_path, cli_error):
    root, _ = lj
    train = ["train", "--config", "ljspeech-paper", *TINY, *FAST, "--out", tmp_path / "run"]
    cli_error(cli, train, "data.root", "expected the LJSpeech-1.1 folder", "--set data.root=DIR")
    cli_error(cli, [*train, "--set", f"data.root={tmp_path / 'nowhere'}"], "data.root", "no such folder")
    (root / "training.txt").unlink()
    cli_error(cli, [*train, "--set", f"data.root={root}"], "data.root", "training.txt: split file not found")
    _corrupt(root, "four fields")
    cli_error(cli, [*train, "--set", f"data.root={root}"], "data.root", "metadata.csv: line 2", "got 4")
    cli_error(cli, [*train, "--set", "data.load=tape"], "data.load", "'memory', 'disk'")
    cli_error(cli, [*train, "--set", "mel.style=librosa"], "mel.style", "'torchaudio', 'hifigan'")
