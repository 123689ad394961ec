"""ConformerGenerator: what a downstream user calls.

gen = ConformerGenerator.from_pretrained("runs/molecules")
mol = gen.generate("CCO", n_conformers=10)              # RDKit Mol with hydrogens and 10 conformers
mol = gen.generate(mol, 10, method="dpm++2m", steps=50)   # core's few-step sampler instead of the paper's
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from rdkit import Chem
from torch import nn

from omnidiffusion.core.checks import positive_int, resolve_device
from omnidiffusion.core.config import from_dict
from omnidiffusion.core.io import load_pretrained, read_pretrained_config

from .chem import check_molecule, parse_smiles, set_conformers
from .config import DiffusionConfig, SamplerConfig
from .data import graph_batch
from .models import GeoDiffNet
from .sampling import check_sampler, sample_positions, sampler_fields
from .task import build_schedule


class ConformerGenerator:
    """A trained GeoDiffNet with its schedule and sampler settings; `generate` returns RDKit Mols."""

    def __init__(self, net: nn.Module, diffusion: DiffusionConfig, sampler: SamplerConfig):
        self.net = net.eval()
        self.diffusion = diffusion
        self.sampler = sampler
        self.schedule = build_schedule(diffusion)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> ConformerGenerator:
        """Load a directory written by `omnidiffusion-molecules train` (config.json + model.safetensors).

        device: "cpu", "cuda", "cuda:N" or "auto"; a GPU that is not there is refused with a ValueError.
        """
        net = load_pretrained(directory, map_location=resolve_device(device, name="device"))
        if not isinstance(net, GeoDiffNet):
            raise ValueError(f"{directory}: holds a {type(net).__name__}, expected a GeoDiffNet checkpoint")
        meta = read_pretrained_config(directory).get("metadata") or {}
        if "diffusion" not in meta:
            raise ValueError(f"{directory}/config.json: metadata has no 'diffusion' entry (not a molecules run)")
        diffusion = from_dict(DiffusionConfig, meta["diffusion"], where="metadata.diffusion.")
        sampler = from_dict(SamplerConfig, meta.get("sampler", {}), where="metadata.sampler.")
        return cls(net, diffusion, sampler)

    def sampler_config(self, **overrides) -> SamplerConfig:
        """The stored sampler settings with non-None overrides (method, steps, grid, w_global, ...), checked.

        A bad override is named as given (`steps: ...`), a bad stored value as `sampler.<key>`.
        """
        unknown = sorted(set(overrides) - set(sampler_fields()))
        if unknown:
            raise ValueError(f"{unknown[0]}: not a sampler setting; expected one of {sampler_fields()}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return check_sampler(dataclasses.replace(self.sampler, **given), {k: k for k in given})

    def _as_mol(self, mol_or_smiles: Chem.Mol | str, name: str) -> Chem.Mol:
        mol = parse_smiles(mol_or_smiles) if isinstance(mol_or_smiles, str) else mol_or_smiles
        check_molecule(mol, name=name)
        return mol

    def generate_many(
        self,
        mols: Sequence[Chem.Mol | str],
        n_conformers: Sequence[int],
        *,
        method: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        max_atoms: int = 20000,
        progress: bool = False,
        **sampler_overrides,
    ) -> list[Chem.Mol]:
        """Conformers for several molecules, batched together (at most `max_atoms` atoms per network call).

        mols: a list of SMILES or RDKit Mols (explicit hydrogens); n_conformers: one count >= 1 per molecule.
        """
        for arg, value in (("mols", mols), ("n_conformers", n_conformers)):
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise ValueError(f"{arg}: expected a list (one entry per molecule), got {type(value).__name__}")
        if len(mols) != len(n_conformers):
            raise ValueError(f"n_conformers: expected one count per molecule ({len(mols)}), got {len(n_conformers)}")
        counts = [positive_int(n, f"n_conformers[{k}]") for k, n in enumerate(n_conformers)]
        max_atoms = positive_int(max_atoms, "max_atoms")
        cfg = self.sampler_config(method=method, steps=steps, seed=seed, **sampler_overrides)
        parsed = [self._as_mol(m, f"mols[{k}]") for k, m in enumerate(mols)]
        jobs = [(k, 1) for k, n in enumerate(counts) for _ in range(n)]
        device = next(self.net.parameters()).device
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        positions: list[list[torch.Tensor]] = [[] for _ in parsed]
        start = 0
        while start < len(jobs):
            chunk, atoms = [], 0
            while start < len(jobs) and (not chunk or atoms + parsed[jobs[start][0]].GetNumAtoms() <= max_atoms):
                chunk.append(jobs[start][0])
                atoms += parsed[jobs[start][0]].GetNumAtoms()
                start += 1
            graph = graph_batch([parsed[k] for k in chunk], [1] * len(chunk))
            graph = {k: v.to(device) for k, v in graph.items()}
            pos = sample_positions(self.net, self.schedule, cfg, graph, generator=generator, progress=progress)
            for slot, k in enumerate(chunk):
                positions[k].append(pos[graph["batch"] == slot].cpu())
        return [set_conformers(m, p) for m, p in zip(parsed, positions, strict=True)]

    def generate(
        self,
        mol_or_smiles: Chem.Mol | str,
        n_conformers: int = 10,
        *,
        method: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        **sampler_overrides,
    ) -> Chem.Mol:
        """An RDKit Mol (explicit hydrogens) carrying `n_conformers` generated conformers (Angstrom).

        method: "geodiff-ld" (paper) or a core sampler ("ddpm", "dpm++2m", ...); steps: grid size.
        """
        return self.generate_many(
            [mol_or_smiles], [n_conformers], method=method, steps=steps, seed=seed, **sampler_overrides
        )[0]
