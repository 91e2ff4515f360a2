"""LightningModules. ``MODELS`` maps the ``kind`` stored in a checkpoint to its class."""

from dlforge.models.base import DlforgeModule
from dlforge.models.classifier import ImageClassifier

MODELS: dict[str, type[DlforgeModule]] = {
    ImageClassifier.kind: ImageClassifier,
}

__all__ = ["MODELS", "DlforgeModule", "ImageClassifier"]
