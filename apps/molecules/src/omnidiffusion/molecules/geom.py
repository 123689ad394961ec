"""GEOM-QM9 and GEOM-Drugs as GeoDiff uses them: the rdkit_folder, GeoDiff's split files, the paper's split.

GEOM (Axelrod & Gomez-Bombarelli 2022, Harvard Dataverse doi:10.7910/DVN/JNGTDF), `rdkit_folder`:
  summary_qm9.json          {smiles: {"uniqueconfs": int, "pickle_path": "qm9/<name>.pickle", "totalconfs", ...}}
  qm9/<name>.pickle         {"smiles", "uniqueconfs", "conformers": [{"rd_mol", "boltzmannweight", "totalenergy",
                             "geom_id", ...}, ...]}                    (drugs: summary_drugs.json, drugs/...)
GeoDiff's processed split (Xu et al. 2022, from ConfGF): train_data_40k.pkl, val_data_5k.pkl, test_data_1k.pkl,
pickled lists of torch-geometric Data (smiles, pos, rdmol, boltzmannweight, totalenergy).

Both are pickles. The per-molecule files and the split files are converted to SDF once, by a command the user
runs knowingly (`convert-geom --trust-pickle`, restricted unpickler in `safepickle`); loaders read only the
summary JSON and the SDF files:
  <root>/qm9/<name>.sdf     one record per GEOM conformer, file order, with the properties geom_smiles,
                            geom_uniqueconfs, conformer_index, boltzmannweight, totalenergy, geom_id
  <root>/<split>.sdf        one record per item of GeoDiff's split file, with its `smiles` property

The split from the rdkit_folder follows GeoDiff's utils/datasets.py:
- `preprocess_GEOM_dataset_with_fixed_num_conf` (train/val): summary entries with `uniqueconfs` >= 5 and a
  pickle_path, in file order, shuffled by Python's `random` seeded 2021, first 50,000 kept; a second shuffle of
  range(50,000) assigns positions int(0.8 n) / int(0.9 n) to train / val / (fixed-conformer) test; each molecule
  keeps its 5 most Boltzmann-probable conformers (all of them when it has exactly 5 unique ones).
- `get_test_set_with_large_num_conf` (the benchmark test, 1000 molecules): reseeded 2021, entries with 50..500
  unique conformers not in train or val, shuffled, first 1000, every unique conformer kept; GeoDiff's test.py
  scores molecules [800, 1000) of it, grouped by SMILES in file order.
- A molecule whose file has fewer conformers than `uniqueconfs`, or none, is dropped (GeoDiff's "bad case").
Train/val/test membership comes from the summary alone, so only those molecules need converting.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from rdkit import Chem, RDLogger

from .chem import canonical_key, check_molecule
from .data import check_record_coordinates, write_sdf
from .safepickle import Record, load_trusted_pickle
from .settings import DataConfig

GEOM_DATASETS = ("qm9", "drugs")
SOURCES = ("auto", "rdkit-folder", "geodiff-split")
SPLIT_FILES = {"train": "train_data_40k", "val": "val_data_5k", "test": "test_data_1k"}
COV_THRESHOLD = {"qm9": 0.5, "drugs": 1.25}  # GeoDiff sec. 5.2
# Xu et al. 2022, GeoDiff-C without FF (mean / median): QM9 camera-ready App. Table 5, Drugs Table 1.
PAPER_SCORES = {
    "qm9": {"COV-R": [90.07, 93.39], "MAT-R": [0.2090, 0.1988], "COV-P": [52.79, 50.29], "MAT-P": [0.4448, 0.4267]},
    "drugs": {"COV-R": [89.13, 97.88], "MAT-R": [0.8629, 0.8529], "COV-P": [61.47, 64.55], "MAT-P": [1.1712, 1.1232]},
}
_TRUST = (
    "GEOM and GeoDiff files are Python pickles, which can run arbitrary code when loaded; pass trust_pickle=True "
    "(CLI --trust-pickle) only for files from a source you trust"
)


@dataclass
class GeomMolecule:
    """One converted GEOM molecule: every conformer of its file (in file order) and GEOM's bookkeeping."""

    smiles: str
    mol: Chem.Mol
    uniqueconfs: int
    weights: list[float]


