"""GEOM on disk: a miniature rdkit_folder and GeoDiff split files in their exact layout, written here.

Checks: the one-time conversion keeps every value (coordinates as SDF writes them, Boltzmann weights exactly),
the loaders read only JSON and SDF (pickle is made unusable while they run), the split equals GeoDiff's
procedure (utils/datasets.py, re-derived here from its description), malformed files get one clear error naming
the file, and `train` / `evaluate` run on `qm9-paper` and `drugs-paper` with --set data.root=DIR.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from torch_geometric.data import Data
from torch_geometric.data.storage import GlobalStorage

from omnidiffusion.molecules import geom
from omnidiffusion.molecules.chem import parse_smiles
from omnidiffusion.molecules.cli import cli
from omnidiffusion.molecules.settings import DataConfig

# (smiles, conformers in the file, uniqueconfs in the file): NCC=O's file is GeoDiff's "bad case" (5 > 3).
MOLECULES = [
    ("CCO", 4, 4),
    ("CCN", 3, 3),
    ("CC=O", 5, 5),
    ("CCC", 2, 2),
    ("OCC#N", 3, 3),
    ("CC#N", 4, 4),
    ("NCO", 6, 6),
    ("CCOC", 5, 5),
    ("COC", 3, 3),
    ("CNC=O", 4, 4),
    ("CCCO", 6, 6),
    ("NCC=O", 3, 5),
    ("CC(C)O", 5, 5),
]
SPLIT = {"confs_per_mol": 3, "split_molecules": 10, "test_pool": 3, "test_min_confs": 2, "test_max_confs": 6}
SPLIT.update(test_start=0, test_end=3)
TINY = [
    "model.hidden=8",
    "model.global_layers=1",
    "model.local_layers=1",
    "model.num_rbf=4",
    "schedule.timesteps=20",
    "sampler.steps=4",
    "train.steps=2",
    "train.batch_size=2",
    "train.log_every=1",
    "train.ckpt_every=2",
    "train.progress=false",
]


def _cfg(root, **kw) -> DataConfig:
    return DataConfig(root=str(root), **{**SPLIT, **kw})


def _sets(root) -> list[str]:
    return [a for key, value in {"root": root, **SPLIT}.items() for a in ("--set", f"data.{key}={value}")]


def _geom_mol(smiles: str, n: int, seed: int) -> list[Chem.Mol]:
    mol = parse_smiles(smiles)
    ids = list(AllChem.EmbedMultipleConfs(mol, n, randomSeed=seed))
    assert len(ids) == n
    out = []
    for i in ids:
        one = Chem.Mol(mol, confId=i)
        conf = one.GetConformer()
        for a in range(one.GetNumAtoms()):  # 4 decimals, as an SDF stores them, so a round trip is exact
            p = conf.GetAtomPosition(a)
            conf.SetAtomPosition(a, (round(p.x, 4), round(p.y, 4), round(p.z, 4)))
        out.append(one)
    return out


@pytest.fixture(scope="module")
def rdkit_folder(tmp_path_factory):
    """GEOM's layout: summary_qm9.json + qm9/<name>.pickle (dict with 'conformers': [{'rd_mol', ...}])."""
    root = tmp_path_factory.mktemp("rdkit_folder")
    (root / "qm9").mkdir()
    rng = np.random.default_rng(0)
    summary, truth = {}, {}
    for k, (smi, n, uniq) in enumerate(MOLECULES):
        mols = _geom_mol(smi, n, k)
        weights = rng.dirichlet(np.ones(n)).tolist()
        confs = [
            {
                "geom_id": 1000 * k + i,
                "boltzmannweight": w,
                "totalenergy": -10.0 - i,
                "relativeenergy": 0.1 * i,
                "rd_mol": m,
            }
            for i, (m, w) in enumerate(zip(mols, weights, strict=True))
        ]
        name = f"qm9/{smi.replace('#', '%23')}.pickle"
        (root / name).write_bytes(pickle.dumps({"smiles": smi, "uniqueconfs": uniq, "conformers": confs}))
        summary[smi] = {
            "charge": 0,
            "temperature": 298.15,
            "totalconfs": n,
            "uniqueconfs": min(uniq, n),
            "pickle_path": name,
        }
        truth[smi] = (mols, weights, uniq)
    summary["C"] = {"charge": 0, "uniqueconfs": 9}  # no pickle_path: GeoDiff skips it
    summary["N"] = {"charge": 0, "pickle_path": "qm9/N.pickle"}  # no uniqueconfs: skipped too
    (root / "summary_qm9.json").write_text(json.dumps(summary))
    return root, truth


