"""Bad input to omnidiffusion-audio and to WaveGrad's Python API: one clear error naming the argument, no traceback.

The checkpoint is an untrained tiny WaveGrad written once per module with save_pretrained (the CLI loads it like
a trained one); the wav files are written with soundfile. Nothing here needs espeak-ng or a GPU, except the one
test that runs the vocoder on CUDA when there is one.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from omnidiffusion.audio.cli import cli
from omnidiffusion.audio.evaluation import evaluate_model, search_model_schedule
from omnidiffusion.audio.mel import MelConfig
from omnidiffusion.audio.pipeline import WaveGrad
from omnidiffusion.audio.settings import AudioConfig
from omnidiffusion.audio.wavegrad import WaveGradNet
from omnidiffusion.core.config import load_config

SR = 22050
NO_GPU = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint and a folder of good and bad inputs, as {name: path}."""
    root = tmp_path_factory.mktemp("audio_bad_input")
    torch.manual_seed(0)
    kwargs = load_config(AudioConfig, "tiny", package="omnidiffusion.audio").model_kwargs()
    WaveGrad(WaveGradNet(**kwargs), MelConfig()).save_pretrained(root / "ckpt")
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(4000) / SR)).astype(np.float32)
    paths = {"ckpt": root / "ckpt", "good": root / "good.wav", "clips": root / "clips", "empty_dir": root / "none"}
    sf.write(paths["good"], tone, SR)
    paths["clips"].mkdir()
    sf.write(paths["clips"] / "a.wav", tone, SR)
    paths["empty_dir"].mkdir()
    for name, data, rate, subtype in (
        ("empty", np.zeros(0, np.float32), SR, "PCM_16"),
        ("stereo", np.stack([tone, tone], 1), SR, "PCM_16"),
        ("rate16k", tone, 16000, "PCM_16"),
        ("nan", np.where(np.arange(4000) == 100, np.nan, tone).astype(np.float32), SR, "FLOAT"),
    ):
        paths[name] = root / f"{name}.wav"
        sf.write(paths[name], data, rate, subtype=subtype)
    paths["text"] = root / "text.wav"
    paths["text"].write_text("not audio\n")
    paths["a_file"] = root / "a_file"
    paths["a_file"].write_text("x")
    return paths


def _vocode(f, *extra):
    return ["vocode", "--config", "tiny", "--checkpoint", f["ckpt"], "--out", f["ckpt"].parent / "out", *extra]


def _good(f, *extra):
    return _vocode(f, "--input", f["good"], *extra)


def _search(f, *extra):
    return ["search-schedule", "--checkpoint", f["ckpt"], "--wav-dir", f["clips"], "--set", "sampler.steps=1", *extra]