def summary_path(root: str | Path, dataset: str) -> Path:
    if dataset not in GEOM_DATASETS:
        raise ValueError(f"data.dataset: expected one of {list(GEOM_DATASETS)}, got {dataset!r}")
    return Path(root) / f"summary_{dataset}.json"


def _check_pickle_path(value: Any, where: str) -> str:
    parts = PurePosixPath(value).parts if isinstance(value, str) else ()
    if not parts or value.startswith("/") or ".." in parts or not value.endswith(".pickle"):
        raise ValueError(f"{where}: pickle_path: expected a relative path '<folder>/<name>.pickle', got {value!r}")
    return value


def read_summary(root: str | Path, dataset: str) -> dict[str, dict[str, Any]]:
    """GEOM's summary_<dataset>.json (plain JSON): {smiles: metadata}, file order kept, entries checked."""
    path = summary_path(root, dataset)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected GEOM's rdkit_folder summary for {dataset}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{smiles: {{...}}}}, got a JSON {type(data).__name__}")
    for smiles, meta in data.items():
        where = f"{path}: entry {smiles!r}"
        if not isinstance(meta, dict):
            raise ValueError(f"{where}: expected an object of metadata, got {type(meta).__name__}")
        u = meta.get("uniqueconfs")
        if u is not None and (isinstance(u, bool) or not isinstance(u, int) or u < 0):
            raise ValueError(f"{where}: uniqueconfs: expected an integer >= 0, got {u!r}")
        if meta.get("pickle_path") is not None:
            _check_pickle_path(meta["pickle_path"], where)
    return data


def converted_path(root: str | Path, pickle_path: str) -> Path:
    """Where `convert_rdkit_folder` writes the SDF of a summary entry: the pickle's path with suffix .sdf."""
    return Path(root) / PurePosixPath(pickle_path).with_suffix(".sdf")


def geodiff_split(summary: dict[str, dict[str, Any]], cfg: DataConfig) -> dict[str, list[tuple[str, str]]]:
    """GeoDiff's split of a GEOM summary: {"train", "val", "test_fixed", "test"} -> [(smiles, pickle_path)].

    "test_fixed" is the 10 % held out by the fixed-conformer split; "test" is the benchmark pool (see module doc).
    """

    def pool(keep) -> list[tuple[str, str]]:
        return [
            (s, m["pickle_path"])
            for s, m in summary.items()
            if m.get("uniqueconfs") is not None and m.get("pickle_path") is not None and keep(s, m["uniqueconfs"])
        ]

    k, n = cfg.confs_per_mol, cfg.split_molecules
    rng = random.Random(cfg.split_seed)  # the same stream as GeoDiff's random.seed(seed); random.shuffle(...)
    chosen = pool(lambda s, u: u >= k)
    rng.shuffle(chosen)
    if len(chosen) < n:
        raise ValueError(
            f"data.split_molecules: expected at most {len(chosen)} (summary entries with >= {k} unique conformers), "
            f"got {n}"
        )
    chosen = chosen[:n]
    order = list(range(n))
    rng.shuffle(order)
    val_fraction = (1.0 - cfg.train_fraction) / 2
    ends = (int(n * cfg.train_fraction), int(n * (cfg.train_fraction + val_fraction)))
    part = {i: "train" if rank < ends[0] else "val" if rank < ends[1] else "test_fixed" for rank, i in enumerate(order)}
    out: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test_fixed": []}
    for i, item in enumerate(chosen):
        out[part[i]].append(item)
    block = {s for s, _ in out["train"] + out["val"]}
    rng = random.Random(cfg.split_seed)
    test = pool(lambda s, u: cfg.test_min_confs <= u <= cfg.test_max_confs and s not in block)
    rng.shuffle(test)
    if len(test) < cfg.test_pool:
        raise ValueError(
            f"data.test_pool: expected at most {len(test)} (entries with {cfg.test_min_confs}..{cfg.test_max_confs} "
            f"unique conformers outside train and val), got {cfg.test_pool}"
        )
    out["test"] = test[: cfg.test_pool]
    return out