@pytest.fixture(scope="module")
def converted(rdkit_folder, tmp_path_factory):
    root, truth = rdkit_folder
    out = tmp_path_factory.mktemp("converted")
    report = geom.convert_rdkit_folder(root, "qm9", out, trust_pickle=True, cfg=_cfg(root))
    return out, truth, report


def _oracle_split(summary: dict, k: int, n: int, pool: int, lo: int, hi: int, seed: int = 2021) -> dict:
    """GeoDiff's split as its utils/datasets.py describes it: global `random`, index2split, block list."""
    random.seed(seed)
    paths = [
        m["pickle_path"]
        for m in summary.values()
        if m.get("uniqueconfs") is not None and m.get("pickle_path") and m["uniqueconfs"] >= k
    ]
    random.shuffle(paths)
    paths = paths[:n]
    idx = list(range(n))
    random.shuffle(idx)
    index2split = {}
    for i in range(int(n * 0.8)):
        index2split[idx[i]] = "train"
    for i in range(int(n * 0.8), int(n * 0.9)):
        index2split[idx[i]] = "val"
    for i in range(int(n * 0.9), n):
        index2split[idx[i]] = "test"
    out = {s: [p for i, p in enumerate(paths) if index2split[i] == s] for s in ("train", "val", "test")}
    by_path = {m["pickle_path"]: s for s, m in summary.items() if m.get("pickle_path")}
    block = {by_path[p] for p in out["train"] + out["val"]}
    random.seed(seed)
    cands = [
        m["pickle_path"]
        for s, m in summary.items()
        if m.get("uniqueconfs") is not None and m.get("pickle_path") and lo <= m["uniqueconfs"] <= hi and s not in block
    ]
    random.shuffle(cands)
    out["pool"] = cands[:pool]
    return out


def test_split_is_geodiffs_procedure(rdkit_folder):
    root, _ = rdkit_folder
    summary = json.loads((root / "summary_qm9.json").read_text())
    split = geom.geodiff_split(geom.read_summary(root, "qm9"), _cfg(root))
    want = _oracle_split(summary, 3, 10, 3, 2, 6)
    assert [p for _, p in split["train"]] == want["train"] and len(want["train"]) == 8
    assert [p for _, p in split["val"]] == want["val"] and [p for _, p in split["test_fixed"]] == want["test"]
    assert [p for _, p in split["test"]] == want["pool"]
    train_val = {s for s, _ in split["train"] + split["val"]}
    assert train_val.isdisjoint(s for s, _ in split["test"])  # the benchmark tests unseen graphs
    with pytest.raises(ValueError, match=r"data.split_molecules: expected at most 12 .*got 13"):
        geom.geodiff_split(geom.read_summary(root, "qm9"), _cfg(root, split_molecules=13))


