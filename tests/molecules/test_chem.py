"""Featurisation: our fixed vocabularies, k-hop edges on hand-worked graphs, clear errors on bad input."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem

from omnidiffusion.molecules.chem import ATOM_TYPES, BOND_TYPES, extend_graph, mol_to_graph, parse_smiles


def _pairs(edge_index, edge_type):
    return {(int(i), int(j)): int(t) for (i, j), t in zip(edge_index.T.tolist(), edge_type.tolist(), strict=True)}


def test_extend_graph_on_a_path():
    # Path 0-1-2-3-4 with bond types single, double, single, triple: hop orders counted by hand.
    bonds = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4], [1, 0, 2, 1, 3, 2, 4, 3]])
    types = torch.tensor([1, 1, 2, 2, 1, 1, 3, 3])
    pairs = _pairs(*extend_graph(5, bonds, types))
    assert pairs[(0, 1)] == 1 and pairs[(1, 2)] == 2 and pairs[(3, 4)] == 3 and pairs[(4, 3)] == 3
    assert pairs[(0, 2)] == 5 and pairs[(2, 4)] == 5  # two bonds apart
    assert pairs[(0, 3)] == 6 and pairs[(4, 1)] == 6  # three bonds apart
    assert (0, 4) not in pairs and (0, 0) not in pairs  # four apart: left to the radius graph
    assert len(pairs) == 2 * (4 + 3 + 2)


def test_fixed_vocabulary_not_rdkit_enum_order():
    # Ethanol with hydrogens: atom ids from our table, C-O single bond id 1; benzene bonds aromatic id 4.
    mol = parse_smiles("CCO")
    data = mol_to_graph(mol)
    assert data.atom_type.tolist() == [ATOM_TYPES[a.GetAtomicNum()] for a in mol.GetAtoms()]
    assert data.atom_type[:3].tolist() == [2, 2, 4] and set(data.atom_type[3:].tolist()) == {1}
    benzene = mol_to_graph(parse_smiles("c1ccccc1"))
    ring = _pairs(benzene.edge_index, benzene.edge_type)
    assert ring[(0, 1)] == BOND_TYPES["AROMATIC"] == 4 and ring[(0, 2)] == 5 and ring[(0, 3)] == 6
    assert int(Chem.BondType.AROMATIC) != 4  # RDKit's own enum value differs: the table is ours


def test_edges_are_symmetric_and_coordinates_are_read():
    mol = parse_smiles("OC1CC1")
    Chem.AllChem.EmbedMolecule(mol, randomSeed=1)
    data = mol_to_graph(mol, conf_id=-1)
    pairs = _pairs(data.edge_index, data.edge_type)
    assert all(pairs[(j, i)] == t for (i, j), t in pairs.items())
    assert torch.allclose(data.pos.double(), torch.tensor(mol.GetConformer().GetPositions()), atol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: parse_smiles("C1CC"), "cannot parse"),
        (lambda: parse_smiles(""), "non-empty"),
        (lambda: mol_to_graph(Chem.MolFromSmiles("CCO")), "implicit hydrogens"),
        (lambda: mol_to_graph(parse_smiles("C[Se]C")), "unsupported element"),
        (lambda: mol_to_graph(parse_smiles("CC.O")), "fragments"),
        (lambda: mol_to_graph(parse_smiles("CCO")), None),
        (lambda: mol_to_graph(parse_smiles("CCO"), conf_id=-1), "no conformer"),
    ],
)
def test_bad_input_gets_a_clear_error(make, message):
    if message is None:
        make()
        return
    with pytest.raises(ValueError, match=message):
        make()
