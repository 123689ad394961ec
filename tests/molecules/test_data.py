"""Data: SDF round trips keep every conformer; records are grouped and renumbered; GEOM pickles need trust."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from omnidiffusion.molecules.chem import parse_smiles
from omnidiffusion.molecules.data import (
    ConformerDataset,
    bundled_smiles,
    collate,
    read_sdf,
    write_sdf,
)
from omnidiffusion.molecules.geom import convert_geom_pickle


def _ensemble(smiles, n, seed):
    mol = parse_smiles(smiles)
    AllChem.EmbedMultipleConfs(mol, n, randomSeed=seed)
    return mol


def test_sdf_round_trip_keeps_conformers(tmp_path):
    mols = [_ensemble("CCO", 3, 0), _ensemble("c1ccncc1", 2, 1)]
    path = write_sdf(mols, tmp_path / "refs.sdf")
    back = read_sdf(path)
    assert [m.GetNumConformers() for m in back] == [3, 2]
    for a, b in zip(mols, back, strict=True):
        assert [x.GetAtomicNum() for x in a.GetAtoms()] == [x.GetAtomicNum() for x in b.GetAtoms()]
        for ca, cb in zip(a.GetConformers(), b.GetConformers(), strict=True):
            assert np.allclose(ca.GetPositions(), cb.GetPositions(), atol=1e-4)  # SDF keeps 4 decimals


def test_records_in_another_atom_order_are_renumbered_onto_the_first(tmp_path):
    mol = _ensemble("OCC#N", 2, 2)
    first = Chem.Mol(mol, confId=0)
    perm = list(reversed(range(mol.GetNumAtoms())))
    second = Chem.RenumberAtoms(Chem.Mol(mol, confId=1), perm)
    path = tmp_path / "mixed.sdf"
    w = Chem.SDWriter(str(path))
    w.write(first)
    w.write(second)
    w.close()
    (back,) = read_sdf(path)
    assert back.GetNumConformers() == 2
    assert np.allclose(back.GetConformer(1).GetPositions(), mol.GetConformer(1).GetPositions(), atol=1e-4)


def test_unreadable_and_missing_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_sdf(tmp_path / "missing.sdf")
    bad = tmp_path / "bad.sdf"
    bad.write_text("not a molfile\n$$$$\n")
    with pytest.raises(ValueError, match="record 0"):
        read_sdf(bad)


def test_geom_pickle_needs_explicit_trust(tmp_path):
    mol = _ensemble("CC=O", 2, 3)
    record = {
        "smiles": "CC=O",
        "conformers": [{"rd_mol": Chem.Mol(mol, confId=c.GetId())} for c in mol.GetConformers()],
    }
    path = tmp_path / "geom.pickle"
    path.write_bytes(pickle.dumps(record))
    with pytest.raises(ValueError, match="trust_pickle"):
        convert_geom_pickle(path, tmp_path / "out.sdf")
    out = convert_geom_pickle(path, tmp_path / "out.sdf", trust_pickle=True)
    assert read_sdf(out)[0].GetNumConformers() == 2


def test_bundled_list_and_dataset_batching():
    smiles = bundled_smiles()
    assert len(smiles) >= 300 and all(Chem.MolFromSmiles(s) is not None for s in smiles)
    mols = [_ensemble("CCO", 2, 0), _ensemble("CN", 1, 0)]
    ds = ConformerDataset(mols)
    assert len(ds) == 3
    b = collate([ds[0], ds[2]])
    assert b["pos"].shape == (9 + 7, 3) and b["batch"].tolist() == [0] * 9 + [1] * 7
    assert int(b["edge_index"].max()) < 16
