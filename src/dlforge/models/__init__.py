"""LightningModules, each registered under its ``kind`` beside its definition (``dlforge.registry``);
importing this package imports (and so registers) every family."""

from __future__ import annotations

import inspect
from typing import Any

from dlforge.errors import DlforgeError
from dlforge.models.audio import AudioClassifier
from dlforge.models.autoencoder import VAE, Autoencoder
from dlforge.models.base import DlforgeModule, GenerativeModule
from dlforge.models.classical import ClassicalClassifier
from dlforge.models.classifier import ImageClassifier
from dlforge.models.gan import GAN
from dlforge.models.pix2pix import Pix2Pix
from dlforge.models.seq2seq import Seq2Seq
from dlforge.models.stackgan import StackGAN
from dlforge.models.tabular import TabularClassifier
from dlforge.models.text import TextClassifier
from dlforge.models.wavenet import WaveNetModel
from dlforge.models.word2vec import Word2Vec
from dlforge.registry import MODELS


def model_class(kind: str) -> type[DlforgeModule]:
    """The LightningModule class registered as ``kind``."""
    if kind not in MODELS:
        raise DlforgeError(f"unknown model kind {kind!r}; registered kinds: {', '.join(sorted(MODELS))}")
    return MODELS[kind]


def build_model(kind: str, **hparams: Any) -> DlforgeModule:
    """The one way to a model: training (from the config) and checkpoint loading (from its
    hyper-parameters) both build the class registered as ``kind`` with plain-data ``hparams``."""
    cls = model_class(kind)
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(hparams) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        options = ", ".join(name for name in accepted if name not in ("data", "embeddings"))
        raise DlforgeError(f"model {kind} has no option {', '.join(unknown)}; its options: {options}")
    try:
        return cls(**hparams)
    except (TypeError, ValueError) as err:
        raise DlforgeError(f"cannot build model {kind}: {err}") from err


__all__ = [
    "GAN",
    "MODELS",
    "VAE",
    "AudioClassifier",
    "Autoencoder",
    "ClassicalClassifier",
    "DlforgeModule",
    "GenerativeModule",
    "ImageClassifier",
    "Pix2Pix",
    "Seq2Seq",
    "StackGAN",
    "TabularClassifier",
    "TextClassifier",
    "WaveNetModel",
    "Word2Vec",
    "build_model",
    "model_class",
]
