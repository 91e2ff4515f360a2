"""Lightning callbacks: what every run gets (progress bar, finite-loss guard) and each family's pictures.

A family's pictures and side outputs live in ``callbacks/<family>.py`` and are registered for its
model class (``dlforge.registry.register_callbacks``); :func:`model_callbacks` picks them for a
model, for ``train`` and ``evaluate`` alike.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import Callback

from dlforge.callbacks import (  # noqa: F401  (they register)
    autoencoder,
    classifier,
    generative,
    pix2pix,
    seq2seq,
    stackgan,
    wavenet,
    word2vec,
)
from dlforge.callbacks.progress import ProgressBar
from dlforge.callbacks.reliability import FiniteLossGuard, LastCheckpoint
from dlforge.registry import CALLBACKS


def model_callbacks(
    model_cls: type, hparams: dict[str, Any], options: dict[str, Any] | None = None
) -> list[Callback]:
    """The callbacks registered for ``model_cls`` and its base classes (a VAE gets the autoencoder's
    and the generative models'), built from the model's hyper-parameters (``pictures``, ``samples``)
    and the run's ``options`` (``quality_classifier``, ``quality_samples``)."""
    callbacks: list[Callback] = []
    for cls in model_cls.__mro__:
        if cls in CALLBACKS:
            callbacks += CALLBACKS[cls](hparams, options or {})
    return callbacks


__all__ = ["FiniteLossGuard", "LastCheckpoint", "ProgressBar", "model_callbacks"]
