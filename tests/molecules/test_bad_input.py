"""Bad input to the molecules CLI and Python API: one clear error naming the argument and what was expected.

The CLI contract (exit 2, one `error:` line, no traceback) is checked by the shared `cli_error` fixture; the API
cases check the ValueError / FileNotFoundError message. A tiny untrained GeoDiffNet checkpoint is enough: every
case must be refused before any sampling, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from omnidiffusion.core.io import save_pretrained, save_run_config
from omnidiffusion.molecules.chem import MAX_ATOMS, parse_smiles
from omnidiffusion.molecules.cli import cli
from omnidiffusion.molecules.data import read_sdf, write_sdf
from omnidiffusion.molecules.evaluation import evaluate_model
from omnidiffusion.molecules.geom import convert_geom_pickle
from omnidiffusion.molecules.metrics import cov_mat, evaluate_sets, rmsd_matrix
from omnidiffusion.molecules.models import GeoDiffNet
from omnidiffusion.molecules.pipeline import ConformerGenerator
from omnidiffusion.molecules.settings import GeoDiffSamplerConfig, GeoDiffScheduleConfig, MoleculesConfig

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")


def _embedded(smiles: str, n: int, seed: int = 0) -> Chem.Mol:
    mol = parse_smiles(smiles)
    AllChem.EmbedMultipleConfs(mol, n, randomSeed=seed)
    return mol


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint (and one of the layout before run_config.json) and the bad input files, made once."""
    root = tmp_path_factory.mktemp("bad_input")
    torch.manual_seed(0)
    net = GeoDiffNet(hidden=8, global_layers=1, local_layers=1, num_rbf=4)
    config = MoleculesConfig(
        schedule=GeoDiffScheduleConfig(timesteps=20, beta_end=0.2), sampler=GeoDiffSamplerConfig(steps=4)
    )
    save_pretrained(net, root / "ckpt")
    save_run_config(root / "ckpt", config)
    diffusion = {"num_steps": 20, "beta_start": 1e-7, "beta_end": 0.2, "local_weight": 5.0, "global_weight": 2.0}
    legacy = {"diffusion": diffusion, "sampler": {"method": "geodiff-ld", "steps": 4, "w_global": 0.5}}
    save_pretrained(net, root / "legacy", metadata=legacy)
    save_pretrained(net, root / "nometa")
    (root / "empty_dir").mkdir()
    write_sdf([_embedded("CCO", 2), _embedded("CC#N", 2, seed=1)], root / "refs.sdf")
    write_sdf([_embedded("[H][H]", 2)], root / "h2.sdf")
    (root / "empty.sdf").write_text("")
    (root / "malformed.sdf").write_text("this is not\nan SDF file\n$$$$\n")
    (root / "flat.sdf").write_text(Chem.MolToMolBlock(parse_smiles("CCO")) + "$$$$\n")  # 2-D, all zero
    (root / "not_pickle.pkl").write_text("plain text\n")
    (root / "nomol.pkl").write_bytes(pickle.dumps({"conformers": [{"rd_mol": "CCO"}]}))
    (root / "good.pkl").write_bytes(pickle.dumps({"conformers": [{"rd_mol": _embedded("CCO", 1)}]}))
    return root


@pytest.fixture(scope="module")
def gen(files):
    return ConformerGenerator.from_pretrained(files / "ckpt")


def _argv(template: list[str], root) -> list[str]:
    return [a.format(root=root) for a in template]


GEN = ["generate", "--checkpoint", "{root}/ckpt", "--out", "{root}/out.sdf", "--smiles", "CCO"]
EVAL = ["evaluate", "--sdf", "{root}/refs.sdf"]
CONVERT = ["convert-geom", "--out", "{root}/conv.sdf", "--trust-pickle", "--pickle"]
TRAIN = ["train", "--config", "tiny", "--out", "{root}/run", "--set", "data.sdf={root}/refs.sdf", "--set"]

