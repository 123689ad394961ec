"""omnidiffusion.molecules: molecular conformer generation with GeoDiff (Xu et al. 2022) on omnidiffusion-core.

    from omnidiffusion.molecules import ConformerGenerator
    mol = ConformerGenerator.from_pretrained("runs/molecules").generate("CCO", n_conformers=10)

Modules: settings (the config tree, MoleculesConfig), chem (featurisation), graph (radius graph, chain rule,
CoM), models (GeoDiffNet), task (loss, core eps-model), sampling (paper sampler and core samplers), data (SDF,
SMILES, bundled data), geom (GEOM and GeoDiff's splits), metrics (COV/MAT, baselines), pipeline
(ConformerGenerator), training (train on ensembles), evaluation (model vs baselines), cli.
"""

from .chem import mol_to_graph, parse_smiles
from .metrics import cov_mat, evaluate_sets, rmsd_matrix
from .models import GeoDiffNet
from .pipeline import ConformerGenerator
from .settings import MoleculesConfig

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