def select_conformers(mol: GeomMolecule, k: int | None) -> list[int] | None:
    """GeoDiff's choice of conformer indices: k most Boltzmann-probable (None: the first `uniqueconfs`).

    Returns None for GeoDiff's bad case (uniqueconfs larger than the conformers in the file, or 0).
    """
    n = mol.mol.GetNumConformers()
    if mol.uniqueconfs > n or mol.uniqueconfs <= 0:
        return None
    if k is None or mol.uniqueconfs == k:
        return list(range(mol.uniqueconfs if k is None else k))
    return np.argsort(-np.asarray(mol.weights, dtype=float))[:k].tolist()  # numpy's default sort, as GeoDiff


def _signature(mol: Chem.Mol) -> tuple:
    atoms = tuple((a.GetAtomicNum(), a.GetFormalCharge()) for a in mol.GetAtoms())
    bonds = tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx(), str(b.GetBondType())) for b in mol.GetBonds()))
    return atoms, bonds


def _float_prop(rec: Chem.Mol, key: str, where: str, default: float | None = None) -> float | None:
    if not rec.HasProp(key):
        return default
    text = rec.GetProp(key)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: property {key}: expected a number, got {text!r}") from None


def _read_records(path: Path) -> list[Chem.Mol]:
    if path.is_dir():
        raise ValueError(f"sdf {path}: is a directory, expected an SDF file")
    if not path.is_file():
        raise FileNotFoundError(f"sdf {path}: no such file")
    RDLogger.DisableLog("rdApp.*")
    try:
        records = list(Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True))
    finally:
        RDLogger.EnableLog("rdApp.*")
    if not records:
        raise ValueError(f"sdf {path}: no SDF records")
    for k, rec in enumerate(records):
        if rec is None:
            raise ValueError(f"sdf {path}: record {k} cannot be read by RDKit")
        check_record_coordinates(rec, f"sdf {path}: record {k}")
    return records


def _stack(records: list[Chem.Mol], path: Path, first_index: int = 0) -> Chem.Mol:
    """One Mol carrying the conformers of records that list the same atoms and bonds in the same order."""
    mol = Chem.Mol(records[0])
    mol.RemoveAllConformers()
    sig = _signature(records[0])
    for k, rec in enumerate(records):
        if _signature(rec) != sig:
            raise ValueError(
                f"sdf {path}: record {first_index + k}: atoms or bonds differ from the molecule's first record; "
                "every record of one molecule must list the same atoms in the same order"
            )
        mol.AddConformer(Chem.Conformer(rec.GetConformer()), assignId=True)
    return mol


def read_geom_sdf(path: str | Path) -> GeomMolecule:
    """A per-molecule SDF written by `convert_rdkit_folder`: every conformer, uniqueconfs, Boltzmann weights."""
    path = Path(path)
    records = _read_records(path)
    if not records[0].HasProp("geom_uniqueconfs"):
        raise ValueError(f"sdf {path}: record 0 has no geom_uniqueconfs property; expected a file from convert-geom")
    text = records[0].GetProp("geom_uniqueconfs")
    if not text.strip().isdigit():
        raise ValueError(f"sdf {path}: record 0: property geom_uniqueconfs: expected an integer >= 0, got {text!r}")
    weights = [_float_prop(r, "boltzmannweight", f"sdf {path}: record {k}", -1.0) for k, r in enumerate(records)]
    smiles = records[0].GetProp("geom_smiles") if records[0].HasProp("geom_smiles") else canonical_key(records[0])
    return GeomMolecule(smiles, _stack(records, path), int(text), weights)


