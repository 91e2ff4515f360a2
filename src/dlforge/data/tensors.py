"""In-memory tensor data sets served a whole batch per index call (no per-sample Python)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from dlforge.data.datamodule import DataModule, LoaderOptions


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

    Subclasses load the splits in ``setup(stage)``, which must be idempotent. They take the loader
    options (:class:`~dlforge.data.datamodule.LoaderOptions`: ``batch_size``, ``eval_batch_size``,
    ``num_workers``, ``pin_memory``, ``on_device``) as ``**loader`` and hand them on,
    ``super().__init__(**loader)``; ``loader_defaults`` holds a subclass's own defaults of them.
    """

    #: this data's defaults of the loader options, where they are not :class:`LoaderOptions`' own
    loader_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **loader: Any) -> None:
        """``loader``: the loader options by name (or, in :class:`LoaderOptions`' order, ``args``)."""
        super().__init__()
        options = LoaderOptions.given(self.loader_defaults, *args, **loader)
        self.batch_size = options.batch_size
        self.eval_batch_size = options.eval_batch_size  # batch_size when not given
        self.num_workers = options.num_workers
        self.pin_memory = options.pin_memory
        self.on_device = options.on_device
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
        """Batches of ``split`` (shuffled for ``train``); with ``on_device``, indexed on ``device``. A
        split named ``test...`` (``test``, or one of several test sets) needs only the test set-up."""
        self.setup("test" if split.startswith("test") else "fit")
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
