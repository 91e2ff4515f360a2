"""Stop a run at the first non-finite loss, with the step in the message and the last good checkpoint kept."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dlforge.errors import DlforgeError


class NonFiniteLossError(DlforgeError):
    """A training loss became NaN or infinite."""


def _losses(outputs: Any) -> dict[str, float]:
    """Scalar losses returned by ``training_step``: a tensor, or a dict of them (GANs: d_loss, g_loss)."""
    if isinstance(outputs, torch.Tensor):
        outputs = {"loss": outputs}
    if not isinstance(outputs, Mapping):
        return {}
    return {k: float(v) for k, v in outputs.items() if isinstance(v, torch.Tensor) and v.numel() == 1}


class FiniteLossGuard(Callback):
    """After every training step, check the returned losses; on NaN/inf raise a one-line error.

    The error names the step and the last checkpoint written before it (the checkpoint callback
    never saves the broken weights, since the run stops at once). Weights can overflow while the
    losses stay finite (a saturated GAN), so a checkpoint holding non-finite weights is refused too.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bad = {name: value for name, value in _losses(outputs).items() if not math.isfinite(value)}
        if not bad:
            return
        what = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise NonFiniteLossError(self._message(trainer, pl_module, what, batch_idx))

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        bad = [
            name
            for name, value in checkpoint.get("state_dict", {}).items()
            if value.is_floating_point() and not torch.isfinite(value).all()
        ]
        if bad:  # raised before the file is written: the last checkpoint on disk stays the good one
            what = f"non-finite weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
            raise NonFiniteLossError(self._message(trainer, pl_module, what, None))

    @staticmethod
    def _message(trainer: pl.Trainer, pl_module: pl.LightningModule, what: str, batch_idx: int | None) -> str:
        checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
        where = f"epoch {trainer.current_epoch}" + (f", batch {batch_idx}" if batch_idx is not None else "")
        if "optimizer_g" in pl_module.hparams:  # GANs, pix2pix (manual optimization: no clipping flag)
            hint = "lower model.optimizer_g.lr / model.optimizer_d.lr"
        else:
            hint = "a lower optimizer.lr or trainer.gradient_clip_val=1.0"
        return (
            f"training stopped: {what} at step {trainer.global_step} ({where}); "
            f"last good checkpoint: {checkpoint}; try {hint}"
        )
