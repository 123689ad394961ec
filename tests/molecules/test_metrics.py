"""COV/MAT on hand-built cases, RMSD against an independent Kabsch computation, baselines' sanity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from omnidiffusion.molecules.chem import parse_smiles, set_conformers
from omnidiffusion.molecules.metrics import cov_mat, evaluate_sets, random_baseline, rmsd_matrix


def _kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(((a @ rot - b) ** 2).sum(1).mean()))


def test_cov_mat_on_a_hand_worked_matrix():
    rmsd = np.array([[0.1, 0.7, 0.9], [0.6, 0.8, 0.4]])  # 2 references x 3 generated
    m = cov_mat(rmsd, 0.5)
    assert m["COV-R"] == pytest.approx(100.0)  # row minima 0.1, 0.4
    assert m["MAT-R"] == pytest.approx(0.25)
    assert m["COV-P"] == pytest.approx(100.0 * 2 / 3)  # column minima 0.1, 0.7, 0.4
    assert m["MAT-P"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="threshold"):
        cov_mat(rmsd, 0.0)


def test_identical_sets_give_full_coverage_and_zero_matching():
    mol = parse_smiles("CC(=O)NC")
    AllChem.EmbedMultipleConfs(mol, 3, randomSeed=0)
    m = evaluate_sets([mol], [Chem.Mol(mol)], 0.5)
    assert m["COV-R"] == 100.0 and m["COV-P"] == 100.0
    assert m["MAT-R"] < 1e-6 and m["MAT-P"] < 1e-6


def test_rmsd_matches_kabsch_for_an_asymmetric_molecule_and_ignores_hydrogens():
    # N-C(O)-C-F has no heavy-atom symmetry, so the best RMSD is plain Kabsch on the heavy atoms.
    mol = parse_smiles("NC(O)CF")
    AllChem.EmbedMultipleConfs(mol, 2, randomSeed=3)
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    a = mol.GetConformer(0).GetPositions()
    b = mol.GetConformer(1).GetPositions()
    ref = set_conformers(mol, [torch.tensor(a)])
    b_moved = b.copy()
    b_moved[[i for i in range(mol.GetNumAtoms()) if i not in heavy]] += 3.0  # hydrogens far off: no effect
    gen = set_conformers(mol, [torch.tensor(b_moved)])
    got = rmsd_matrix(ref, gen)[0, 0]
    assert got == pytest.approx(_kabsch_rmsd(a[heavy], b[heavy]), abs=1e-6)


def test_symmetric_relabelling_is_not_penalised():
    # Benzene with its ring atoms relabelled (a rotation of the labels) is the same conformer: RMSD 0.
    mol = parse_smiles("c1ccccc1")
    AllChem.EmbedMolecule(mol, randomSeed=1)
    pos = mol.GetConformer().GetPositions()
    perm = [1, 2, 3, 4, 5, 0]
    swapped = pos.copy()
    swapped[:6] = pos[perm]
    got = rmsd_matrix(mol, set_conformers(mol, [torch.tensor(swapped)]))[0, 0]
    assert got < 1e-6


def test_random_baseline_has_the_reference_radius_of_gyration():
    mol = parse_smiles("CCCCO")
    AllChem.EmbedMolecule(mol, randomSeed=2)
    pos = mol.GetConformer().GetPositions()
    rg = np.sqrt(((pos - pos.mean(0)) ** 2).sum(1).mean())
    rand = random_baseline(mol, 4, seed=0)
    assert rand.GetNumConformers() == 4
    for conf in rand.GetConformers():
        p = conf.GetPositions()
        assert np.allclose(p.mean(0), 0, atol=1e-9)
        assert np.sqrt((p**2).sum(1).mean()) == pytest.approx(rg)