def test_conversion_keeps_every_value_and_loaders_never_unpickle(converted, monkeypatch):
    out, truth, report = converted
    assert report["converted"] == 12 and (out / "summary_qm9.json").is_file()  # every split molecule, once
    assert not list(out.rglob("*.pickle"))

    def refuse(*a, **k):
        raise AssertionError("a loader unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(geom, "load_trusted_pickle", refuse)
    split = geom.geodiff_split(geom.read_summary(out, "qm9"), _cfg(out))
    needed = {s for part in split.values() for s, _ in part}
    assert {p.stem.replace("%23", "#") for p in (out / "qm9").glob("*.sdf")} == needed
    for smi in needed:
        mols, weights, uniq = truth[smi]
        back = geom.read_geom_sdf(geom.converted_path(out, f"qm9/{smi.replace('#', '%23')}.pickle"))
        assert back.smiles == smi and back.uniqueconfs == uniq and back.weights == weights  # weights bit-exact
        assert back.mol.GetNumConformers() == len(mols)
        for c, m in zip(back.mol.GetConformers(), mols, strict=True):
            assert np.array_equal(c.GetPositions(), m.GetConformer().GetPositions())
        assert [a.GetAtomicNum() for a in back.mol.GetAtoms()] == [a.GetAtomicNum() for a in mols[0].GetAtoms()]
    train, info = geom.load_split(_cfg(out), "train")
    assert info["source"] == "rdkit-folder" and info["bad_cases"] == ("NCC=O" in dict(split["train"]))
    for mol in train:  # the 3 most Boltzmann-probable conformers, or all when a molecule has exactly 3
        mols, weights, uniq = truth[mol.GetProp("_Name")]
        want = list(range(3)) if uniq == 3 else sorted(range(len(weights)), key=lambda i: -weights[i])[:3]
        got = [c.GetPositions() for c in mol.GetConformers()]
        assert all(np.array_equal(g, mols[i].GetConformer().GetPositions()) for g, i in zip(got, want, strict=True))
    test, info = geom.load_split(_cfg(out), "test")
    pool = [s for s, _ in split["test"] if s != "NCC=O"]
    assert [m.GetProp("_Name") for m in test] == pool[:3] and info["range"] == [0, 3]
    assert [m.GetNumConformers() for m in test] == [truth[s][2] for s in pool[:3]]  # every unique conformer


def _tensor(t: torch.Tensor):
    """A tensor pickled as torch 1.x did (typed storage inside `_load_from_bytes`)."""

    class Storage:
        def __reduce__(self):
            buf = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                typed = torch.TypedStorage(t.flatten().tolist(), dtype=t.dtype)
                torch.save(typed, buf, _use_new_zipfile_serialization=False)
            return (torch.storage._load_from_bytes, (buf.getvalue(),))

    class Tensor:
        def __reduce__(self):
            stride = t.contiguous().stride()
            return (
                torch._utils._rebuild_tensor_v2,
                (Storage(), 0, tuple(t.shape), stride, False, collections.OrderedDict()),
            )

    return Tensor()


def _data(fields: dict, new_layout: bool):
    """A torch-geometric Data record: PyG 1 (fields inline, as GeoDiff's files) or PyG 2 (`_store._mapping`)."""

    class Store:
        def __reduce__(self):
            return (GlobalStorage, (), {"_mapping": fields})

    class Item:
        def __reduce__(self):
            return (Data, (), {"_store": Store()} if new_layout else dict(fields))

    return Item()


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory):
    """GeoDiff's train_data_40k.pkl / val_data_5k.pkl / test_data_1k.pkl (lists of Data), converted to SDF."""
    root = tmp_path_factory.mktemp("geodiff_split")
    truth = {}
    for part, stem in geom.SPLIT_FILES.items():
        items, truth[part] = [], []
        for k, smi in enumerate(["CCO", "CC#N", "OCC=O"] if part != "val" else ["CNC"]):
            for j, m in enumerate(_geom_mol(smi, 2, 7 * k + len(part))):
                pos = torch.tensor(m.GetConformer().GetPositions(), dtype=torch.float32)
                fields = {
                    "smiles": smi,
                    "rdmol": m,
                    "pos": _tensor(pos),
                    "boltzmannweight": _tensor(torch.tensor([0.5])),
                }
                items.append(_data(fields, new_layout=bool(j % 2)))
                truth[part].append((smi, pos))
        (root / f"{stem}.pkl").write_bytes(pickle.dumps(items))
        geom.convert_geodiff_split(root / f"{stem}.pkl", root / f"{stem}.sdf", trust_pickle=True)
    return root, truth


