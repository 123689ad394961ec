"""CLI smoke test of the points task on a tiny config: train, resume, evaluate, points-generate, points-complete."""

from __future__ import annotations

import json

import numpy as np

from omnidiffusion.vision.cli import cli
from omnidiffusion.vision.points.formats import read_points, write_points
from omnidiffusion.vision.points.shapes import make_shapes

TINY = [
    "points.n_points=32",
    "points.n_train=12",
    "points.n_test=6",
    "points.n_eval=6",
    "points.n_known=6",
    "points.width=16",
    "points.depth=1",
    "points.inducing=2",
    "points.heads=2",
    "schedule.timesteps=50",
    "train.steps=3",
    "train.batch_size=4",
    "train.log_every=1",
    "train.ckpt_every=3",
    "train.progress=false",
    "train.device=cpu",
    "sampler.method=dpm++2m",
    "sampler.steps=3",
]


def _sets(extra=()):
    out = []
    for s in [*TINY, *extra]:
        out += ["--set", s]
    return out


def test_points_cli_end_to_end(tmp_path, capsys):
    ckpt = tmp_path / "run"
    assert cli.main(["train", "--config", "points-shapes", *_sets(), "--out", str(ckpt)]) == 0
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "config.json").is_file()
    # a resumed run trains further from the checkpoint
    assert cli.main(["train", "--config", "points-shapes", *_sets(["train.steps=4"]), "--out", str(ckpt)]) == 0
    capsys.readouterr()

    data = tmp_path / "data"
    clouds, labels = make_shapes(6, 40, seed=99)
    for i, (c, lab) in enumerate(zip(clouds, labels, strict=True)):
        write_points(data / f"class{lab}" / f"{i}.ply", c)
    code = cli.main(
        ["evaluate", "--task", "points", *_sets(), "--checkpoint", str(ckpt), "--data-dir", str(data),
         "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"model", "baselines", "protocol"}
    gen = result["model"]["generation"]["dpm++2m_3"]
    assert {"mmd_cd", "cov_cd", "1nna_cd", "mmd_emd", "cov_emd", "1nna_emd"} <= set(gen)
    assert "gaussian_blob" in result["baselines"]["generation"]
    assert {"reflection", "partial_only"} <= set(result["baselines"]["completion"])
    assert result["model"]["generation"]["copy_check"]["copies"] >= 0
    assert result["protocol"]["data"] == str(data)

    out = tmp_path / "gen"
    assert cli.main(["points-generate", "--checkpoint", str(ckpt), *_sets(), "--n", "3", "--out", str(out)]) == 0
    assert len(list(out.glob("cloud_*.ply"))) == 3 and (out / "clouds.png").stat().st_size > 0
    assert read_points(out / "cloud_000.ply").shape == (32, 3)

    partial = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    write_points(tmp_path / "partial.xyz", partial)
    done = tmp_path / "done.npy"
    args = ["points-complete", "--checkpoint", str(ckpt), *_sets(), "--input", str(tmp_path / "partial.xyz")]
    assert cli.main([*args, "--out", str(done), "--png", str(tmp_path / "done.png")]) == 0
    full = np.load(done)
    assert full.shape == (32, 3)
    np.testing.assert_allclose(full[:5], partial, rtol=1e-6)
    assert (tmp_path / "done.png").stat().st_size > 0


def test_points_cli_bad_input(tmp_path, cli_error):
    ckpt = tmp_path / "run"
    assert cli.main(["train", "--config", "points-shapes", *_sets(), "--out", str(ckpt)]) == 0
    cli_error(
        cli,
        ["evaluate", "--task", "points", "--checkpoint", str(ckpt), "--data-dir", str(tmp_path / "nope")],
        "data_dir",
    )
    cli_error(cli, ["points-complete", "--checkpoint", str(ckpt), "--input", str(tmp_path / "missing.ply")], "path")
    cli_error(cli, ["train", "--config", "points-shapes", "--set", "points.no_such_key=1"], "unknown config key")
