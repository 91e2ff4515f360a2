"""Data modules: each hands what its models need over through ``model_kwargs()``."""

from dlforge.data.audio import SpokenDigitsDataModule
from dlforge.data.corpora import (
    CSVTextDataModule,
    IMDBDataModule,
    MovieReviewsDataModule,
    MRDataModule,
    SubjDataModule,
)
from dlforge.data.first_token import FirstTokenDataModule
from dlforge.data.folder import ImageFolderDataModule
from dlforge.data.images import ImageDataModule
from dlforge.data.paired import PairedDataModule
from dlforge.data.piglatin import PigLatinDataModule
from dlforge.data.standard import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule
from dlforge.data.table import CSVTableDataModule
from dlforge.data.text_corpus import TextCorpusDataModule
from dlforge.data.text_datamodule import TextDataModule

__all__ = [
    "CIFAR10DataModule",
    "CSVTableDataModule",
    "CSVTextDataModule",
    "FashionMNISTDataModule",
    "FirstTokenDataModule",
    "IMDBDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "MRDataModule",
    "MovieReviewsDataModule",
    "PairedDataModule",
    "PigLatinDataModule",
    "SpokenDigitsDataModule",
    "SubjDataModule",
    "TextCorpusDataModule",
    "TextDataModule",
]
