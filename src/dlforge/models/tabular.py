"""The tabular classifier: class-weighted loss, ROC-AUC and PR-AUC
(:class:`dlforge.models.base.WeightedClassifierModule`) over a table's encoded rows."""

from __future__ import annotations

from typing import Any

import torch

from dlforge.models.base import WeightedClassifierModule
from dlforge.nets import build_net
from dlforge.registry import register_model


@register_model("tabular_classifier")
class TabularClassifier(WeightedClassifierModule):
    """Softmax classifier over a table's feature vectors (``data=csv_table``).

    Args:
        net: ``{"name": <network in dlforge.nets.NETS>, **its options}`` (``tabular_mlp``).
        data: the table's ``spec`` (columns, their encoding, classes, class weights).
        label_smoothing: cross-entropy label smoothing.
        training: ``optimizer``, ``scheduler``, ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.DlforgeModule`).
    """

    def __init__(
        self, net: dict[str, Any], data: dict[str, Any], label_smoothing: float = 0.0, **training: Any
    ) -> None:
        super().__init__(**training)
        if "num_features" not in data:
            raise ValueError(f"a tabular model needs a table (data=csv_table), not {data.get('name')}")
        self.save_hyperparameters()
        self.net = build_net(num_features=data["num_features"], num_classes=data["num_classes"], **net)
        self.setup_metrics(data["num_classes"], data.get("class_weights"))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits for encoded rows (N, num_features)."""
        return self.net(features.float())
