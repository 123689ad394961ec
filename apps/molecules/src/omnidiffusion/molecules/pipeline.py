"""ConformerGenerator: what a downstream user calls.

gen = ConformerGenerator.from_pretrained("runs/molecules")
mol = gen.generate("CCO", n_conformers=10)              # RDKit Mol with hydrogens and 10 conformers
mol = gen.generate(mol, 10, method="dpm++2m", steps=50)   # core's few-step sampler instead of the paper's

Sampling follows the checkpoint's `[sampler]` (run_config.json, stored by `train`) unless a call overrides it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from rdkit import Chem
from torch import nn

from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.config import from_dict
from omnidiffusion.core.io import has_run_config, open_pretrained

from .chem import check_molecule, parse_smiles, set_conformers
from .data import graph_batch
from .models import GeoDiffNet
from .sampling import sample_positions
from .settings import GeoDiffSamplerConfig, MoleculesConfig


def config_from_metadata(metadata: dict, where: str) -> MoleculesConfig:
    """The run config of a checkpoint written before run_config.json existed (its config.json metadata).

    Such checkpoints stored `diffusion` (num_steps, beta_start, beta_end, local_weight, global_weight: now
    schedule.timesteps, schedule.beta_*, loss.*_weight on GeoDiff's sigmoid table) and `sampler`.
    """
    if "diffusion" not in metadata:
        raise ValueError(f"{where}: holds no run_config.json and no 'diffusion' metadata (not a molecules run)")
    old = dict(metadata["diffusion"])
    loss = {key: old.pop(key) for key in ("local_weight", "global_weight") if key in old}
    if "num_steps" in old:
        old["timesteps"] = old.pop("num_steps")
    data = {"schedule": old, "loss": loss, "sampler": dict(metadata.get("sampler", {}))}
    return from_dict(MoleculesConfig, data, where="metadata.")


class ConformerGenerator:
    """A trained GeoDiffNet with the config it was trained with; `generate` returns RDKit Mols.

    `config.schedule` is the network's diffusion table, `config.sampler` the default sampler settings.
    """

    def __init__(self, net: nn.Module, config: MoleculesConfig):
        self.net = net.eval()
        self.config = config
        self.schedule = config.schedule.build()

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: MoleculesConfig | None = None
    ) -> ConformerGenerator:
        """Load a directory written by `omnidiffusion-molecules train` (weights and run_config.json).

        device: "cpu", "cuda", "cuda:N" or "auto"; a GPU that is not there is refused with a ValueError.
        config: replaces the stored run config (the CLI passes the stored one with its --set overrides applied).
        A checkpoint of the earlier layout (no run_config.json) takes its schedule and sampler from its metadata.
        """
        stored = config is None and has_run_config(directory)
        pre = open_pretrained(
            directory,
            GeoDiffNet,
            config_cls=MoleculesConfig if stored else None,
            device=device,
            what="a molecules run written by train",
        )
        if config is None:
            config = pre.config if stored else config_from_metadata(pre.metadata, f"{directory}/config.json")
        return cls(pre.model, config)

    @property
    def sampler(self) -> GeoDiffSamplerConfig:
        """The default sampler settings (the run config's `[sampler]`)."""
        return self.config.sampler

    def sampler_config(self, **overrides) -> GeoDiffSamplerConfig:
        """The stored sampler settings with non-None overrides (method, steps, grid, w_global, ...), checked.

        A bad override is named as given (`steps: ...`).
        """
        keys = [f.name for f in dataclasses.fields(GeoDiffSamplerConfig)]
        unknown = sorted(set(overrides) - set(keys))
        if unknown:
            raise ValueError(f"{unknown[0]}: not a sampler setting; expected one of {keys}")
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return dataclasses.replace(self.sampler, **given)
        except ValueError as e:  # the stored settings were checked when loaded: the fault is an override's
            raise ValueError(str(e).removeprefix("sampler.")) from None

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
        """Conformers for several molecules, batched together (at most sampler.batch_size conformers and
        `max_atoms` atoms per network call).

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
        jobs = [k for k, n in enumerate(counts) for _ in range(n)]
        device = next(self.net.parameters()).device
        generator = torch.Generator().manual_seed(cfg.seed)  # on the CPU: the same conformers on every device
        positions: list[list[torch.Tensor]] = [[] for _ in parsed]
        start = 0
        while start < len(jobs):
            chunk, atoms = [], 0
            while (
                start < len(jobs)
                and len(chunk) < cfg.batch_size
                and (not chunk or atoms + parsed[jobs[start]].GetNumAtoms() <= max_atoms)
            ):
                chunk.append(jobs[start])
                atoms += parsed[jobs[start]].GetNumAtoms()
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
