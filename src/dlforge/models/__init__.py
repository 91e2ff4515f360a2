"""LightningModules. ``MODELS`` maps the ``kind`` stored in a checkpoint to its class."""

from dlforge.models.base import DlforgeModule
from dlforge.models.classifier import ImageClassifier
from dlforge.models.text_classifier import TextClassifier

MODELS: dict[str, type[DlforgeModule]] = {
    ImageClassifier.kind: ImageClassifier,
    TextClassifier.kind: TextClassifier,
}

__all__ = ["MODELS", "DlforgeModule", "ImageClassifier"]
