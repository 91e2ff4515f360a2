"""Classifiers for imbalanced labels (class-weighted loss, ROC-AUC and PR-AUC), and the tabular MLP."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

from dlforge.models.classifier import ClassifierModule
from dlforge.nets import build_net
from dlforge.registry import register_model


class WeightedClassifierModule(ClassifierModule):
    """A classifier whose training loss weighs classes (``data["class_weights"]``, from the training
    split: rare classes count as much as common ones) and that, for two classes, also logs
    ``val/roc_auc``, ``val/pr_auc``, ``test/roc_auc`` and ``test/pr_auc`` (area under the ROC curve and
    average precision of class 1: on data that is 0.2% positive, accuracy alone says nothing).
    Validation and test losses stay unweighted (the log loss of the data as it is)."""

    def setup_metrics(self, num_classes: int, class_weights: list[float] | None = None) -> None:
        super().setup_metrics(num_classes)
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.two_classes = num_classes == 2
        if self.two_classes:
            self.val_roc_auc, self.test_roc_auc = BinaryAUROC(), BinaryAUROC()
            self.val_pr_auc, self.test_pr_auc = BinaryAveragePrecision(), BinaryAveragePrecision()

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, labels = batch
        logits = self(inputs)
        weight = self.class_weights if self.training else None
        smoothing = self.hparams.get("label_smoothing", 0.0)
        loss = F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing)
        if self.two_classes and not self.training:
            self.log_ranking(logits, labels)
        return loss, logits, labels

    def log_ranking(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Update and log ROC-AUC and PR-AUC of class 1 for this validation or test batch."""
        stage = "test" if self.trainer.testing else "val"
        scores = logits.float().softmax(dim=1)[:, 1]
        for name in ("roc_auc", "pr_auc"):
            metric = getattr(self, f"{stage}_{name}")
            metric(scores, labels)
            self.log(f"{stage}/{name}", metric, on_epoch=True)


@register_model("tabular_classifier")
class TabularClassifier(WeightedClassifierModule):
    """Softmax classifier over a table's feature vectors (``data=csv_table``).

    Args:
        net: ``{"name": <network in dlforge.nets.NETS>, **its options}`` (``tabular_mlp``).
        data: the table's ``spec`` (columns, their encoding, classes, class weights).
        optimizer, scheduler, label_smoothing, monitor, monitor_mode: as the image classifier.
    """

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        monitor: str = "val/acc",
        monitor_mode: str = "max",
    ) -> None:
        super().__init__()
        if "num_features" not in data:
            raise ValueError(f"a tabular model needs a table (data=csv_table), not {data.get('name')}")
        self.save_hyperparameters()
        self.net = build_net(num_features=data["num_features"], num_classes=data["num_classes"], **net)
        self.setup_metrics(data["num_classes"], data.get("class_weights"))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits for encoded rows (N, num_features)."""
        return self.net(features.float())
