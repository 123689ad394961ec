"""The loss falls on a tiny overfit run; the CLI trains, resumes, vocodes, evaluates and searches in a tmp dir;
`training.train` stores the run config that the commands and `WaveGrad.from_pretrained` start from."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch

from omnidiffusion.audio.cli import cli
from omnidiffusion.audio.data import SegmentDataset
from omnidiffusion.audio.demo_data import synthetic_clip
from omnidiffusion.audio.evaluation import PROTOCOL_METRICS
from omnidiffusion.audio.mel import MelConfig
from omnidiffusion.audio.pipeline import WaveGrad
from omnidiffusion.audio.settings import AudioConfig
from omnidiffusion.audio.task import wavegrad_loss
from omnidiffusion.audio.training import train
from omnidiffusion.audio.wavegrad import WaveGradNet
from omnidiffusion.core.config import load_config
from omnidiffusion.core.io import load_run_config


def test_tiny_overfit_loss_falls():
    torch.manual_seed(0)
    clip = synthetic_clip(22050, 0.3, 180.0, generator=torch.Generator().manual_seed(0))
    ds = SegmentDataset([clip], MelConfig(), segment_frames=4)
    batch = {k: torch.stack([ds[0][k] for _ in range(4)]) for k in ("audio", "mel")}
    net = WaveGradNet(
        n_mels=80,
        factors=(4, 4, 4, 2, 2),
        mel_channels=16,
        up_channels=(16, 16, 16, 16, 16),
        down_channels=(8, 16, 16, 16, 16),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = wavegrad_loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert first > 0.6  # about E|eps| = 0.80 for an untrained net
    assert last < 0.6 * first


def _run(capsys, *argv) -> dict:
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    res = _run(capsys, "train", "--config", "tiny", "--out", str(out))
    assert res["step"] == 4 and (out / "model.safetensors").is_file() and res["data"] == "synthetic"
    res = _run(capsys, "train", "--config", "tiny", "--set", "train.steps=6", "--out", str(out))  # resumes
    assert res["step"] == 6
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, n in enumerate((256 * 20, 5000)):
        sf.write(clips / f"c{i}.wav", synthetic_clip(22050, n / 22050, 150.0 + 40 * i).numpy(), 22050)
    assert load_run_config(out, AudioConfig).train.steps == 6  # the stored run config: the resolved --set
    res = _run(
        capsys,
        "vocode",
        "--checkpoint",
        str(out),
        "--input",
        str(clips / "c1.wav"),
        "--out",
        str(tmp_path / "voc"),
    )
    wav, sr = sf.read(res["vocoded"][0]["wav"])
    assert sr == 22050 and wav.shape == (5000,) and (tmp_path / "voc" / "c1.png").is_file()
    res = _run(capsys, "evaluate", "--checkpoint", str(out), "--wav-dir", str(clips), "--set", "sampler.steps=6")
    assert set(res) == {"model", "baselines", "protocol"}
    assert set(res["model"]) == set(res["baselines"]["griffin_lim_32"]) == set(PROTOCOL_METRICS)
    assert {"log_mel_distance", "ls_mse", "mcd", "ffe", "mr_stft", "rtf"} == set(PROTOCOL_METRICS)
    assert res["protocol"]["clips"] == 2 and res["protocol"]["iterations"] == 6
    res = _run(
        capsys,
        "search-schedule",
        "--checkpoint",
        str(out),
        "--wav-dir",
        str(clips),
        "--set",
        "sampler.steps=1",
        "--max-seconds",
        "0.1",
    )
    assert len(res["betas"]) == 1 and (out / "schedules.json").is_file()
    # the searched count is now a valid sampler.steps for this checkpoint
    res = _run(capsys, "evaluate", "--checkpoint", str(out), "--wav-dir", str(clips), "--set", "sampler.steps=1")
    assert res["protocol"]["iterations"] == 1 and res["protocol"]["betas"] == json.loads(
        (out / "schedules.json").read_text()
    )["1"]["betas"]


def test_cli_bad_input(tmp_path, capsys, cli_error):
    cli_error(cli, ["train", "--config", "tiny", "--set", "train.nope=1"], "nope")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((1000, 2), np.float32), 22050)
    out = tmp_path / "run"
    _run(capsys, "train", "--config", "tiny", "--set", "train.steps=1", "--out", str(out))
    cli_error(cli, ["vocode", "--checkpoint", out, "--input", stereo], "--input", "mono")
    # the checkpoint brings its config: --config beside it is refused
    cli_error(cli, ["vocode", "--config", "tiny", "--checkpoint", out, "--input", stereo], "--config", "--set")
    cli_error(cli, ["train", "--config", "tiny", "--out", out, "--no-resume"], "resume=False", "already holds")


def test_train_stores_the_run_config_that_inference_starts_from(tmp_path):
    """train(config, out_dir) returns core's TrainResult and writes run_config.json; from_pretrained reads it:
    its [sampler] sets vocode's defaults and a `config` argument replaces that [sampler] only."""
    config = load_config(
        AudioConfig, "tiny", ["train.steps=2", "sampler.seed=7", "sampler.steps=25"], package="omnidiffusion.audio"
    )
    result = train(config, tmp_path / "run")
    assert result.step == 2 and isinstance(result.final_model, WaveGradNet)
    assert load_run_config(tmp_path / "run", AudioConfig) == config
    model = WaveGrad.from_pretrained(tmp_path / "run")
    assert model.config == config and model.sampler.seed == 7
    mel = model.mel(synthetic_clip(22050, 0.05, 150.0))[0]
    assert torch.equal(model.vocode(mel), model.vocode(mel, iterations=25, seed=7))
    plan = model.sampling()
    assert plan["method"] == "ddpm" and plan["iterations"] == 25 and plan["grid"] == "trailing"
    other = load_config(AudioConfig, "default", ["sampler.method=dpm++2m", "sampler.steps=3"],
                        package="omnidiffusion.audio")
    dpm = WaveGrad.from_pretrained(tmp_path / "run", config=other)
    assert dpm.config.model == config.model and dpm.sampling()["method"] == "dpm++2m"
    assert dpm.sampling()["grid"] == "auto" and dpm.sampling()["steps"] == 3
    assert torch.equal(dpm.vocode(mel), model.vocode(mel, method="dpm++2m", steps=3, seed=0))


def test_schedule_table_sets_the_training_levels():
    """[schedule] is the training table: WaveGrad's Linear(1e-6, 0.01, 1000) by default, any core table by name."""
    from omnidiffusion.audio.noise import training_betas
    from omnidiffusion.audio.settings import WaveGradScheduleConfig

    assert torch.equal(WaveGradScheduleConfig().betas(), training_betas())
    cosine = WaveGradScheduleConfig(name="cosine", timesteps=50)
    assert cosine.betas().shape == (50,) and cosine.build().T == 50
