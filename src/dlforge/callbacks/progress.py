"""Lightning's rich progress bar, reading the logged values back only when they can have changed."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """:class:`~pytorch_lightning.callbacks.RichProgressBar` without a read-back every batch.

    The stock bar converts every logged progress-bar value to a Python number after each training
    batch: on a GPU each conversion makes the CPU wait for the GPU (about two waits a batch for a
    classifier, four for a GAN). Step values are logged every ``trainer.log_every_n_steps`` steps,
    so during training the bar re-reads them only when a new logging interval or epoch starts;
    validation and epoch ends read them as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics: dict[str, Any] | None = None
        self._read_at: tuple[int, int] | None = None
        self._in_train_batch = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._in_train_batch = True
        try:
            super().on_train_batch_end(trainer, *args)
        finally:
            self._in_train_batch = False

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        interval = (trainer.current_epoch, trainer.global_step // max(1, trainer.log_every_n_steps))
        if self._in_train_batch and self._metrics is not None and self._read_at == interval:
            return self._metrics
        self._metrics, self._read_at = super().get_metrics(trainer, pl_module), interval
        return self._metrics
