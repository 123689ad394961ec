"""COV and MAT (Xu et al. 2021 ConfVAE / Shi et al. 2021 ConfGF protocol, used by GeoDiff) and baselines.

RMSD: heavy atoms only, RDKit `GetBestRMS` (optimal alignment over every symmetry-equivalent atom mapping),
with `maxMatches` capped so that symmetric molecules cannot stall. For one molecule with reference set S_r and
generated set S_g, the RMSD matrix is (|S_r|, |S_g|):
  COV-R = |{r : min_g RMSD(r, g) <= delta}| / |S_r|,   MAT-R = mean_r min_g RMSD(r, g)
  COV-P, MAT-P: the same with the roles of the sets swapped.
Scores are per molecule, then mean and median over molecules. delta = 0.5 A (QM9), 1.25 A (Drugs).

Baselines: random coordinates (a CoM-free Gaussian scaled to the reference radius of gyration; the floor) and
RDKit ETKDG with another seed (the strong reference).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from omnidiffusion.core.checks import positive_int, real_number

from .chem import canonical_key, set_conformers
from .data import embed_conformers

MAX_MATCHES = 1000


def check_conformers(mol: Chem.Mol, name: str) -> None:
    """Raise ValueError unless `mol` is an RDKit Mol with heavy atoms and at least one finite conformer."""
    if not isinstance(mol, Chem.Mol):
        raise ValueError(f"{name}: expected an RDKit Mol, got {type(mol).__name__}")
    if mol.GetNumConformers() == 0:
        raise ValueError(f"{name}: expected a Mol with conformers, got none")
    if not any(a.GetAtomicNum() > 1 for a in mol.GetAtoms()):
        raise ValueError(f"{name}: has no heavy atoms; COV/MAT use heavy-atom RMSD ({canonical_key(mol)})")
    for conf in mol.GetConformers():
        if not np.isfinite(conf.GetPositions()).all():
            raise ValueError(f"{name}: conformer {conf.GetId()} has non-finite coordinates")


def rmsd_matrix(ref: Chem.Mol, gen: Chem.Mol, *, max_matches: int = MAX_MATCHES) -> np.ndarray:
    """Heavy-atom best RMSD (Angstrom) between every reference and generated conformer: (n_ref, n_gen)."""
    check_conformers(ref, "ref")
    check_conformers(gen, "gen")
    max_matches = positive_int(max_matches, "max_matches")
    r, g = Chem.RemoveHs(ref), Chem.RemoveHs(gen)
    if r.GetNumAtoms() != g.GetNumAtoms():
        raise ValueError(f"ref, gen: different heavy-atom counts {r.GetNumAtoms()} and {g.GetNumAtoms()}")
    if canonical_key(ref) != canonical_key(gen):
        raise ValueError(f"ref, gen: expected the same molecule, got {canonical_key(ref)} and {canonical_key(gen)}")
    ref_ids = [c.GetId() for c in r.GetConformers()]
    gen_ids = [c.GetId() for c in g.GetConformers()]
    out = np.zeros((len(ref_ids), len(gen_ids)))
    for a, rid in enumerate(ref_ids):
        for b, gid in enumerate(gen_ids):
            probe = Chem.Mol(g, confId=gid)  # GetBestRMS aligns the probe in place
            out[a, b] = rdMolAlign.GetBestRMS(probe, r, refId=rid, maxMatches=max_matches)
    return out


def cov_mat(rmsd: np.ndarray, threshold: float) -> dict[str, float]:
    """COV-R, MAT-R, COV-P, MAT-P (COV in %, MAT in Angstrom) of one molecule's (n_ref, n_gen) RMSD matrix."""
    rmsd = np.asarray(rmsd, dtype=float)
    if rmsd.ndim != 2 or 0 in rmsd.shape:
        raise ValueError(f"rmsd: expected a non-empty (n_ref, n_gen) matrix, got shape {rmsd.shape}")
    if not np.isfinite(rmsd).all() or (rmsd < 0).any():
        raise ValueError("rmsd: expected finite distances >= 0, got NaN, inf or negative entries")
    threshold = check_threshold(threshold)
    best_r, best_p = rmsd.min(axis=1), rmsd.min(axis=0)
    return {
        "COV-R": 100.0 * float((best_r <= threshold).mean()),
        "MAT-R": float(best_r.mean()),
        "COV-P": 100.0 * float((best_p <= threshold).mean()),
        "MAT-P": float(best_p.mean()),
    }


def check_threshold(threshold: float) -> float:
    """The COV threshold as a float: a finite distance > 0 in Angstrom (0.5 QM9, 1.25 Drugs)."""
    return real_number(threshold, "threshold", low=0.0, low_open=True)


def summarize(per_molecule: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean and median over molecules of each score: {"COV-R": mean, "COV-R-median": median, ...}."""
    if not per_molecule:
        raise ValueError("per_molecule: no molecules to summarise")
    out: dict[str, float] = {}
    for key in per_molecule[0]:
        values = [m[key] for m in per_molecule]
        out[key] = float(np.mean(values))
        out[f"{key}-median"] = float(statistics.median(values))
    out["molecules"] = len(per_molecule)
    return out


def evaluate_sets(
    refs: Sequence[Chem.Mol], gens: Sequence[Chem.Mol], threshold: float, *, max_matches: int = MAX_MATCHES
) -> dict[str, float]:
    """COV/MAT over molecules: refs[k] and gens[k] are the same molecule with their conformer sets."""
    if len(refs) != len(gens):
        raise ValueError(f"refs, gens: expected the same number of molecules, got {len(refs)} and {len(gens)}")
    threshold = check_threshold(threshold)
    return summarize(
        [cov_mat(rmsd_matrix(r, g, max_matches=max_matches), threshold) for r, g in zip(refs, gens, strict=True)]
    )


def radius_of_gyration(mol: Chem.Mol) -> float:
    """Mean over conformers of sqrt(mean |x - centroid|^2) over all atoms (Angstrom)."""
    values = []
    for conf in mol.GetConformers():
        pos = conf.GetPositions()
        values.append(float(np.sqrt(((pos - pos.mean(0)) ** 2).sum(1).mean())))
    return float(np.mean(values))


def random_baseline(ref: Chem.Mol, n: int, seed: int) -> Chem.Mol:
    """n random conformers: CoM-free Gaussian coordinates scaled to the reference radius of gyration."""
    gen = torch.Generator().manual_seed(seed)
    rg = radius_of_gyration(ref)
    confs = []
    for _ in range(n):
        pos = torch.randn(ref.GetNumAtoms(), 3, generator=gen, dtype=torch.float64)
        pos = pos - pos.mean(0)
        confs.append(pos * rg / pos.pow(2).sum(1).mean().sqrt())
    return set_conformers(ref, confs)


def etkdg_baseline(ref: Chem.Mol, n: int, seed: int) -> Chem.Mol:
    """n RDKit ETKDGv3 + MMFF conformers with a seed other than the references' (no pruning)."""
    return embed_conformers(ref, n, seed, mmff=True)
