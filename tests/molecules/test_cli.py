"""CLI smoke on the tiny config: train (and resume), generate an SDF, evaluate it; pipeline and help texts."""

from __future__ import annotations

import json

import pytest
import torch
from rdkit.Chem import AllChem

from omnidiffusion.core.io import load_run_config
from omnidiffusion.molecules.chem import parse_smiles
from omnidiffusion.molecules.cli import cli
from omnidiffusion.molecules.data import read_sdf, write_sdf
from omnidiffusion.molecules.pipeline import ConformerGenerator
from omnidiffusion.molecules.settings import MoleculesConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mol")
    refs = []
    for k, smi in enumerate(["CCO", "CC#N", "OCC=O", "CNC"]):
        mol = parse_smiles(smi)
        AllChem.EmbedMultipleConfs(mol, 2, randomSeed=k)
        refs.append(mol)
    sdf = write_sdf(refs, root / "refs.sdf")
    run = root / "run"
    assert cli.main(["train", "--config", "tiny", "--out", str(run), "--set", f"data.sdf={sdf}"]) == 0
    return root, sdf, run


def test_train_writes_a_loadable_checkpoint_and_resumes(trained, capsys):
    root, sdf, run = trained
    assert (run / "model.safetensors").is_file() and (run / "checkpoint" / "latest.json").is_file()
    stored = load_run_config(run, MoleculesConfig)  # the whole config, which generate and evaluate start from
    assert stored.schedule.timesteps == 50 and stored.sampler.steps == 50 and stored.data.sdf == str(sdf)
    assert ConformerGenerator.from_pretrained(run).config == stored
    capsys.readouterr()
    argv = ["train", "--config", "tiny", "--out", str(run), "--set", f"data.sdf={sdf}", "--no-resume"]
    assert cli.main(argv) == 2 and "already holds a checkpoint" in capsys.readouterr().err
    assert (
        cli.main(["train", "--config", "tiny", "--out", str(run), "--set", f"data.sdf={sdf}", "--set", "train.steps=6"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 6  # continued from step 4
    assert len((run / "log.csv").read_text().strip().splitlines()) == 1 + 3  # header + steps 2, 4, 6


def test_generate_and_evaluate(trained, tmp_path, capsys):
    root, sdf, run = trained
    out = tmp_path / "gen.sdf"
    assert (
        cli.main(
            [
                "generate",
                "--checkpoint",
                str(run),
                "--smiles",
                "CCO",
                "--smiles",
                "CNC",
                "--n",
                "3",
                "--set",
                "sampler.steps=10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    mols = read_sdf(out)
    assert [m.GetNumConformers() for m in mols] == [3, 3]
    capsys.readouterr()
    assert (
        cli.main(
            [
                "evaluate",
                "--checkpoint",
                str(run),
                "--sdf",
                str(sdf),
                "--threshold",
                "0.5",
                "--set",
                "sampler.method=dpm++2m",
                "--set",
                "sampler.steps=5",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"model", "baselines", "protocol"}
    assert set(result["model"]) >= {"COV-R", "MAT-R", "COV-P", "MAT-P"}
    etkdg = result["baselines"]["RDKit ETKDG+MMFF (other seed)"]
    assert 0 <= etkdg["COV-R"] <= 100 and result["protocol"]["molecules"] == 4
    assert result["protocol"]["sampler"]["method"] == "dpm++2m"


def test_pipeline_returns_a_mol_with_conformers(trained):
    _, _, run = trained
    gen = ConformerGenerator.from_pretrained(run)
    mol = gen.generate("OCC#N", 4, steps=8)
    assert mol.GetNumConformers() == 4 and mol.GetNumAtoms() == 7
    pos = torch.tensor(mol.GetConformer(0).GetPositions())
    assert torch.isfinite(pos).all() and pos.mean(0).abs().max() < 1e-4  # centred
    with pytest.raises(ValueError, match="cannot parse"):
        gen.generate("C1CC", 2)
    with pytest.raises(ValueError, match="n_conformers"):
        gen.generate("CCO", 0)


@pytest.mark.parametrize("command", ["train", "generate", "evaluate", "convert-geom"])
def test_help(command, capsys):
    assert cli.main([command, "--help"]) == 0
    assert "--config" in capsys.readouterr().out


def test_unknown_config_key_is_refused(capsys):
    assert cli.main(["train", "--config", "tiny", "--set", "model.width=3"]) == 2
    assert "width" in capsys.readouterr().err