def test_geodiff_split_files_convert_and_load_packed_by_smiles(split_folder, monkeypatch):
    root, truth = split_folder
    monkeypatch.setattr(pickle, "Unpickler", None)  # loaders must not need it
    mols = geom.read_split_sdf(root / "test_data_1k.sdf")
    assert [m.GetProp("_Name") for m in mols] == ["CCO", "CC#N", "OCC=O"]
    flat = [(m.GetProp("_Name"), c.GetPositions()) for m in mols for c in m.GetConformers()]
    for (smi, pos), (want_smi, want) in zip(flat, truth["test"], strict=True):
        assert smi == want_smi and np.allclose(pos, want.double().numpy(), atol=5e-5)  # float32 -> 4 decimals
    test, info = geom.load_split(DataConfig(root=str(root), test_start=1, test_end=3), "test")
    assert info["source"] == "geodiff-split" and [m.GetProp("_Name") for m in test] == ["CC#N", "OCC=O"]


def test_conversions_need_trust_and_refuse_foreign_code(rdkit_folder, tmp_path):
    root, _ = rdkit_folder
    with pytest.raises(ValueError, match="trust_pickle"):
        geom.convert_rdkit_folder(root, "qm9", tmp_path / "o", cfg=_cfg(root))
    with pytest.raises(ValueError, match="trust_pickle"):
        geom.convert_geodiff_split(root / "x.pkl", tmp_path / "x.sdf")
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(ValueError, match=r"evil.pkl: refers to posix.system.*refused without calling it"):
        geom.convert_geodiff_split(tmp_path / "evil.pkl", tmp_path / "e.sdf", trust_pickle=True)
    assert not marker.exists()


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _mixed(path):
    """Two records of different molecules in one per-molecule file."""
    first, second = _geom_mol("CCN", 1, 0)[0], _geom_mol("CCO", 1, 0)[0]
    first.SetProp("geom_uniqueconfs", "2")
    writer = Chem.SDWriter(str(path))
    writer.write(first)
    writer.write(second)
    writer.close()
    return path


