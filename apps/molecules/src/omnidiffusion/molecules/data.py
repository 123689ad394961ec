"""Data: multi-conformer SDF files, SMILES lists, the bundled QM9-like molecules, and batching.

A conformer ensemble is one RDKit Mol (explicit hydrogens) with several conformers. SDF files hold one record
per conformer; records are grouped by their canonical heavy-atom SMILES and renumbered onto the first record's
atom order. Bundled data: `bundled_smiles()` (a shipped list); `reference_ensembles()` makes their reference
conformers with RDKit ETKDG + MMFF at data-preparation time (fixed seed) and caches them as SDF in a user cache
directory. GEOM and GeoDiff files: `geom` (pickles only through its one-time, trusted conversions).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem
from torch import Tensor
from torch.utils.data import Dataset
from torch_geometric.data import Batch, Data

from omnidiffusion.core.checks import positive_int

from .chem import canonical_key, check_molecule, mol_to_graph, parse_smiles

SMILES_RESOURCE = "qm9_like_smiles.txt"


def bundled_smiles() -> list[str]:
    """The shipped list of small QM9-like SMILES (C, N, O, F; at most 9 heavy atoms), in its fixed order."""
    text = importlib.resources.files("omnidiffusion.molecules").joinpath("data", SMILES_RESOURCE).read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def read_smiles_file(path: str | Path) -> list[str]:
    """One SMILES per line (first whitespace-separated field; '#' comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"smiles file {path}: no such file")
    out = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not out:
        raise ValueError(f"smiles file {path}: no SMILES found")
    return out


def embed_conformers(mol: Chem.Mol, n: int, seed: int, *, mmff: bool = True, prune_rms: float = 0.0) -> Chem.Mol:
    """ETKDGv3 conformers (optionally MMFF-optimised) of `mol` (explicit hydrogens); a new Mol.

    Raises ValueError when RDKit cannot embed the molecule.
    """
    n = positive_int(n, "n")
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    params.pruneRmsThresh = float(prune_rms)
    ids = AllChem.EmbedMultipleConfs(out, numConfs=int(n), params=params)
    if len(ids) == 0:
        raise ValueError(f"mol {Chem.MolToSmiles(Chem.RemoveHs(mol))}: RDKit ETKDG could not embed a conformer")
    if mmff:
        AllChem.MMFFOptimizeMoleculeConfs(out, maxIters=500)
    return out


def _cache_dir() -> Path:
    root = os.environ.get("OMNIDIFFUSION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "omnidiffusion"
    )
    return Path(root) / "molecules"


def reference_ensembles(
    smiles: Sequence[str], n_confs: int = 5, seed: int = 42, *, cache: bool = True, progress: bool = False
) -> list[Chem.Mol]:
    """ETKDG + MMFF reference ensembles (n_confs conformers, near-duplicates within 0.1 A pruned) per SMILES.

    Deterministic given (smiles, n_confs, seed); cached as one SDF under $OMNIDIFFUSION_CACHE (default
    ~/.cache/omnidiffusion/molecules) keyed by a hash of the inputs.
    """
    n_confs = positive_int(n_confs, "n_confs")
    key = hashlib.sha256(f"{list(smiles)}|{n_confs}|{seed}|etkdgv3+mmff|v1".encode()).hexdigest()[:16]
    path = _cache_dir() / f"refs_{key}.sdf"
    if cache and path.is_file():
        mols = read_sdf(path)
        if [canonical_key(m) for m in mols] == [canonical_key(parse_smiles(s)) for s in smiles]:
            return mols
    mols = []
    items: Iterable[str] = smiles
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(smiles, desc="reference conformers (ETKDG+MMFF)", leave=False)
    for i, smi in enumerate(items):
        mol = embed_conformers(parse_smiles(smi), n_confs, seed + i, prune_rms=0.1)
        mols.append(mol)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        write_sdf(mols, tmp)
        os.replace(tmp, path)
    return mols


