"""LightningModules. ``MODELS`` maps the ``kind`` stored in a checkpoint to its class."""

from dlforge.models.base import DlforgeModule
from dlforge.models.classifier import ImageClassifier
from dlforge.models.gan import GAN

MODELS: dict[str, type[DlforgeModule]] = {
    ImageClassifier.kind: ImageClassifier,
    GAN.kind: GAN,
}

__all__ = ["MODELS", "DlforgeModule", "ImageClassifier"]
