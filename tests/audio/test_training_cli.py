"""The loss falls on a tiny overfit run; the CLI trains, resumes, vocodes, evaluates and searches in a tmp dir."""

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
from omnidiffusion.audio.task import wavegrad_loss
from omnidiffusion.audio.wavegrad import WaveGradNet


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
    res = _run(
        capsys,
        "vocode",
        "--config",
        "tiny",
        "--checkpoint",
        str(out),
        "--input",
        str(clips / "c1.wav"),
        "--out",
        str(tmp_path / "voc"),
    )
    wav, sr = sf.read(res["vocoded"][0]["wav"])
    assert sr == 22050 and wav.shape == (5000,) and (tmp_path / "voc" / "c1.png").is_file()
    res = _run(
        capsys, "evaluate", "--config", "tiny", "--checkpoint", str(out), "--wav-dir", str(clips), "--iterations", "6"
    )
    assert set(res) == {"model", "baselines", "protocol"}
    assert set(res["model"]) == set(res["baselines"]["griffin_lim_32"]) == set(PROTOCOL_METRICS)
    assert {"log_mel_distance", "ls_mse", "mcd", "ffe", "mr_stft", "rtf"} == set(PROTOCOL_METRICS)
    assert res["protocol"]["clips"] == 2 and res["protocol"]["iterations"] == 6
    res = _run(
        capsys,
        "search-schedule",
        "--config",
        "tiny",
        "--checkpoint",
        str(out),
        "--wav-dir",
        str(clips),
        "--steps",
        "1",
        "--max-seconds",
        "0.1",
    )
    assert len(res["betas"]) == 1 and (out / "schedules.json").is_file()


def test_cli_bad_input(tmp_path, capsys, cli_error):
    cli_error(cli, ["train", "--config", "tiny", "--set", "train.nope=1"], "nope")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((1000, 2), np.float32), 22050)
    out = tmp_path / "run"
    _run(capsys, "train", "--config", "tiny", "--set", "train.steps=1", "--out", str(out))
    cli_error(cli, ["vocode", "--config", "tiny", "--checkpoint", out, "--input", stereo], "--input", "mono")
