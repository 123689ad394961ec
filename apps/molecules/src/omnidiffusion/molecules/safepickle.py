"""Restricted unpickling for the one-time conversions of GEOM and GeoDiff pickles to SDF.

GEOM's `rdkit_folder` per-molecule files and GeoDiff's split files exist only as Python pickles. Unpickling
runs whatever callables a file names, so it happens only in the conversion commands, only after the user passes
`--trust-pickle`, and even then through an allow-list: a file may name RDKit's `Mol`, plain containers, numpy
scalars and, for GeoDiff files, torch tensors and torch-geometric `Data` records. Anything else (`os.system`,
`builtins.eval`, ...) is refused before it is called. Nothing else in the package unpickles: training and
evaluation read the converted SDF and JSON files only.

torch-geometric records are not rebuilt as real `Data` objects (GeoDiff's were written by PyG 1.7, which PyG >= 2
cannot read back, GeoDiff issues #3 and #29): `Record` keeps their state as a plain dict, for both the old
layout (fields in the instance dict) and the PyG >= 2 layout (fields under `_store._mapping`). Tensor storages
inside the pickle are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path
from typing import Any

import torch
from rdkit import Chem

_RDKIT_MOL = ("rdkit.Chem.rdchem", "Mol")


class Record:
    """Stand-in for a pickled torch-geometric object: `state` is the dict it was pickled with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = dict(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):  # (dict, slots)
            state = {**(state[0] or {}), **state[1]}
        self.state = dict(state) if isinstance(state, dict) else {"_state": state}

    def fields(self) -> dict[str, Any]:
        """The record's data fields: PyG >= 2 keeps them in `_store` (a storage with `_mapping`), PyG 1 inline."""
        store = self.state.get("_store")
        if isinstance(store, Record):
            mapping = store.state.get("_mapping", store.state)
            return {k: v for k, v in dict(mapping).items() if not k.startswith("_")}
        return {k: v for k, v in self.state.items() if not k.startswith("_")}


def _storage_from_bytes(data: bytes) -> Any:
    """A tensor storage saved by torch's legacy format inside a pickle, read without running code."""
    return torch.load(io.BytesIO(data), weights_only=True)


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, allow_torch: bool) -> None:
        super().__init__(file)
        self.path, self.allow_torch = path, allow_torch

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _RDKIT_MOL:
            return Chem.Mol
        if (module, name) in (("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset")):
            return {"OrderedDict": collections.OrderedDict, "set": set, "frozenset": frozenset}[name]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            import numpy as np

            return np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
        if module == "numpy" and name == "dtype":
            import numpy as np

            return np.dtype
        if self.allow_torch:
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return torch._utils._rebuild_tensor_v2
            if (module, name) == ("torch.storage", "_load_from_bytes"):
                return _storage_from_bytes
            if module.split(".")[0] == "torch_geometric":
                return Record
        allowed = "RDKit Mol, dict/list/set, numpy scalars" + (
            ", torch tensors, torch-geometric records" if self.allow_torch else ""
        )
        raise ValueError(
            f"pickle {self.path}: refers to {module}.{name}, which this file format never holds; refused without "
            f"calling it (allowed: {allowed})"
        )


def load_trusted_pickle(path: str | Path, *, what: str, allow_torch: bool = False) -> Any:
    """Unpickle `path` through the allow-list; `what` names the format in errors ("geom pickle", ...).

    Raises FileNotFoundError for a missing file and ValueError for a directory, a file that is not a pickle
    and a pickle that names anything outside the allow-list.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a directory, expected a pickle file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file")
    with open(path, "rb") as f:
        try:
            return _AllowListUnpickler(f, path, allow_torch).load()
        except ValueError as e:
            if str(e).startswith(f"pickle {path}:"):
                raise ValueError(f"{what} {e}") from None
            raise ValueError(f"{what} {path}: not a readable pickle ({type(e).__name__}: {e})") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, KeyError) as e:
            raise ValueError(f"{what} {path}: not a readable pickle ({type(e).__name__}: {e})") from None
        except RuntimeError as e:  # torch.load of an embedded storage
            raise ValueError(f"{what} {path}: an embedded tensor cannot be read ({e})") from None
