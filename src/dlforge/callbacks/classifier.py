"""Classifiers' side outputs: the test-set confusion matrix as CSV and PNG."""

from __future__ import annotations

import csv
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dlforge.models.classifier import ClassifierModule
from dlforge.registry import register_callbacks
from dlforge.viz import log_image, save_figure


class ConfusionMatrix(Callback):
    """At test end, ``confusion_matrix.csv`` (rows: true class, columns: predicted) and its PNG in the run
    dir, from the model's ``test_confusion`` metric (summed over every process); also sent to the loggers."""

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: ClassifierModule) -> None:
        pl_module.test_confusion.reset()

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: ClassifierModule) -> None:
        matrix = pl_module.test_confusion.compute().cpu()
        if trainer.is_global_zero:
            self.write(trainer, pl_module, matrix)

    @staticmethod
    def write(trainer: pl.Trainer, pl_module: ClassifierModule, matrix: torch.Tensor) -> None:
        folder = pl_module.run_dir
        names = pl_module.hparams.data["class_names"]
        with open(folder / "confusion_matrix.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *names])
            writer.writerows([name, *row] for name, row in zip(names, matrix.tolist(), strict=True))
        fig, ax = pl_module.test_confusion.plot(val=matrix, labels=names)
        ax.set_title(f"test confusion matrix (accuracy {matrix.diag().sum() / matrix.sum():.4f})")
        fig.set_size_inches(max(6, 0.6 * len(names)), max(5, 0.55 * len(names)))
        log_image(trainer, "test/confusion_matrix", save_figure(fig, folder / "confusion_matrix.png"))


@register_callbacks(ClassifierModule)
def classifier_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    return [ConfusionMatrix()]