CLI_CASES = [
    (["generate", "--checkpoint", "{root}/ckpt", "--out", "{root}/o.sdf"], ["--smiles", "required"]),
    ([*GEN[:-1], "C1CC"], ["smiles", "cannot parse", "C1CC"]),
    ([*GEN[:-1], "[C]"], ["mols[0]", "at least 2 atoms", "got 1"]),
    ([*GEN[:-1], "C" * 400], ["mols[0]", f"at most {MAX_ATOMS} atoms", "got 1202"]),
    ([*GEN, "--n", "0"], ["--n", "integer >= 1", "got 0"]),
    ([*GEN, "--n", "-1"], ["--n", "integer >= 1", "got -1"]),
    ([*GEN, "--n", "2.5"], ["--n", "integer >= 1", "2.5"]),
    ([*GEN, "--steps", "3"], ["unrecognized arguments", "--steps"]),  # --set sampler.steps=3
    ([*GEN, "--method", "ddim"], ["unrecognized arguments", "--method"]),
    ([*GEN, "--seed", "1"], ["unrecognized arguments", "--seed"]),
    ([*GEN, "--set", "sampler.steps=0"], ["sampler.steps", "integer >= 1", "got 0"]),
    ([*GEN, "--set", "sampler.steps=-3"], ["sampler.steps", "integer >= 1", "got -3"]),
    ([*GEN, "--set", "sampler.batch_size=0"], ["sampler.batch_size", "integer >= 1", "got 0"]),
    ([*GEN, "--set", "sampler.seed=-1"], ["sampler.seed", "integer >= 0", "got -1"]),
    ([*GEN, "--set", "sampler.step_lr=-1"], ["sampler.step_lr", "(0, inf)", "-1"]),
    ([*GEN, "--set", "sampler.w_global=nan"], ["sampler.w_global", "finite number", "nan"]),
    ([*GEN, "--set", "model.hidden=8"], ["--set model.hidden", "not used by generate", "sampler.*"]),
    ([*GEN, "--set", "schedule.timesteps=5"], ["--set schedule.timesteps", "not used by generate"]),
    ([*GEN, "--set", "sampler.method=bogus"], ["sampler.method", "expected one of", "bogus", "geodiff-ld", "dpm++2m"]),
    ([*GEN, "--config", "tiny"], ["--config", "not used with --checkpoint"]),
    pytest.param([*GEN, "--device", "cuda"], ["--device", "no CUDA GPU"], marks=NO_GPU),
    ([*GEN, "--device", "gpu"], ["--device", "expected auto, cpu, cuda or cuda:N", "gpu"]),
    ([*GEN[:2], "{root}/missing", *GEN[3:]], ["--checkpoint", "missing", "no such directory"]),
    ([*GEN[:2], "{root}/empty_dir", *GEN[3:]], ["empty_dir", "holds no config.json", "molecules run"]),
    ([*GEN[:2], "{root}/nometa", *GEN[3:]], ["nometa", "no run_config.json", "not a molecules run"]),
    ([*GEN[:4], "{root}", *GEN[5:]], ["--out", "is a directory", "expected a file path"]),
    ([*EVAL[:2], "{root}/missing.sdf"], ["missing.sdf", "no such file"]),
    ([*EVAL[:2], "{root}/empty.sdf"], ["empty.sdf", "empty file", "expected SDF records"]),
    ([*EVAL[:2], "{root}/malformed.sdf"], ["malformed.sdf", "record 0", "cannot be read"]),
    ([*EVAL[:2], "{root}/flat.sdf"], ["flat.sdf", "record 0", "no 3-D coordinates"]),
    ([*EVAL[:2], "{root}/h2.sdf"], ["refs[0]", "no heavy atoms"]),
    ([*EVAL, "--threshold", "0"], ["--threshold", "(0, inf)", "0.0"]),
    ([*EVAL, "--threshold", "-1"], ["--threshold", "(0, inf)", "-1"]),
    ([*EVAL, "--threshold", "nan"], ["--threshold", "finite number", "nan"]),
    ([*EVAL, "--threshold", "inf"], ["--threshold", "finite number", "inf"]),
    ([*EVAL, "--ratio", "0"], ["--ratio", "integer >= 1", "got 0"]),
    ([*EVAL, "--max-molecules", "-1"], ["--max-molecules", "integer >= 0", "got -1"]),
    ([*EVAL, "--checkpoint", "{root}/ckpt", "--set", "sampler.steps=0"], ["sampler.steps", "integer >= 1", "got 0"]),
    ([*EVAL, "--checkpoint", "{root}/ckpt", "--set", "data.n_confs=3"], ["--set data.n_confs", "not used by"]),
    ([*EVAL, "--set", "sampler.steps=3"], ["--set sampler.steps", "needs --checkpoint"]),
    (["evaluate", "--set", "data.n_confs=0"], ["data.n_confs", "integer >= 1", "got 0"]),
    (["convert-geom", "--out", "{root}/c.sdf", "--pickle", "{root}/good.pkl"], ["--trust-pickle", "required"]),
    ([*CONVERT, "{root}/missing.pkl"], ["missing.pkl", "no such file"]),
    ([*CONVERT, "{root}/not_pickle.pkl"], ["not_pickle.pkl", "not a readable pickle"]),
    ([*CONVERT, "{root}/nomol.pkl"], ["conformers[0]['rd_mol']", "expected an RDKit Mol", "got str"]),
    ([*TRAIN, "sampler.steps=0"], ["sampler.steps", "integer >= 1", "got 0"]),
    ([*TRAIN, "model.num_rbf=1"], ["model.num_rbf", "integer >= 2", "got 1"]),
    ([*TRAIN, "schedule.beta_end=-1"], ["schedule.beta_end", "(0, 1]", "-1"]),
    ([*TRAIN, "schedule.name=zigzag"], ["schedule.name", "expected one of", "zigzag"]),
    ([*TRAIN, "diffusion.num_steps=20"], ["diffusion"]),  # now schedule.timesteps
    ([*TRAIN, "loss.local_weight=-1"], ["loss.local_weight", "[0, inf)", "-1"]),
    ([*TRAIN, "loss.local_weight=0", "--set", "loss.global_weight=0"], ["loss.local_weight, loss.global_weight"]),
    ([*TRAIN, "data.max_molecules=-1"], ["data.max_molecules", "integer >= 0", "got -1"]),
]


