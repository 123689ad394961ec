"""From RDKit molecules to graphs: fixed atom and bond vocabularies, k-hop edge types, torch-geometric Data.

The vocabularies are our own tables, never RDKit enum order, so a checkpoint keeps its meaning across RDKit
versions (the released GeoDiff derives bond ids from `BondType.names`, which shift when RDKit adds a type).

Edge types (GeoDiff's extended graph, Xu et al. 2022 sec. 4.2; ConfGF's edge order 3):
  0          radius edge (added at run time from the current coordinates, see graph.radius_graph)
  1..4       bond: single, double, triple, aromatic
  5, 6       2-hop and 3-hop neighbours (angle and dihedral partners)
"""

from __future__ import annotations

import torch
from rdkit import Chem
from torch import Tensor
from torch_geometric.data import Data

# Atomic number -> atom type id. Id 0 is left free; QM9 elements first, then common drug-like elements.
ATOM_TYPES: dict[int, int] = {1: 1, 6: 2, 7: 3, 8: 4, 9: 5, 15: 6, 16: 7, 17: 8, 35: 9, 53: 10, 5: 11, 14: 12}
NUM_ATOM_TYPES = 13
BOND_TYPES: dict[str, int] = {"SINGLE": 1, "DOUBLE": 2, "TRIPLE": 3, "AROMATIC": 4}
HOP_TYPES: dict[int, int] = {2: 5, 3: 6}
RADIUS_TYPE = 0
NUM_EDGE_TYPES = 7
MAX_ORDER = 3
# GeoDiff is a small-molecule model (GEOM-Drugs: at most ~180 atoms with hydrogens); the dense k-hop graph of
# `extend_graph` costs O(n^3), about 10 s at 3000 atoms and hours at 20000, so larger inputs are refused.
MAX_ATOMS = 1000

_SYMBOLS = {z: Chem.GetPeriodicTable().GetElementSymbol(z) for z in ATOM_TYPES}


