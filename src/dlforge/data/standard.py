"""MNIST, Fashion-MNIST and CIFAR-10 in torchvision's own on-disk formats (downloaded by torchvision)."""

from __future__ import annotations

import os
import pickle
from typing import ClassVar

import torch
from torchvision import datasets

from dlforge.data.images import ImageDataModule, Split
from dlforge.errors import DataNotFoundError, DlforgeError, first_line


class _TorchvisionDataModule(ImageDataModule):
    """Reads a torchvision data set once and keeps its images as a uint8 tensor."""

    dataset_cls: type[datasets.VisionDataset]
    folder: str  # where torchvision keeps the files, under the data root

    def load_split(self, train: bool) -> Split:
        try:
            ds = self.dataset_cls(str(self.data_dir), train=train, download=self.download)
        except (RuntimeError, OSError) as err:
            if "not found" in str(err) or "download" in str(err).lower():
                raise DataNotFoundError(self._not_found(err)) from None
            raise self._unreadable(err) from None
        except (ValueError, IndexError, KeyError, AssertionError, EOFError, pickle.UnpicklingError) as err:
            raise self._unreadable(err) from None
        if len(ds.data) != len(ds.targets):
            split = "train" if train else "test"
            counts = f"{len(ds.data)} images but {len(ds.targets)} labels in the {split} files"
            raise self._unreadable(ValueError(counts))
        images = torch.as_tensor(ds.data)
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        self.class_names = self.names(ds)
        return images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)

    def names(self, ds: datasets.VisionDataset) -> list[str]:
        return list(ds.classes)

    def _unreadable(self, err: Exception) -> DlforgeError:
        reason = (
            str(err).splitlines()[0] if str(err) else f"{type(err).__name__} (wrong magic number or header?)"
        )
        return DlforgeError(
            f"{self.name} files under {self.data_dir / self.folder} are truncated or not in the expected "
            f"format ({reason}); delete them to download again, or replace them with intact copies"
        )

    def _not_found(self, err: Exception) -> str:
        how = "could not be downloaded" if self.download else "download is off (data.download=false)"
        reason = first_line(err)
        return (
            f"{self.name} not found in {self.data_dir / self.folder} and {how} ({reason}); "
            f"put the files there or point DATA_DIR (now {os.environ.get('DATA_DIR', 'unset')}) "
            "at a folder that holds them"
        )


class MNISTDataModule(_TorchvisionDataModule):
    """MNIST handwritten digits, 28x28 grey (``<data_dir>/MNIST/raw/*-ubyte``)."""

    name = "mnist"
    dataset_cls = datasets.MNIST
    folder = "MNIST/raw"

    def names(self, ds: datasets.VisionDataset) -> list[str]:
        return [str(d) for d in range(10)]


class FashionMNISTDataModule(_TorchvisionDataModule):
    """Fashion-MNIST clothing, 28x28 grey (``<data_dir>/FashionMNIST/raw/*-ubyte``)."""

    name = "fashion_mnist"
    dataset_cls = datasets.FashionMNIST
    folder = "FashionMNIST/raw"


class _CIFAR10Files(datasets.CIFAR10):
    """torchvision's CIFAR10 trusting files that exist (no md5 check), so re-packed copies load too."""

    train_list: ClassVar[list] = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list: ClassVar[list] = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta: ClassVar[dict] = {**datasets.CIFAR10.meta, "md5": None}


class CIFAR10DataModule(_TorchvisionDataModule):
    """CIFAR-10, 32x32 colour (``<data_dir>/cifar-10-batches-py/``, the python-pickle release)."""

    name = "cifar10"
    dataset_cls = _CIFAR10Files
    folder = "cifar-10-batches-py"
