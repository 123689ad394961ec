"""Peak tensor memory of a block of torch code on any device, for checking that feature extraction is bounded.

`TensorMemory` is a TorchDispatchMode (torch's hook under every ATen op): each tensor an op returns is charged the
bytes of its storage the first time that storage is seen, and the charge is released when the last tensor seen
on that storage is garbage-collected. `peak` is the largest sum of live charges, which is what tracemalloc does for
Python objects, here for tensors made inside the block. Tensors that existed before the block (the model's weights,
the input images) are not charged; views share their base's charge; in-place results add nothing.

    with TensorMemory() as mem:
        X, y = sample_pixels(...)
    mem.peak   # bytes
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class TensorMemory(TorchDispatchMode):
    """Counts live and peak bytes of tensor storages created inside the `with` block (`live`, `peak`)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, int] = {}  # storage data_ptr -> tensors alive on it (that we saw)
        self._bytes: dict[int, int] = {}  # storage data_ptr -> charged bytes
        self._seen: set[int] = set()  # ids of pre-existing storages never to charge

    def __enter__(self):
        import gc

        gc.collect()
        return super().__enter__()

    def _release(self, key: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.live -= self._bytes.pop(key)

    def _track(self, t: torch.Tensor, inputs: set[int]) -> None:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in inputs and key not in self._refs:
            return  # an empty tensor, or a view / in-place result on memory made before the block
        if key not in self._refs:
            self._refs[key] = 0
            self._bytes[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        self._refs[key] += 1
        weakref.finalize(t, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t, inputs)
        return out
