"""Data modules: each hands what its models need over through ``model_kwargs()``."""

from dlforge.data.captioned import CaptionedDataModule, CaptionedFashionDataModule
from dlforge.data.first_token import FirstTokenDataModule
from dlforge.data.folder import ImageFolderDataModule
from dlforge.data.images import ImageDataModule
from dlforge.data.paired import PairedDataModule
from dlforge.data.piglatin import PigLatinDataModule
from dlforge.data.spoken_digits import SpokenDigitsDataModule
from dlforge.data.standard import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule
from dlforge.data.table import CSVTableDataModule
from dlforge.data.text_classifier_corpora import (
    CSVTextDataModule,
    IMDBDataModule,
    MovieReviewsDataModule,
    MRDataModule,
    SubjDataModule,
)
from dlforge.data.text_datamodule import TextDataModule
from dlforge.data.word2vec_corpus import TextCorpusDataModule

__all__ = [
    "CIFAR10DataModule",
    "CSVTableDataModule",
    "CSVTextDataModule",
    "CaptionedDataModule",
    "CaptionedFashionDataModule",
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