def read_split_sdf(path: str | Path) -> list[Chem.Mol]:
    """A GeoDiff split converted by `convert_geodiff_split`: one Mol per `smiles` value, in first-seen order.

    This is GeoDiff's PackedConformationDataset: conformers of one SMILES stacked, molecules in file order.
    """
    path = Path(path)
    records = _read_records(path)
    groups: dict[str, list[tuple[int, Chem.Mol]]] = {}
    for k, rec in enumerate(records):
        if not rec.HasProp("smiles"):
            raise ValueError(f"sdf {path}: record {k} has no smiles property; expected a file from convert-geom")
        groups.setdefault(rec.GetProp("smiles"), []).append((k, rec))
    out = []
    for smiles, items in groups.items():
        mol = _stack([r for _, r in items], path, items[0][0])
        mol.SetProp("_Name", smiles)
        out.append(mol)
    return out


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_records(path: Path, mols: list[Chem.Mol]) -> Path:
    def write(tmp: Path) -> None:
        writer = Chem.SDWriter(str(tmp))
        try:
            for m in mols:
                writer.write(m)
        finally:
            writer.close()

    return _atomic_write(path, write)


def geom_record_mols(record: Any, where: str) -> list[Chem.Mol]:
    """The conformer records of one unpickled GEOM molecule, each an RDKit Mol with GEOM's properties set."""
    if not isinstance(record, dict) or not isinstance(record.get("conformers"), list):
        raise ValueError(f"{where}: expected a GEOM dict with a 'conformers' list, got {type(record).__name__}")
    confs = record["conformers"]
    if not confs:
        raise ValueError(f"{where}: 'conformers' is empty")
    smiles = record.get("smiles")
    uniq = record.get("uniqueconfs", len(confs))
    if isinstance(uniq, bool) or not isinstance(uniq, int | np.integer) or uniq < 0:
        raise ValueError(f"{where}: uniqueconfs: expected an integer >= 0, got {uniq!r}")
    out = []
    for k, c in enumerate(confs):
        mol = c.get("rd_mol") if isinstance(c, dict) else None
        if not isinstance(mol, Chem.Mol) or mol.GetNumConformers() == 0:
            what = "a Mol without coordinates" if isinstance(mol, Chem.Mol) else type(mol).__name__
            raise ValueError(f"{where}: conformers[{k}]['rd_mol']: expected an RDKit Mol with coordinates, got {what}")
        if out and mol.GetNumAtoms() != out[0].GetNumAtoms():
            raise ValueError(
                f"{where}: conformers[{k}]['rd_mol']: expected {out[0].GetNumAtoms()} atoms, as conformers[0], "
                f"got {mol.GetNumAtoms()}"
            )
        m = Chem.Mol(mol, confId=mol.GetConformer().GetId())
        name = smiles if isinstance(smiles, str) else canonical_key(m)
        m.SetProp("_Name", name)
        m.SetProp("geom_smiles", name)
        m.SetProp("geom_uniqueconfs", str(int(uniq)))
        m.SetProp("conformer_index", str(k))
        for key in ("boltzmannweight", "totalenergy", "relativeenergy", "geom_id"):
            value = c.get(key)
            if isinstance(value, int | float | np.number) and not isinstance(value, bool):
                m.SetProp(key, repr(float(value)) if key != "geom_id" else str(int(value)))
        out.append(m)
    return out


def convert_rdkit_folder(
    root: str | Path,
    dataset: str,
    out: str | Path | None = None,
    *,
    trust_pickle: bool = False,
    cfg: DataConfig | None = None,
    everything: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """One-time conversion of GEOM's per-molecule pickles to SDF (`<out>/<pickle_path>.sdf`; out defaults to root).

    Converts the molecules of GeoDiff's split under `cfg` (train, val and both tests), or every summary entry
    with `everything`. Files already converted are kept, so an interrupted run resumes. The summary JSON is
    copied to `out`, which then holds everything training and evaluation read.
    """
    if not trust_pickle:
        raise ValueError(f"{root}: {_TRUST}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root}: no such directory; expected GEOM's rdkit_folder")
    summary = read_summary(root, dataset)
    if everything:
        items = [(s, m["pickle_path"]) for s, m in summary.items() if m.get("pickle_path")]
    else:
        split = geodiff_split(summary, cfg or DataConfig(dataset=dataset))
        items = list(dict.fromkeys(split["train"] + split["val"] + split["test_fixed"] + split["test"]))
    out = Path(out) if out is not None else root
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, expected a directory for the converted rdkit_folder")
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"GEOM {dataset} pickles -> SDF")
    done = kept = 0
    for _, pickle_path in items:
        target = converted_path(out, pickle_path)
        if target.is_file():
            kept += 1
            continue
        source = root / PurePosixPath(pickle_path)
        record = load_trusted_pickle(source, what="geom pickle")
        _write_records(target, geom_record_mols(record, f"geom pickle {source}"))
        done += 1
    if out.resolve() != root.resolve():
        shutil.copyfile(summary_path(root, dataset), summary_path(out, dataset))
    return {"out": str(out), "dataset": dataset, "converted": done, "already_converted": kept}


