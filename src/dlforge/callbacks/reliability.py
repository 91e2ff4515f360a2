"""Stop a run at the first non-finite loss, with the step in the message and the last good checkpoint kept."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from dlforge.checkpoint import checkpoint_paths
from dlforge.errors import DlforgeError


class NonFiniteLossError(DlforgeError):
    """A training loss became NaN or infinite."""


def _losses(outputs: Any) -> dict[str, torch.Tensor]:
    """Scalar losses returned by ``training_step``: a tensor, or a dict of them (GANs: d_loss, g_loss)."""
    if isinstance(outputs, torch.Tensor):
        outputs = {"loss": outputs}
    if not isinstance(outputs, Mapping):
        return {}
    return {k: v.detach() for k, v in outputs.items() if isinstance(v, torch.Tensor) and v.numel() == 1}


class FiniteLossGuard(Callback):
    """After every training step, check the returned losses; on NaN/inf raise a one-line error.

    The error names the step and the last checkpoint written before it (the checkpoint callback
    never saves the broken weights: every save checks first). Weights can overflow while the
    losses stay finite (a saturated GAN), so a checkpoint holding non-finite weights is refused too.

    Args:
        check_every: losses on a GPU are not read back every step (each read makes the CPU wait
            for the GPU): the first non-finite one is recorded on the device, with its step, and
            read every ``check_every`` batches (default: ``trainer.log_every_n_steps``, when
            Lightning reads its logged values back anyway), at epoch end and before every
            checkpoint. The error still names the step where it happened.
        defer: record on the device and read back later (default: only for losses not on the CPU).
    """

    def __init__(self, check_every: int | None = None, defer: bool | None = None) -> None:
        self.check_every = check_every
        self.defer = defer
        self._first_bad: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_bad.clear()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        for name, loss in _losses(outputs).items():
            if self.defer or (self.defer is None and loss.device.type != "cpu"):
                self._record(name, loss, trainer.global_step, batch_idx)
            elif not math.isfinite(value := float(loss)):
                raise NonFiniteLossError(self._message(trainer, pl_module, f"{name}={value}", batch_idx))
        every = self.check_every or trainer.log_every_n_steps or 1
        if self._first_bad and (batch_idx + 1) % every == 0:
            self._raise_recorded(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._raise_recorded(trainer, pl_module)

    def _record(self, name: str, loss: torch.Tensor, step: int, batch_idx: int) -> None:
        """Keep the first non-finite value of ``name`` and its step on the loss's device (no sync)."""
        if name not in self._first_bad:
            none = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._first_bad[name] = (none, none.clone(), torch.zeros((), device=loss.device))
        first_step, first_batch, first_value = self._first_bad[name]
        new = ~torch.isfinite(loss) & (first_step < 0)
        self._first_bad[name] = (
            torch.where(new, step, first_step),
            torch.where(new, batch_idx, first_batch),
            torch.where(new, loss.float(), first_value),
        )

    def _raise_recorded(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Read the recorded losses back; raise for the earliest non-finite one."""
        read = [
            (int(step), int(batch), name, float(value))
            for name, (step, batch, value) in self._first_bad.items()
        ]
        found = sorted(record for record in read if record[0] >= 0)
        if found:
            step, batch, name, value = found[0]
            raise NonFiniteLossError(self._message(trainer, pl_module, f"{name}={value}", batch, step))

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        self._raise_recorded(trainer, pl_module)
        bad = [
            name
            for name, value in checkpoint.get("state_dict", {}).items()
            if value.is_floating_point() and not torch.isfinite(value).all()
        ]
        if bad:  # raised before the file is written: the last checkpoint on disk stays the good one
            what = f"non-finite weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
            raise NonFiniteLossError(self._message(trainer, pl_module, what, None))

    @staticmethod
    def _message(
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        what: str,
        batch_idx: int | None,
        step: int | None = None,
    ) -> str:
        checkpoint = checkpoint_paths(trainer)["last_checkpoint"] or "none written yet"
        where = f"epoch {trainer.current_epoch}" + (f", batch {batch_idx}" if batch_idx is not None else "")
        if "optimizer_g" in pl_module.hparams:  # GANs, pix2pix (manual optimization: no clipping flag)
            hint = "lower model.optimizer_g.lr / model.optimizer_d.lr"
        else:
            hint = "a lower optimizer.lr or trainer.gradient_clip_val=1.0"
        return (
            f"training stopped: {what} at step {trainer.global_step if step is None else step} ({where}); "
            f"last good checkpoint: {checkpoint}; try {hint}"
        )


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` at the end of every epoch, whatever the monitored metric did.

    Lightning 2.6 writes ``save_last``'s copy only when the best checkpoint changes, so after an
    epoch that did not improve, ``last.ckpt`` would hold an older one. Its own class keeps its state
    apart from the best-checkpoint callback's in the checkpoint (Lightning keys callback state by class).
    """

    def __init__(self, dirpath: str) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        )
