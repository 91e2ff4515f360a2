"""The image classifier (what every classifier shares: :class:`dlforge.models.base.ClassifierModule`)."""

from __future__ import annotations

from typing import Any

import torch

from dlforge.models.base import IMAGE_DATA, ClassifierModule
from dlforge.nets import build_net
from dlforge.registry import register_model


@register_model("image_classifier")
class ImageClassifier(ClassifierModule):
    """Softmax classifier over any registered image network.

    Args:
        net: ``{"name": <network in dlforge.nets.NETS>, **its options}``.
        data: the data module's ``spec`` (shape, classes, normalization statistics).
        label_smoothing: cross-entropy label smoothing.
        training: ``optimizer``, ``scheduler``, ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.DlforgeModule`).
    """

    def __init__(
        self, net: dict[str, Any], data: dict[str, Any], label_smoothing: float = 0.0, **training: Any
    ) -> None:
        super().__init__(**training)
        self.require_data(data, ("channels", "height", "width", "num_classes", "mean"), IMAGE_DATA)
        self.save_hyperparameters()
        self.net = build_net(
            in_channels=data["channels"],
            height=data["height"],
            width=data["width"],
            num_classes=data["num_classes"],
            **net,
        )
        self.register_buffer("mean", torch.tensor(data["mean"]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data["std"]).view(1, -1, 1, 1), persistent=False)
        self.setup_metrics(data["num_classes"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images in [0, 1] (normalized here with the training data's statistics)."""
        return self.net((images - self.mean) / self.std)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features, the domain feature extractor for FID/KID."""
        return self.net.embed((images - self.mean) / self.std)