def write_sdf(mols: Sequence[Chem.Mol], path: str | Path) -> Path:
    """One SDF record per conformer of every Mol, each tagged with its molecule's SMILES (`_Name`, `smiles`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"sdf {path}: is a directory, expected a path for an SDF file")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = Chem.SDWriter(str(path))
    try:
        for mol in mols:
            smi = canonical_key(mol)
            named = Chem.Mol(mol)
            named.SetProp("_Name", smi)
            named.SetProp("smiles", smi)
            for conf in mol.GetConformers():
                writer.write(named, confId=conf.GetId())
    finally:
        writer.close()
    return path


def check_record_coordinates(rec: Chem.Mol, where: str) -> None:
    """Raise ValueError (prefixed by `where`) unless the record has finite, non-degenerate 3-D coordinates."""
    if rec.GetNumConformers() == 0:
        raise ValueError(f"{where} has no coordinates")
    conf = rec.GetConformer()
    xyz = conf.GetPositions()
    if not np.isfinite(xyz).all():
        raise ValueError(f"{where} has non-finite coordinates")
    if not conf.Is3D() or np.ptp(xyz, axis=0).max() == 0:
        raise ValueError(f"{where} has no 3-D coordinates (a 2-D or all-zero block); expected 3-D conformers")


def read_sdf(path: str | Path) -> list[Chem.Mol]:
    """Read a multi-conformer SDF: records grouped by canonical SMILES into one Mol each (file order kept).

    Hydrogens are kept as written; every record of a molecule is renumbered onto its first record's atom order.
    Every record needs finite 3-D coordinates (a 2-D or all-zero block, as a SMILES export writes, is refused).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"sdf {path}: is a directory, expected an SDF file")
    if not path.is_file():
        raise FileNotFoundError(f"sdf {path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"sdf {path}: empty file, expected SDF records")
    RDLogger.DisableLog("rdApp.*")
    try:
        records = list(Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True))
    finally:
        RDLogger.EnableLog("rdApp.*")
    groups: dict[str, Chem.Mol] = {}
    for k, rec in enumerate(records):
        if rec is None:
            raise ValueError(f"sdf {path}: record {k} cannot be read by RDKit")
        check_record_coordinates(rec, f"sdf {path}: record {k}")
        key = canonical_key(rec)
        if key not in groups:
            groups[key] = Chem.Mol(rec)
            continue
        first = groups[key]
        match = rec.GetSubstructMatch(first) if rec.GetNumAtoms() == first.GetNumAtoms() else ()
        if len(match) != first.GetNumAtoms():
            raise ValueError(f"sdf {path}: record {k} ({key}) has a different atom set than the first record")
        renum = Chem.RenumberAtoms(rec, list(match))
        first.AddConformer(Chem.Conformer(renum.GetConformer()), assignId=True)
    if not groups:
        raise ValueError(f"sdf {path}: no records")
    return list(groups.values())


class ConformerDataset(Dataset):
    """One item per (molecule, conformer): torch-geometric Data with pos (N, 3) and the extended graph."""

    def __init__(self, mols: Sequence[Chem.Mol]):
        self.items: list[Data] = []
        for k, mol in enumerate(mols):
            check_molecule(mol, name=f"mols[{k}]")
            base = mol_to_graph(mol, name=f"mols[{k}]")
            for conf in mol.GetConformers():
                item = base.clone()
                item.pos = torch.tensor(conf.GetPositions(), dtype=torch.float32)
                self.items.append(item)
        if not self.items:
            raise ValueError("mols: no conformers to train on")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Data:
        return self.items[i]


def collate(items: Sequence[Data]) -> dict[str, Tensor]:
    """Batch graphs into plain tensors: pos (N, 3) if present, atom_type, edge_index, edge_type, batch (N,)."""
    b = Batch.from_data_list(list(items))
    out = {"atom_type": b.atom_type, "edge_index": b.edge_index, "edge_type": b.edge_type, "batch": b.batch}
    if getattr(b, "pos", None) is not None:
        out["pos"] = b.pos
    return out


def graph_batch(mols: Sequence[Chem.Mol], copies: Sequence[int]) -> dict[str, Tensor]:
    """A batch holding copies[k] replicas of mols[k]'s graph (no coordinates), for sampling."""
    graphs = []
    for k, (mol, c) in enumerate(zip(mols, copies, strict=True)):
        g = mol_to_graph(mol, name=f"mols[{k}]")
        graphs += [g] * int(c)
    if not graphs:
        raise ValueError("copies: nothing to sample (all counts are 0)")
    return collate(graphs)