def test_malformed_files_get_one_clear_error(converted, tmp_path):
    out, _, _ = converted
    block = Chem.MolToMolBlock(_geom_mol("CCO", 1, 0)[0])
    cases = [
        (_write(tmp_path / "a" / "summary_qm9.json", "{not json"), "summary_qm9.json: not valid JSON"),
        (_write(tmp_path / "b" / "summary_qm9.json", "[1, 2]"), "expected a JSON object"),
        (_write(tmp_path / "c" / "summary_qm9.json", '{"CCO": {"uniqueconfs": "five"}}'), "uniqueconfs: expected an"),
        (
            _write(tmp_path / "d" / "summary_qm9.json", '{"CCO": {"pickle_path": "../x.pickle"}}'),
            "pickle_path: expected",
        ),
    ]
    for path, fragment in cases:
        with pytest.raises(ValueError) as e:
            geom.read_summary(path.parent, "qm9")
        assert fragment in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    sdf_cases = [
        (_write(tmp_path / "garbage.sdf", "junk\n$$$$\n"), "record 0 cannot be read by RDKit"),
        (_write(tmp_path / "noprop.sdf", block + "$$$$\n"), "record 0 has no geom_uniqueconfs property"),
        (_mixed(tmp_path / "mixed.sdf"), "record 1: atoms or bonds differ"),
    ]
    for path, fragment in sdf_cases:
        with pytest.raises(ValueError) as e:
            geom.read_geom_sdf(path)
        assert fragment in str(e.value) and str(path) in str(e.value)
    missing = tmp_path / "partial"
    (missing / "qm9").mkdir(parents=True)
    (missing / "summary_qm9.json").write_text((out / "summary_qm9.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"no such file; GEOM's per-molecule files are pickles.*convert-geom"):
        geom.load_split(_cfg(missing), "train")
    only_pkl = tmp_path / "pkl_only"
    _write(only_pkl / "train_data_40k.pkl", "x")
    with pytest.raises(FileNotFoundError, match=r"holds neither summary_qm9.json.*--split-pickle"):
        geom.load_split(_cfg(only_pkl), "train")


def test_cli_trains_and_evaluates_the_paper_configs(rdkit_folder, split_folder, tmp_path, capsys):
    root, _ = rdkit_folder
    out = tmp_path / "converted"
    argv = ["convert-geom", "--config", "qm9-paper", "--trust-pickle", "--root", root, "--out", out, *_sets(root)]
    assert cli.main([str(a) for a in argv]) == 0
    assert json.loads(capsys.readouterr().out)["converted"] == 12
    run = tmp_path / "run"
    argv = ["train", "--config", "qm9-paper", "--out", run, *_sets(out)[2:], "--set", f"data.root={out}"]
    assert cli.main([str(a) for a in [*argv, *[x for s in TINY for x in ("--set", s)]]]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    # The run config stored by train brings data.root and the split; --set changes the sampler for this run.
    argv = ["evaluate", "--checkpoint", run, "--set", "sampler.method=dpm++2m", "--set", "sampler.steps=3"]
    assert cli.main([str(a) for a in argv]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"COV-R", "MAT-R", "COV-P", "MAT-P", "COV-R-median"} <= set(result["model"])
    protocol = result["protocol"]
    assert protocol["threshold_A"] == 0.5 and protocol["split"]["range"] == [0, 3]
    assert protocol["paper_geodiff_c"]["scores_mean_median"]["COV-R"] == [90.07, 93.39]
    split_root, _ = split_folder
    argv = ["train", "--config", "drugs-paper", "--out", tmp_path / "run2", "--set", f"data.root={split_root}"]
    assert cli.main([str(a) for a in [*argv, *[x for s in TINY for x in ("--set", s)]]]) == 0
    capsys.readouterr()
    argv = ["evaluate", "--config", "drugs-paper", "--set", f"data.root={split_root}", "--set", "data.test_start=0"]
    assert cli.main([str(a) for a in [*argv, "--set", "data.test_end=2"]]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"]["threshold_A"] == 1.25 and result["protocol"]["molecules"] == 2


def test_cli_refuses_bad_geom_input(rdkit_folder, converted, tmp_path, cli_error):
    root, _ = rdkit_folder
    out, _, _ = converted
    ev = ["evaluate", "--config", "qm9-paper", "--set"]
    cli_error(cli, [*ev, f"data.root={tmp_path}/nowhere"], "data.root", "no such directory")
    cli_error(cli, [*ev, f"data.root={tmp_path}"], "data.root", "holds neither summary_qm9.json")
    cli_error(cli, [*ev, "data.dataset=qm7", "--set", f"data.root={out}"], "data.dataset", "['qm9', 'drugs']", "qm7")
    cli_error(cli, [*ev, "data.source=zip", "--set", f"data.root={out}"], "data.source", "rdkit-folder", "zip")
    cli_error(cli, [*ev, "data.train_fraction=1.5", "--set", f"data.root={out}"], "data.train_fraction", "(0, 1)")
    cli_error(
        cli,
        [*ev, "data.test_start=5", "--set", "data.test_end=5", "--set", f"data.root={out}"],
        "data.test_start, data.test_end",
        "start < end",
    )
    cli_error(cli, [*ev, f"data.root={out}"], "data.split_molecules", "expected at most 5", "got 50000")
    cli_error(
        cli,
        ["train", "--config", "qm9-paper", "--set", f"data.root={out}", "--set", "data.sdf=x.sdf"],
        "data.sdf, data.root",
        "one source",
    )
    cli_error(cli, ["convert-geom", "--out", tmp_path / "c", "--root", root], "--trust-pickle", "required")
    cli_error(
        cli,
        ["convert-geom", "--trust-pickle", "--root", root, "--pickle", "x.pickle"],
        "--pickle, --root",
        "exactly one of",
    )
    cli_error(cli, ["convert-geom", "--trust-pickle", "--split-pickle", root / "x.pkl"], "--out", "required")
    cli_error(
        cli,
        ["convert-geom", "--trust-pickle", "--split-pickle", tmp_path / "none.pkl", "--out", tmp_path / "o.sdf"],
        "none.pkl",
        "no such file",
    )