@pytest.mark.parametrize(("argv", "fragments"), CLI_CASES)
def test_cli_refuses_bad_input(files, cli_error, argv, fragments):
    cli_error(cli, _argv(argv, files), *fragments)
    assert not (files / "run").exists() and not (files / "out.sdf").exists()  # refused before any work


def _nan_conformer(mol: Chem.Mol) -> Chem.Mol:
    out = Chem.Mol(mol)
    out.GetConformer(0).SetAtomPosition(0, (math.nan, 0.0, 0.0))
    return out


API_CASES = [
    ("from_pretrained missing", lambda g, r: ConformerGenerator.from_pretrained(r / "missing"), "no such directory"),
    ("from_pretrained no weights", lambda g, r: ConformerGenerator.from_pretrained(r / "empty_dir"), "config.json"),
    ("from_pretrained no config", lambda g, r: ConformerGenerator.from_pretrained(r / "nometa"), "not a molecules"),
    ("device gpu", lambda g, r: ConformerGenerator.from_pretrained(r / "ckpt", device="gpu"), "device: expected"),
    ("None mol", lambda g, r: g.generate(None, 2), "mols[0]: expected an RDKit Mol, got NoneType"),
    ("no hydrogens", lambda g, r: g.generate(Chem.MolFromSmiles("CCO"), 2), "implicit hydrogens"),
    ("invalid SMILES", lambda g, r: g.generate("C1CC", 2), "smiles: RDKit cannot parse"),
    ("large molecule", lambda g, r: g.generate("C" * 400, 1), f"at most {MAX_ATOMS} atoms"),
    ("n 0", lambda g, r: g.generate("CCO", 0), "n_conformers[0]: expected an integer >= 1, got 0"),
    ("n nan", lambda g, r: g.generate("CCO", math.nan), "n_conformers[0]: expected an integer >= 1, got nan"),
    ("n bool", lambda g, r: g.generate("CCO", True), "n_conformers[0]: expected an integer >= 1, got True"),
    ("steps 0", lambda g, r: g.generate("CCO", 2, steps=0), "steps: expected an integer >= 1, got 0"),
    ("steps float", lambda g, r: g.generate("CCO", 2, steps=2.5), "steps: expected an integer >= 1, got 2.5"),
    ("method", lambda g, r: g.generate("CCO", 2, method="bogus"), "method: expected one of ['geodiff-ld'"),
    ("seed", lambda g, r: g.generate("CCO", 2, seed=1.5), "seed: expected an integer >= 0, got 1.5"),
    ("batch_size", lambda g, r: g.generate("CCO", 2, batch_size=0), "batch_size: expected an integer >= 1, got 0"),
    ("step_lr", lambda g, r: g.generate("CCO", 2, step_lr=-1.0), "step_lr: expected a finite number in (0, inf)"),
    ("clip", lambda g, r: g.generate("CCO", 2, clip=-1.0), "clip: expected a finite number in (0, inf)"),
    ("eps_scale", lambda g, r: g.generate("CCO", 2, eps_scale=0.0), "eps_scale: expected a finite number in (0,"),
    ("unknown", lambda g, r: g.generate("CCO", 2, foo=1), "foo: not a sampler setting"),
    ("mols str", lambda g, r: g.generate_many("CCO", [1, 1, 1]), "mols: expected a list"),
    ("counts int", lambda g, r: g.generate_many(["CCO"], 3), "n_conformers: expected a list"),
    ("max_atoms", lambda g, r: g.generate_many(["CCO"], [1], max_atoms=0), "max_atoms: expected an integer >= 1"),
    ("threshold inf", lambda g, r: evaluate_model(None, read_sdf(r / "refs.sdf"), threshold=math.inf), "threshold"),
    ("ratio float", lambda g, r: evaluate_model(None, read_sdf(r / "refs.sdf"), ratio=1.5), "ratio: expected an int"),
    ("no refs", lambda g, r: evaluate_model(None, []), "refs: expected at least one"),
    ("threshold str", lambda g, r: cov_mat(np.ones((2, 2)), "0.5"), "threshold: expected a number"),
    ("NaN rmsd", lambda g, r: cov_mat(np.full((2, 2), np.nan), 0.5), "rmsd: expected finite distances"),
    (
        "NaN gen",
        lambda g, r: evaluate_sets(read_sdf(r / "refs.sdf")[:1], [_nan_conformer(read_sdf(r / "refs.sdf")[0])], 0.5),
        "gen: conformer 0 has non-finite coordinates",
    ),
    ("H2", lambda g, r: rmsd_matrix(*read_sdf(r / "h2.sdf") * 2), "ref: has no heavy atoms"),
    ("other mol", lambda g, r: rmsd_matrix(*read_sdf(r / "refs.sdf")), "ref, gen: expected the same molecule"),
    ("empty sdf", lambda g, r: read_sdf(r / "empty.sdf"), "empty file"),
    ("2-D sdf", lambda g, r: read_sdf(r / "flat.sdf"), "no 3-D coordinates"),
    ("not pickle", lambda g, r: convert_geom_pickle(r / "not_pickle.pkl", r / "c.sdf", trust_pickle=True), "pickle"),
    ("num_rbf", lambda g, r: GeoDiffNet(hidden=8, num_rbf=1), "num_rbf: expected an integer >= 2, got 1"),
    ("cutoff", lambda g, r: GeoDiffNet(hidden=8, cutoff=math.inf), "cutoff: expected a finite number in (0, inf)"),
]