def parse_smiles(smiles: str, *, add_hs: bool = True) -> Chem.Mol:
    """SMILES -> RDKit Mol (with explicit hydrogens by default); ValueError names an invalid string."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise ValueError(f"smiles: expected a non-empty SMILES string, got {smiles!r}")
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None:
        raise ValueError(f"smiles: RDKit cannot parse {smiles!r} as a valid molecule")
    return Chem.AddHs(mol) if add_hs else mol


def check_molecule(mol: Chem.Mol, *, name: str = "mol") -> None:
    """Raise ValueError unless `mol` is one connected molecule of 2..MAX_ATOMS supported atoms, hydrogens explicit.

    Conformers are generated for every atom, so implicit hydrogens would silently be lost.
    """
    if not isinstance(mol, Chem.Mol):
        raise ValueError(f"{name}: expected an RDKit Mol, got {type(mol).__name__}")
    if mol.GetNumAtoms() < 2:
        raise ValueError(f"{name}: expected at least 2 atoms, got {mol.GetNumAtoms()}")
    if mol.GetNumAtoms() > MAX_ATOMS:
        raise ValueError(
            f"{name}: expected at most {MAX_ATOMS} atoms (hydrogens included; GeoDiff is a small-molecule model), "
            f"got {mol.GetNumAtoms()}"
        )
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() not in ATOM_TYPES})
    if bad:
        allowed = ", ".join(_SYMBOLS[z] for z in ATOM_TYPES)
        raise ValueError(f"{name}: unsupported element(s) {bad}; supported: {allowed}")
    implicit = sum(a.GetNumImplicitHs() for a in mol.GetAtoms())
    if implicit:
        raise ValueError(
            f"{name}: has {implicit} implicit hydrogens; conformers need explicit hydrogens (use Chem.AddHs(mol))"
        )
    if len(Chem.GetMolFrags(mol)) != 1:
        raise ValueError(f"{name}: expected one connected molecule, got {len(Chem.GetMolFrags(mol))} fragments")


def bond_type_id(bond: Chem.Bond) -> int:
    """Our fixed id of an RDKit bond (1..4); anything else (dative, zero-order, ...) is refused."""
    name = str(bond.GetBondType()).split(".")[-1]
    if name not in BOND_TYPES:
        raise ValueError(f"mol: bond {bond.GetIdx()} has unsupported type {name}; supported: {list(BOND_TYPES)}")
    return BOND_TYPES[name]


def extend_graph(n: int, bond_index: Tensor, bond_type: Tensor, order: int = MAX_ORDER) -> tuple[Tensor, Tensor]:
    """Add k-hop edges (k = 2..order) to a bond graph; returns (edge_index (2, E), edge_type (E,)).

    The shortest-path order of each pair comes from powers of (A + I): pair (i, j) has order k when it first
    becomes reachable in k steps. Bonds keep their type; k-hop pairs get HOP_TYPES[k]. Both directions present.
    """
    adj = torch.zeros(n, n, dtype=torch.long)
    adj[bond_index[0], bond_index[1]] = 1
    reach = torch.eye(n, dtype=torch.long)
    step = (adj + torch.eye(n, dtype=torch.long)).clamp(max=1)
    hops = torch.full((n, n), -1, dtype=torch.long)  # -1: unreachable within `order`
    hops[torch.eye(n, dtype=torch.bool)] = 0
    for k in range(1, order + 1):
        reach = (reach @ step).clamp(max=1)
        new = (reach > 0) & (hops < 0)
        hops[new] = k
    types = torch.zeros(n, n, dtype=torch.long)
    types[bond_index[0], bond_index[1]] = bond_type
    for k, type_id in HOP_TYPES.items():
        if k <= order:
            types[hops == k] = type_id
    row, col = torch.nonzero(types > 0, as_tuple=True)
    return torch.stack([row, col]), types[row, col]


def mol_to_graph(mol: Chem.Mol, conf_id: int | None = None, *, name: str = "mol") -> Data:
    """An RDKit Mol (explicit hydrogens) -> torch-geometric Data.

    Fields: atom_type (N,), edge_index (2, E) and edge_type (E,) of the extended graph (bonds + 2/3-hop),
    num_nodes, and pos (N, 3) in Angstrom when `conf_id` is given (-1: the default conformer).
    """
    check_molecule(mol, name=name)
    n = mol.GetNumAtoms()
    atom_type = torch.tensor([ATOM_TYPES[a.GetAtomicNum()] for a in mol.GetAtoms()], dtype=torch.long)
    rows, cols, types = [], [], []
    for bond in mol.GetBonds():
        i, j, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), bond_type_id(bond)
        rows += [i, j]
        cols += [j, i]
        types += [b, b]
    bond_index = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)
    edge_index, edge_type = extend_graph(n, bond_index, torch.tensor(types, dtype=torch.long))
    data = Data(atom_type=atom_type, edge_index=edge_index, edge_type=edge_type, num_nodes=n)
    if conf_id is not None:
        if mol.GetNumConformers() == 0:
            raise ValueError(f"{name}: has no conformer to take coordinates from")
        data.pos = torch.tensor(mol.GetConformer(conf_id).GetPositions(), dtype=torch.float32)
    return data


def set_conformers(mol: Chem.Mol, positions: list[Tensor] | Tensor) -> Chem.Mol:
    """A copy of `mol` whose conformers are the given (N, 3) coordinate sets (Angstrom)."""
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    for pos in positions:
        if tuple(pos.shape) != (mol.GetNumAtoms(), 3):
            raise ValueError(f"positions: expected ({mol.GetNumAtoms()}, 3) per conformer, got {tuple(pos.shape)}")
        conf = Chem.Conformer(mol.GetNumAtoms())
        for i, (x, y, z) in enumerate(pos.detach().double().cpu().tolist()):
            conf.SetAtomPosition(i, (x, y, z))
        out.AddConformer(conf, assignId=True)
    return out


def canonical_key(mol: Chem.Mol) -> str:
    """Canonical heavy-atom SMILES (no stereo) used to group conformer records of one molecule."""
    return Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False)
