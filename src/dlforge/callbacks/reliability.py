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
    never saves the broken weights, since the run stops at once).
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bad = {name: value for name, value in _losses(outputs).items() if not math.isfinite(value)}
        if not bad:
            return
        checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
        what = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise NonFiniteLossError(
            f"training stopped: {what} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {batch_idx}); last good checkpoint: {checkpoint}; try a lower optimizer.lr or "
            "trainer.gradient_clip_val=1.0"
        )