@pytest.mark.parametrize(("call", "fragment"), [pytest.param(c, f, id=i) for i, c, f in API_CASES])
def test_api_refuses_bad_input(files, gen, call, fragment):
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        call(gen, files)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@NO_GPU
def test_api_refuses_a_missing_gpu(files):
    with pytest.raises(ValueError, match="device: 'cuda' asked for, but no CUDA GPU"):
        ConformerGenerator.from_pretrained(files / "ckpt", device="cuda")


def test_set_sampler_overrides_the_checkpoint(files, capsys):
    """generate starts from the checkpoint's run config; --set sampler.KEY changes it for one run."""
    out = files / "set.sdf"
    argv = [*_argv(GEN, files)[:4], str(out), "--smiles", "CCO", "--n", "2", "--set", "sampler.steps=3"]
    assert cli.main([*argv, "--set", "sampler.method=ddim"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sampler"]["steps"] == 3 and report["sampler"]["method"] == "ddim"  # stored: geodiff-ld, 4
    assert report["sampler"]["eps_scale"] == 1.0  # the rest as stored
    assert [m.GetNumConformers() for m in read_sdf(out)] == [2]


def test_checkpoint_without_run_config_keeps_loading(files, capsys):
    """A checkpoint of the earlier layout: schedule and sampler from config.json's metadata, --set on top."""
    gen = ConformerGenerator.from_pretrained(files / "legacy")
    assert gen.config.schedule.timesteps == 20 and gen.config.schedule.beta_end == 0.2
    assert gen.config.loss.local_weight == 5.0 and gen.sampler.steps == 4 and gen.sampler.w_global == 0.5
    out = files / "legacy.sdf"
    argv = ["generate", "--checkpoint", str(files / "legacy"), "--out", str(out), "--smiles", "CCO", "--n", "1"]
    assert cli.main([*argv, "--set", "sampler.steps=2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sampler"]["steps"] == 2 and report["sampler"]["w_global"] == 0.5


def test_device_defaults_to_auto(files):
    parser = cli.commands["generate"][1]
    args = parser.parse_args(["--checkpoint", "x", "--out", "y", "--smiles", "CCO"])
    assert args.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