def convert_geodiff_split(path: str | Path, out_sdf: str | Path, *, trust_pickle: bool = False) -> Path:
    """One-time conversion of a GeoDiff split file (pickled list of PyG Data) to one SDF record per item.

    Reads the records' fields without torch-geometric (PyG 1.7 objects load in any version): smiles, pos (the
    coordinates used by GeoDiff), rdmol (the graph), boltzmannweight and totalenergy when present.
    """
    if not trust_pickle:
        raise ValueError(f"{path}: {_TRUST}")
    path, out_sdf = Path(path), Path(out_sdf)
    if out_sdf.is_dir():
        raise ValueError(f"--out {out_sdf}: is a directory, expected the path of the SDF file to write")
    items = load_trusted_pickle(path, what="geodiff split", allow_torch=True)
    if not isinstance(items, list) or not items:
        raise ValueError(f"geodiff split {path}: expected a non-empty list of torch-geometric Data records")
    mols = []
    for k, item in enumerate(items):
        where = f"geodiff split {path}: item {k}"
        if not isinstance(item, Record):
            raise ValueError(f"{where}: expected a torch-geometric Data record, got {type(item).__name__}")
        fields = item.fields()
        for key in ("smiles", "pos", "rdmol"):
            if key not in fields:
                raise ValueError(f"{where}: has no '{key}' field (fields: {sorted(fields)})")
        mol, pos, smiles = fields["rdmol"], fields["pos"], fields["smiles"]
        if not isinstance(mol, Chem.Mol) or not isinstance(smiles, str):
            raise ValueError(
                f"{where}: expected rdmol an RDKit Mol and smiles a str, got {type(mol).__name__}, "
                f"{type(smiles).__name__}"
            )
        pos = torch.as_tensor(pos, dtype=torch.float64)
        if tuple(pos.shape) != (mol.GetNumAtoms(), 3) or not torch.isfinite(pos).all():
            want = f"finite ({mol.GetNumAtoms()}, 3) coordinates"
            raise ValueError(f"{where}: pos: expected {want}, got shape {tuple(pos.shape)}")
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        conf = Chem.Conformer(m.GetNumAtoms())
        for i, (x, y, z) in enumerate(pos.tolist()):
            conf.SetAtomPosition(i, (x, y, z))
        conf.Set3D(True)
        m.AddConformer(conf, assignId=True)
        m.SetProp("_Name", smiles)
        m.SetProp("smiles", smiles)
        for key in ("boltzmannweight", "totalenergy", "idx"):
            if isinstance(fields.get(key), torch.Tensor) and fields[key].numel() == 1:
                m.SetProp(key, repr(fields[key].item()))
        mols.append(m)
    return _write_records(out_sdf, mols)


