"""The network: E(3) equivariance in float64, invariance to atom order, the chain-rule target's sanity."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from omnidiffusion.molecules.chem import mol_to_graph, parse_smiles
from omnidiffusion.molecules.data import collate
from omnidiffusion.molecules.models import GeoDiffNet
from omnidiffusion.molecules.settings import GeoDiffSamplerConfig, GeoDiffScheduleConfig, LossConfig
from omnidiffusion.molecules.task import GeoDiffEps, geodiff_loss


def _random_orthogonal(gen):
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q  # det +1 or -1: rotations and reflections


def _graph(smiles_list, seed=0):
    items = []
    for k, smi in enumerate(smiles_list):
        mol = parse_smiles(smi)
        AllChem.EmbedMolecule(mol, randomSeed=seed + k)
        items.append(mol_to_graph(mol, conf_id=-1))
    return collate(items)


@pytest.fixture(scope="module")
def net64():
    torch.manual_seed(0)
    return GeoDiffNet(hidden=16, global_layers=2, local_layers=2, cutoff=4.0, num_rbf=8).double().eval()


def _call(net, pos, sigma, g):
    return net(pos, sigma, g["atom_type"], g["edge_index"], g["edge_type"], g["batch"])


def test_output_is_e3_equivariant_in_float64(net64):
    gen = torch.Generator().manual_seed(3)
    g = _graph(["CC(=O)N", "c1ccncc1", "OCC#N"])
    pos = g["pos"].double() + 0.3 * torch.randn(g["pos"].shape, generator=gen, dtype=torch.float64)
    sigma = torch.full((pos.shape[0],), 0.7, dtype=torch.float64)
    with torch.no_grad():
        out = _call(net64, pos, sigma, g)
        for _ in range(3):
            rot = _random_orthogonal(gen)
            shift = 5.0 * torch.randn(3, generator=gen, dtype=torch.float64)
            moved = _call(net64, pos @ rot.T + shift, sigma, g)
            assert torch.allclose(moved.local, out.local @ rot.T, atol=1e-5, rtol=0)
            assert torch.allclose(moved.global_, out.global_ @ rot.T, atol=1e-5, rtol=0)
    assert out.global_.abs().sum() > 0 and out.local.abs().sum() > 0  # the check is not vacuous


def test_core_eps_model_is_equivariant_too(net64):
    # GeoDiffEps adds the noise-level gating and the least-squares map to eps: still E(3)-equivariant.
    gen = torch.Generator().manual_seed(4)
    g = _graph(["CCOC", "FC1CC1"])
    schedule = GeoDiffScheduleConfig(timesteps=100, beta_end=0.05).build()
    model = GeoDiffEps(net64, schedule, GeoDiffSamplerConfig(global_start_sigma=10.0))
    x = 0.5 * g["pos"].double()
    t = torch.full((x.shape[0],), 0.3, dtype=torch.float64)
    cond = {k: g[k] for k in ("atom_type", "edge_index", "edge_type", "batch")}
    with torch.no_grad():
        eps = model(x, t, **cond)
        rot = _random_orthogonal(gen)
        moved = model(x @ rot.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), t, **cond)
    assert torch.allclose(moved, eps @ rot.T, atol=1e-5, rtol=0) and eps.abs().sum() > 0


def test_output_follows_a_permutation_of_the_atoms(net64):
    mol = parse_smiles("OC(F)C=CN")
    AllChem.EmbedMolecule(mol, randomSeed=7)
    perm = torch.randperm(mol.GetNumAtoms(), generator=torch.Generator().manual_seed(5)).tolist()
    shuffled = Chem.RenumberAtoms(mol, perm)  # atom k of `shuffled` is atom perm[k] of `mol`
    g1, g2 = collate([mol_to_graph(mol, -1)]), collate([mol_to_graph(shuffled, -1)])
    sigma = torch.full((mol.GetNumAtoms(),), 0.2, dtype=torch.float64)
    with torch.no_grad():
        o1 = _call(net64, g1["pos"].double(), sigma, g1)
        o2 = _call(net64, g2["pos"].double(), sigma, g2)
    assert torch.allclose(o2.local, o1.local[perm], atol=1e-5)
    assert torch.allclose(o2.global_, o1.global_[perm], atol=1e-5)


def test_tiny_overfit_loss_falls():
    torch.manual_seed(0)
    g = _graph(["CCO", "CC#N"])
    net = GeoDiffNet(hidden=16, global_layers=1, local_layers=1, num_rbf=8)
    cfg = LossConfig()
    schedule = GeoDiffScheduleConfig(timesteps=100, beta_end=0.05).build()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen_state = torch.get_rng_state()

    def eval_loss():
        torch.set_rng_state(gen_state)  # the same t and noise for the before/after comparison
        with torch.no_grad():
            return sum(geodiff_loss(net, g, schedule, cfg).item() for _ in range(8)) / 8

    before = eval_loss()
    for _ in range(60):
        loss = geodiff_loss(net, g, schedule, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.5 * before, (before, after)
