"""omnidiffusion.molecules: molecular conformer generation with GeoDiff (Xu et al. 2022) on omnidiffusion-core.

    from omnidiffusion.molecules import ConformerGenerator
    mol = ConformerGenerator.from_pretrained("runs/molecules").generate("CCO", n_conformers=10)

Modules: chem (featurisation), graph (radius graph, chain rule, CoM), models (GeoDiffNet), task (schedule,
loss, core eps-model), sampling (paper sampler and core samplers), data (SDF, SMILES, bundled data), metrics
(COV/MAT, baselines), pipeline (ConformerGenerator), training (train on ensembles), cli.
"""

from .chem import mol_to_graph, parse_smiles
from .config import MoleculesConfig
from .metrics import cov_mat, evaluate_sets, rmsd_matrix
from .models import GeoDiffNet
from .pipeline import ConformerGenerator

__version__ = "0.1.0"

__all__ = [
    "ConformerGenerator",
    "GeoDiffNet",
    "MoleculesConfig",
    "cov_mat",
    "evaluate_sets",
    "mol_to_graph",
    "parse_smiles",
    "rmsd_matrix",
]
