"""Audio classification: raw waveforms in, classes out (the front end lives inside the network)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dlforge.data.spoken_digits import random_shift
from dlforge.models.base import ClassifierModule
from dlforge.nets import build_net
from dlforge.registry import register_model


@register_model("audio_classifier")
class AudioClassifier(ClassifierModule):
    """Softmax classifier of clips, e.g. spoken digits, over any registered audio network.

    Batches are ``(waves, labels, lengths, speakers)``
    (:class:`dlforge.data.spoken_digits.SpokenDigitsDataModule`).
    Inputs shorter than the training clips are padded with silence to their length, so a model reads
    a short clip as it read the padded training clips. ``shift`` moves each training clip to a random
    start within its padded window: the classifier learns digits wherever they are spoken.

    Args:
        net: ``{"name": audio_cnn, **its options}``.
        data: the data module's ``spec`` (sample rate, clip length, classes).
        shift: random time shifts of the training clips.
        label_smoothing: cross-entropy label smoothing.
        training: ``optimizer``, ``scheduler``, ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.DlforgeModule`).
    """

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        shift: bool = True,
        label_smoothing: float = 0.0,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.save_hyperparameters()
        self.sample_rate, self.clip_samples = data["sample_rate"], data["clip_samples"]
        self.net = build_net(sample_rate=self.sample_rate, num_classes=data["num_classes"], **net)
        self.setup_metrics(data["num_classes"])

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Logits for waveforms (N, T) in [-1, 1] at the training data's sample rate."""
        if waves.shape[-1] < self.clip_samples:
            waves = F.pad(waves, (0, self.clip_samples - waves.shape[-1]))
        return self.net(waves)

    def _step(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        waves, labels, lengths, _ = batch
        if self.training and self.hparams.shift:
            waves = random_shift(waves, lengths)
        logits = self(waves)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        return loss, logits, labels
