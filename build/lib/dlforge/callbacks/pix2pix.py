"""Pix2pix's pictures: input | output | target rows of validation and test pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dlforge.models.pix2pix import Pix2Pix
from dlforge.registry import register_callbacks
from dlforge.viz import log_image, save_grid


class TranslationGrid(Callback):
    """``translations/epoch_NNN.png`` each ``every_n_epochs`` and ``translations/test.png``: rows of
    input | output | target for the first ``n`` validation (test) pairs; also sent to the loggers."""

    def __init__(self, n: int = 8, every_n_epochs: int = 1) -> None:
        self.n = n
        self.every_n_epochs = every_n_epochs
        self.pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _keep(self, stage: str, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and stage not in self.pairs:
            self.pairs[stage] = (batch[0][: self.n].detach(), batch[1][: self.n].detach())

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._keep("val", batch, batch_idx, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep("test", batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (
            trainer.sanity_checking
            or "val" not in self.pairs
            or (trainer.current_epoch + 1) % self.every_n_epochs
        ):
            return
        self._save(trainer, pl_module, "val", f"epoch_{trainer.current_epoch:03d}.png")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.pairs:
            self._save(trainer, pl_module, "test", "test.png")
            del self.pairs["test"]

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, name: str) -> None:
        inputs, targets = self.pairs[stage]
        with torch.no_grad():
            outputs = pl_module(inputs).clamp(0, 1)
        if not trainer.is_global_zero:
            return
        channels = targets.shape[1]
        rows = torch.stack([inputs.expand(-1, channels, -1, -1), outputs, targets], dim=1).flatten(0, 1)
        grid = save_grid(rows, Path(trainer.default_root_dir) / "translations" / name, nrow=3)
        log_image(trainer, f"{stage}/translations", grid)


@register_callbacks(Pix2Pix)
def pix2pix_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    pictures = hparams.get("pictures")
    return [] if pictures is None else [TranslationGrid(**pictures)]