CLI_CASES = {
    "steps 0": (lambda f: _good(f, "--set", "sampler.steps=0"), "sampler.steps", "integer >= 1", "got 0"),
    "steps -1": (lambda f: _good(f, "--set", "sampler.steps=-1"), "sampler.steps", "integer >= 1"),
    "steps 2.5": (lambda f: _good(f, "--set", "sampler.steps=2.5"), "sampler.steps", "expected int", "2.5"),
    "steps 7": (lambda f: _good(f, "--set", "sampler.steps=7"), "sampler.steps", "[6, 25, 50, 1000]", "got 7"),
    "old iterations flag": (lambda f: _good(f, "--iterations", "6"), "unrecognized arguments: --iterations"),
    "device gpu": (lambda f: _good(f, "--device", "gpu"), "--device", "auto, cpu, cuda or cuda:N", "'gpu'"),
    "input missing": (lambda f: _vocode(f, "--input", f["ckpt"].parent / "nope.wav"), "--input", "nope.wav"),
    "input text": (lambda f: _vocode(f, "--input", f["text"]), "--input", "text.wav", "not a readable audio file"),
    "input empty dir": (lambda f: _vocode(f, "--input", f["empty_dir"]), "--input", "no .wav or .flac"),
    "input 0 samples": (lambda f: _vocode(f, "--input", f["empty"]), "--input", "at least 2 samples, got 0"),
    "input stereo": (lambda f: _vocode(f, "--input", f["stereo"]), "--input", "expected mono", "2 channels"),
    "input NaN": (lambda f: _vocode(f, "--input", f["nan"]), "--input", "nan.wav", "expected finite samples"),
    "checkpoint missing": (
        lambda f: ["vocode", "--checkpoint", f["ckpt"].parent / "gone", "--input", f["good"]],
        "--checkpoint",
        "no such directory",
    ),
    "checkpoint not a checkpoint": (
        lambda f: ["evaluate", "--checkpoint", f["clips"], "--wav-dir", f["clips"]],
        "--checkpoint",
        "config.json",
    ),
    "out is a file": (lambda f: [*_good(f)[:-4], "--input", f["good"], "--out", f["a_file"]], "--out", "a folder"),
    "set dpm steps 0": (
        lambda f: _good(f, "--set", "sampler.method=dpm++2m", "--set", "sampler.steps=0"),
        "sampler.steps",
        "integer >= 1",
    ),
    "set dpm with betas": (
        lambda f: _good(f, "--set", "sampler.method=dpm++2m", "--set", "sampler.betas=0.1,0.5"),
        "sampler.betas",
        "'ddpm'",
    ),
    "set ddpm grid": (lambda f: _good(f, "--set", "sampler.grid=karras"), "sampler.grid", "'trailing'"),
    "set grid unknown": (lambda f: _good(f, "--set", "sampler.grid=square"), "sampler.grid", "'logsnr'"),
    "old sample table": (lambda f: _good(f, "--set", "sample.iterations=6"), "'sample'", "sampler"),
    "set betas out of range": (lambda f: _good(f, "--set", "sampler.betas=0.5,2.0"), "sampler.betas", "(0, 1)"),
    "set betas nan": (lambda f: _good(f, "--set", "sampler.betas=nan"), "sampler.betas", "finite"),
    "set seed -1": (lambda f: _good(f, "--set", "sampler.seed=-1"), "sampler.seed", "integer in [0,"),
    "set method": (lambda f: _good(f, "--set", "sampler.method=ddim"), "sampler.method", "'dpm++2m'"),
    "set unknown key": (lambda f: _good(f, "--set", "sampler.step=3"), "'step'", "valid keys"),
    "evaluate limit 0": (
        lambda f: ["evaluate", "--checkpoint", f["ckpt"], "--limit", "0"],
        "--limit",
        "integer >= 1",
    ),
    "evaluate limit -1": (
        lambda f: ["evaluate", "--checkpoint", f["ckpt"], "--wav-dir", f["clips"], "--limit", "-1"],
        "--limit",
        "integer >= 1",
    ),
    "evaluate empty wav-dir": (
        lambda f: ["evaluate", "--checkpoint", f["ckpt"], "--wav-dir", f["empty_dir"]],
        "--wav-dir",
        "no .wav or .flac",
    ),
    "search steps 0": (lambda f: _search(f, "--set", "sampler.steps=0"), "sampler.steps", "integer >= 1"),
    "search old steps flag": (lambda f: [*_search(f), "--steps", "6"], "unrecognized arguments: --steps"),
    "search sweeps 0": (lambda f: _search(f, "--sweeps", "0"), "--sweeps", "integer >= 1"),
    "search max-seconds 0": (lambda f: _search(f, "--max-seconds", "0"), "--max-seconds", "(0, inf)"),
    "search max-seconds -1": (lambda f: _search(f, "--max-seconds", "-1"), "--max-seconds", "(0, inf)"),
    "search max-seconds nan": (lambda f: _search(f, "--max-seconds", "nan"), "--max-seconds", "finite"),
    "search max-seconds tiny": (lambda f: _search(f, "--max-seconds", "1e-5"), "--max-seconds", "2 samples"),
    "search limit -1": (lambda f: _search(f, "--limit", "-1"), "--limit", "integer >= 1"),
    "train limit -1": (lambda f: ["train", "--config", "tiny", "--set", "data.limit=-1"], "data.limit", ">= 1"),
    "train segment 0": (
        lambda f: ["train", "--config", "tiny", "--set", "data.segment_frames=0"],
        "data.segment_frames",
        ">= 1",
    ),
    "train source missing": (
        lambda f: ["train", "--config", "tiny", "--set", f"data.source={f['empty_dir'] / 'x'}"],
        "data.source",
        "no such folder",
    ),
    "train device gpu": (lambda f: ["train", "--config", "tiny", "--device", "gpu"], "--device", "cuda:N"),
    "train schedule name": (
        lambda f: ["train", "--config", "tiny", "--set", "schedule.name=wavegrad"],
        "schedule.name",
        "'linear'",
    ),
    "train schedule timesteps 0": (
        lambda f: ["train", "--config", "tiny", "--set", "schedule.timesteps=0"],
        "schedule.timesteps",
        "integer >= 1",
    ),
    "train schedule bounds": (
        lambda f: ["train", "--config", "tiny", "--set", "schedule.beta_start=0.1"],
        "schedule.beta_end",
        ">= schedule.beta_start",
    ),
    "train old T key": (lambda f: ["train", "--config", "tiny", "--set", "schedule.T=50"], "'T'", "timesteps"),
    "train old out key": (lambda f: ["train", "--config", "tiny", "--set", "out=runs/x"], "'out'"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_refuses(case, files, cli_error):
    argv, *fragments = CLI_CASES[case]
    cli_error(cli, argv(files), *fragments)


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["vocode", "evaluate", "search-schedule", "train"])
def test_cli_refuses_a_missing_gpu(command, files, cli_error):
    argv = {"vocode": _good(files), "evaluate": ["evaluate", "--checkpoint", files["ckpt"]]}.get(command)
    argv = argv or ([*_search(files)] if command == "search-schedule" else ["train", "--config", "tiny"])
    cli_error(cli, [*argv, "--device", "cuda"], "--device", "no CUDA GPU is usable")


def test_cli_resamples_another_rate_and_says_so(files, capsys):
    """A 16 kHz wav is resampled to the model's 22,050 Hz (torchaudio: ceil(N * 22050 / 16000) samples)."""
    out = files["ckpt"].parent / "resampled"
    assert cli.main([str(a) for a in _vocode(files, "--input", files["rate16k"], "--out", out, "--device", "cpu")]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "16000 Hz to 22050 Hz" in notes[0] and "rate16k.wav" in notes[0]
    wav, rate = sf.read(out / "rate16k.wav")
    assert rate == SR and wav.shape == (math.ceil(4000 * SR / 16000),)


@pytest.fixture(scope="module")
def model(files):
    return WaveGrad.from_pretrained(files["ckpt"])


@pytest.fixture(scope="module")
def mel(model, files):
    wav, _ = sf.read(files["good"], dtype="float32")
    return model.mel(torch.from_numpy(wav))[0]  # (80, 16)


def _nan(mel):
    bad = mel.clone()
    bad[3, 4] = float("nan")
    return bad


API_CASES = {
    "from_pretrained missing": (lambda m, x, f: WaveGrad.from_pretrained(f["ckpt"].parent / "gone"), "gone"),
    "from_pretrained device gpu": (lambda m, x, f: WaveGrad.from_pretrained(f["ckpt"], device="gpu"), "device:"),
    "mel 79 bands": (lambda m, x, f: m.vocode(x[:79]), "mel:", "expected 80 mel bands", "got 79"),
    "mel 1-D": (lambda m, x, f: m.vocode(x[:, 0]), "mel:", "(n_mels, frames)", "got (80,)"),
    "mel 4-D": (lambda m, x, f: m.vocode(x[None, None]), "mel:", "(B, n_mels, frames)"),
    "mel no frames": (lambda m, x, f: m.vocode(x[:, :0]), "mel:", "at least one frame"),
    "mel NaN": (lambda m, x, f: m.vocode(_nan(x)), "mel:", "expected finite values"),
    "mel int": (lambda m, x, f: m.vocode(x.long()), "mel:", "float", "torch.int64"),
    "mel numpy": (lambda m, x, f: m.vocode(x.numpy()), "mel:", "torch.Tensor", "ndarray"),
    "iterations 0": (lambda m, x, f: m.vocode(x, iterations=0), "iterations:", "integer >= 1", "got 0"),
    "iterations 7": (lambda m, x, f: m.vocode(x, iterations=7), "iterations:", "[6, 25, 50, 1000]", "got 7"),
    "iterations 6.0": (lambda m, x, f: m.vocode(x, iterations=6.0), "iterations:", "integer", "got 6.0"),
    "iterations str": (lambda m, x, f: m.vocode(x, iterations="6"), "iterations:", "integer", "'6'"),
    "dpm steps 0": (lambda m, x, f: m.vocode(x, method="dpm++2m", steps=0), "steps:", "integer >= 1"),
    "dpm steps 2.5": (lambda m, x, f: m.vocode(x, method="dpm++2m", steps=2.5), "steps:", "got 2.5"),
    "dpm iterations 0": (lambda m, x, f: m.vocode(x, method="dpm++2m", iterations=0), "iterations:", ">= 1"),
    "dpm with betas": (lambda m, x, f: m.vocode(x, method="dpm++2m", betas=[0.1]), "betas:", "'ddpm'"),
    "ddpm with steps": (lambda m, x, f: m.vocode(x, steps=3), "steps:", "'dpm++2m'"),
    "method": (lambda m, x, f: m.vocode(x, method="ddim"), "method:", "['ddpm', 'dpm++2m']", "'ddim'"),
    "betas out of range": (lambda m, x, f: m.vocode(x, betas=[0.5, 1.5]), "betas:", "(0, 1)"),
    "betas empty": (lambda m, x, f: m.vocode(x, betas=[]), "betas:", "at least one beta"),
    "seed -1": (lambda m, x, f: m.vocode(x, seed=-1), "seed:", "integer in [0,", "got -1"),
    "length 0": (lambda m, x, f: m.vocode(x, length=0), "length:", "[1, 4096]", "got 0"),
    "length too long": (lambda m, x, f: m.vocode(x, length=4097), "length:", "[1, 4096]", "got 4097"),
    "length float": (lambda m, x, f: m.vocode(x, length=100.0), "length:", "got 100.0"),
    "clip str": (lambda m, x, f: m.vocode(x, clip="no"), "clip:", "True or False"),
    "resynthesize stereo": (lambda m, x, f: m.resynthesize(torch.zeros(2, 4000)), "audio:", "mono"),
    "resynthesize NaN file": (lambda m, x, f: m.resynthesize(f["nan"]), "nan.wav", "expected finite samples"),
    "resynthesize int16": (lambda m, x, f: m.resynthesize(torch.zeros(4000, dtype=torch.int16)), "audio:", "float"),
    "evaluate no clips": (lambda m, x, f: evaluate_model(m, []), "clips:", "at least one"),
    "evaluate stereo clip": (lambda m, x, f: evaluate_model(m, [torch.zeros(2, 4000)]), "clips[0]:", "mono"),
    "search steps 0": (lambda m, x, f: search_model_schedule(m, [x[0]], steps=0), "steps:", ">= 1"),
    "search sweeps 0": (lambda m, x, f: search_model_schedule(m, [x[0]], sweeps=0), "sweeps:", ">= 1"),
    "search max_seconds 0": (lambda m, x, f: search_model_schedule(m, [x[0]], max_seconds=0), "max_seconds:", "(0,"),
    "search max_seconds nan": (
        lambda m, x, f: search_model_schedule(m, [x[0]], max_seconds=float("nan")),
        "max_seconds:",
        "finite",
    ),
    "search max_seconds tiny": (
        lambda m, x, f: search_model_schedule(m, [torch.zeros(4000)], max_seconds=1e-5),
        "max_seconds:",
        "2 samples",
    ),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_refuses(case, model, mel, files):
    call, *fragments = API_CASES[case]
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        call(model, mel, files)
    for fragment in fragments:
        assert fragment in str(e.value), f"{fragment!r} not in {str(e.value)!r}"


def test_searched_schedule_counts_are_valid_iterations(model, mel):
    """A count searched for this checkpoint is accepted; the error for others lists it with the named ones."""
    searched = WaveGrad(model.net, model.mel_config, {7: [1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.2, 0.5]})
    out = searched.vocode(mel, iterations=7, seed=0)
    # the searched table is what vocode walks: the same draw as passing those betas explicitly
    assert torch.equal(out, model.vocode(mel, betas=searched.schedules[7], seed=0))
    with pytest.raises(ValueError, match=re.escape("iterations: expected one of [6, 7, 25, 50, 1000]")):
        searched.vocode(mel, iterations=8)


def test_vocode_is_unchanged_by_the_checks(model, mel):
    """Good input gives the schedule's sampler output: iterations=6 equals the explicit default 6-step betas."""
    from omnidiffusion.audio.noise import inference_betas

    a = model.vocode(mel, iterations=6, seed=3, length=4000)
    b = model.vocode(mel, betas=inference_betas(6).tolist(), seed=3, length=4000)
    assert a.shape == (4000,) and torch.equal(a, b)


@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_vocode_on_cuda_is_seeded(files, mel, model):
    """On a GPU the noise still comes from the CPU generator seeded with `seed` (core draws on the generator's
    device and moves the draw): same seed, same wav, and the CPU's wav up to the network's float differences."""
    gpu = WaveGrad.from_pretrained(files["ckpt"], device="cuda")
    assert gpu.device.type == "cuda"
    a, b, c = (gpu.vocode(mel, seed=s) for s in (5, 5, 6))
    assert a.device.type == "cpu" and a.shape == (mel.shape[-1] * 256,)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool(torch.isfinite(a).all())
    torch.testing.assert_close(a, model.vocode(mel, seed=5), atol=1e-3, rtol=0)
