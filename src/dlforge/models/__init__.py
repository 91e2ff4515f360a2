"""LightningModules. ``MODELS`` maps the ``kind`` stored in a checkpoint to its class."""

from dlforge.models.autoencoder import VAE, Autoencoder
from dlforge.models.base import DlforgeModule
from dlforge.models.classifier import ImageClassifier
from dlforge.models.gan import GAN
from dlforge.models.pix2pix import Pix2Pix
from dlforge.models.text_classifier import TextClassifier

MODELS: dict[str, type[DlforgeModule]] = {
    ImageClassifier.kind: ImageClassifier,
    Autoencoder.kind: Autoencoder,
    VAE.kind: VAE,
    TextClassifier.kind: TextClassifier,
    GAN.kind: GAN,
    Pix2Pix.kind: Pix2Pix,
}

__all__ = ["MODELS", "DlforgeModule", "ImageClassifier"]
