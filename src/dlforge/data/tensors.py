"""In-memory tensor data sets served a whole batch per index call (no per-sample Python)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset


class TensorBatches(Dataset):
    """Aligned tensors (images, labels, ...) indexed by whole batches through ``__getitems__``.

    The DataLoader hands a batch's index list to ``__getitems__``, which gathers it with one tensor
    index per field; :func:`keep_batch` is then the collate function.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorBatches needs one or more tensors of equal length")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Collate function for :class:`TensorBatches`: the batch is already gathered."""
    return batch