def resolve_source(cfg: DataConfig) -> str:
    """The source under cfg.root: "rdkit-folder" or "geodiff-split" (cfg.source "auto": whichever files it holds)."""
    root = Path(cfg.root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: {root}: no such directory")
    if cfg.source != "auto":
        return cfg.source
    if summary_path(root, cfg.dataset).is_file():
        return "rdkit-folder"
    if any((root / f"{stem}.sdf").is_file() for stem in SPLIT_FILES.values()):
        return "geodiff-split"
    pickles = [f"{stem}.pkl" for stem in SPLIT_FILES.values() if (root / f"{stem}.pkl").is_file()]
    hint = (
        f"; it has {', '.join(pickles)}: convert each once with `omnidiffusion-molecules convert-geom --trust-pickle "
        f"--split-pickle {root}/NAME.pkl --out {root}/NAME.sdf`"
        if pickles
        else ""
    )
    raise FileNotFoundError(
        f"data.root: {root} holds neither summary_{cfg.dataset}.json (GEOM rdkit_folder) nor GeoDiff split files "
        f"converted to SDF ({', '.join(s + '.sdf' for s in SPLIT_FILES.values())}){hint}"
    )


def load_split(cfg: DataConfig, part: str) -> tuple[list[Chem.Mol], dict[str, Any]]:
    """Reference ensembles of one split part ("train", "val", "test") of the GEOM data under cfg.root.

    "test" is the paper's benchmark set: molecules [test_start, test_end) of the test pool. Molecules this
    package cannot featurise (an element outside chem.ATOM_TYPES, ...) are left out and counted in the info.
    Returns (mols, info) with info = {source, dataset, part, molecules, conformers, bad_cases, skipped, ...}.
    """
    if part not in SPLIT_FILES:
        raise ValueError(f"part: expected one of {list(SPLIT_FILES)}, got {part!r}")
    source = resolve_source(cfg)
    root = Path(cfg.root)
    bad = 0
    if source == "geodiff-split":
        path = root / f"{SPLIT_FILES[part]}.sdf"
        if not path.is_file():
            pkl = path.with_suffix(".pkl")
            raise FileNotFoundError(
                f"{path}: no such file; GeoDiff's split files are pickles: convert {pkl.name} once with "
                f"`omnidiffusion-molecules convert-geom --trust-pickle --split-pickle {pkl} --out {path}`"
            )
        mols = read_split_sdf(path)
        where = str(path)
    else:
        split = geodiff_split(read_summary(root, cfg.dataset), cfg)
        k = None if part == "test" else cfg.confs_per_mol
        mols = []
        for _, pickle_path in split[part]:
            sdf = converted_path(root, pickle_path)
            if not sdf.is_file():
                raise FileNotFoundError(
                    f"{sdf}: no such file; GEOM's per-molecule files are pickles: convert them once with "
                    f"`omnidiffusion-molecules convert-geom --trust-pickle --root {root} --dataset {cfg.dataset}`"
                )
            geom = read_geom_sdf(sdf)
            ids = select_conformers(geom, k)
            if ids is None:
                bad += 1
                continue
            mol = Chem.Mol(geom.mol)
            mol.RemoveAllConformers()
            for i in ids:
                mol.AddConformer(Chem.Conformer(geom.mol.GetConformer(int(i))), assignId=True)
            mol.SetProp("_Name", geom.smiles)
            mols.append(mol)
        where = f"{summary_path(root, cfg.dataset)} (GeoDiff split, seed {cfg.split_seed})"
    if part == "test":
        mols = mols[cfg.test_start : cfg.test_end]
    kept, skipped = [], []
    for mol in mols:
        try:
            check_molecule(mol, name=mol.GetProp("_Name") if mol.HasProp("_Name") else canonical_key(mol))
        except ValueError as e:
            skipped.append(str(e))
            continue
        kept.append(mol)
    if not kept:
        raise ValueError(f"data.root: {where}: no usable {part} molecules" + (f" ({skipped[0]})" if skipped else ""))
    info = {
        "source": source,
        "dataset": cfg.dataset,
        "part": part,
        "from": where,
        "molecules": len(kept),
        "conformers": sum(m.GetNumConformers() for m in kept),
        "bad_cases": bad,
        "skipped": skipped,
    }
    if part == "test":
        info["range"] = [cfg.test_start, cfg.test_end]
    return kept, info


def convert_geom_pickle(path: str | Path, out_sdf: str | Path, *, trust_pickle: bool = False) -> Path:
    """One GEOM rdkit_folder pickle -> our multi-conformer SDF (`data.read_sdf` reads it); needs trust_pickle."""
    if not trust_pickle:
        raise ValueError(f"{path}: {_TRUST}")
    record = load_trusted_pickle(path, what="geom pickle")
    confs = geom_record_mols(record, f"geom pickle {path}")
    mol = Chem.Mol(confs[0])
    mol.RemoveAllConformers()
    for c in confs:
        mol.AddConformer(Chem.Conformer(c.GetConformer()), assignId=True)
    return write_sdf([mol], out_sdf)
