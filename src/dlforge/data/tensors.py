"""In-memory tensor data sets served a whole batch per index call (no per-sample Python)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from dlforge.data.base import DataModule
from dlforge.errors import DlforgeError


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
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.tensors[0].device)
        return tuple(t[idx] for t in self.tensors)


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Collate function for :class:`TensorBatches`: the batch is already gathered."""
    return batch


class TensorDataModule(DataModule):
    """Serves ``self.splits`` (``train``, ``val``, ``test``: :class:`TensorBatches`) in batches.

    Subclasses load the splits in ``setup(stage)``, which must be idempotent.

    Args:
        batch_size: training batch size; evaluation uses ``eval_batch_size`` (default: the same).
        on_device: keep the whole data set on the training device (GPU) and index it there: for
            small sets it removes host-to-device copies; needs (and implies) ``num_workers=0``.
    """

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size or batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DlforgeError(f"data.{name}={value}: use a whole number of examples, at least 1")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise DlforgeError(f"data.num_workers={num_workers}: use 0 (in-process) or a positive number")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.on_device = on_device
        self.splits: dict[str, TensorBatches] = {}

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", self._device())

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", self._device())

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", self._device())

    def _device(self) -> torch.device | None:
        return self.trainer.strategy.root_device if self.trainer is not None else None

    def loader(self, split: str, device: torch.device | None = None) -> DataLoader:
        """Batches of ``split`` (shuffled for ``train``); with ``on_device``, indexed on ``device``."""
        self.setup("test" if split == "test" else "fit")
        resident = self.on_device and device is not None
        if resident:
            self.move_to(device)
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=split == "train",
            collate_fn=keep_batch,
            num_workers=0 if resident else self.num_workers,
            pin_memory=self.pin_memory and not resident,
            persistent_workers=self.num_workers > 0 and not resident,
        )

    def move_to(self, device: torch.device) -> None:
        """Move every loaded split to ``device`` (see ``on_device``)."""
        for name, split in self.splits.items():
            if split.tensors[0].device != device:
                self.splits[name] = TensorBatches(*(t.to(device) for t in split.tensors))
