"""Classification: the shared metrics/outputs of every classifier, and the image classifier."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from dlforge.models.base import IMAGE_DATA, DlforgeModule
from dlforge.nets import build_net
from dlforge.registry import register_model


class ClassifierModule(DlforgeModule):
    """What every softmax classifier shares, whatever its inputs (images, token ids).

    Batches are ``(inputs, labels)`` and ``self(inputs)`` gives logits. Logs ``train/loss_step``,
    ``train/loss_epoch``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/acc_best``, ``test/loss``,
    ``test/acc`` and keeps the test confusion matrix in ``test_confusion`` (written by
    :class:`dlforge.callbacks.classifier.ConfusionMatrix`). Subclasses call
    :meth:`setup_metrics` and keep ``label_smoothing`` and ``data["class_names"]`` in their hyper-parameters.
    """

    def setup_metrics(self, num_classes: int) -> None:
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_classes)

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, labels = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        return loss, logits, labels

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, labels = self._step(batch)
        # the accuracy as a running mean, logged once an epoch: torchmetrics' update cost 50 us a step
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        values = {"loss": loss, "acc": accuracy}
        self.log_train_step(values, batch_size=len(labels), prog_bar=values, epoch_only=("acc",))
        return loss

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # forget the sanity-check validation

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.val_loss(loss, weight=len(labels))
        self.val_acc(logits, labels)
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.test_loss(loss, weight=len(labels))
        self.test_acc(logits, labels)
        self.test_confusion(logits, labels)
        self.log("test/loss", self.test_loss, on_epoch=True)
        self.log("test/acc", self.test_acc, on_epoch=True)


@register_model("image_classifier")
class ImageClassifier(ClassifierModule):
    """Softmax classifier over any registered image network.

    Args:
        net: ``{"name": <network in dlforge.nets.NETS>, **its options}``.
        data: the data module's ``spec`` (shape, classes, normalization statistics).
        optimizer: optimizer config (``_target_`` + arguments), used when training.
        scheduler: optional learning-rate scheduler config.
        label_smoothing: cross-entropy label smoothing.
        monitor, monitor_mode: the metric that picks the best checkpoint.
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
