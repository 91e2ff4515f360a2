"""Data modules: each hands what its models need over through ``model_kwargs()``."""

from dlforge.data.folder import ImageFolderDataModule
from dlforge.data.images import ImageDataModule
from dlforge.data.paired import PairedDataModule
from dlforge.data.standard import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "PairedDataModule",
]
