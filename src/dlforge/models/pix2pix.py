"""Pix2pix (Isola et al. 2017): image-to-image translation with a conditional GAN and an L1 loss.

The generator (a U-Net) maps an input image to an output image; the discriminator (a PatchGAN)
judges (input, image) pairs patch by patch. Generator loss: adversarial (non-saturating BCE) +
``l1_weight`` x mean |output - target| on [-1, 1] images (the paper's lambda = 100). Manual
optimization: each training step updates the discriminator, then the generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback
from torchmetrics import MeanAbsoluteError
from torchmetrics.image import PeakSignalNoiseRatio

from dlforge.data.paired import to_grey
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.viz import log_image, save_grid


class Pix2Pix(DlforgeModule):
    """Conditional GAN for paired translation (``dlforge.data.PairedDataModule`` batches).

    Args:
        generator: ``{"name": "unet_generator", **options}``; ``discriminator``: ``{"name":
            "patch_discriminator", **options}`` (``dlforge.nets.pix2pix``).
        data: the paired data module's ``spec`` (channels in and out, size, the task's input transform).
        optimizer_g, optimizer_d: optimizer configs of the generator and the discriminator.
        scheduler: optional per-epoch learning-rate scheduler config, one for each optimizer.
        l1_weight: lambda, the weight of the L1 term in the generator loss.
        adversarial_weight: weight of the adversarial term (0: a plain L1-regression U-Net, no
            discriminator updates; the paper's "L1 only" baseline).
        keep_luminance: for grey -> colour: shift each output pixel's RGB so its luminance is the
            input's (the generator only chooses colours, as in pix2pix's Lab colorization mode).
        pictures: ``{"n": ..., "every_n_epochs": ...}`` for the validation grids, or null.
    """

    kind = "pix2pix"

    def __init__(
        self,
        generator: dict[str, Any],
        discriminator: dict[str, Any],
        data: dict[str, Any],
        optimizer_g: dict[str, Any] | None = None,
        optimizer_d: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        l1_weight: float = 100.0,
        adversarial_weight: float = 1.0,
        keep_luminance: bool = True,
        pictures: dict[str, Any] | None = None,
        monitor: str = "val/l1",
        monitor_mode: str = "min",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        shape = {
            "in_channels": data["in_channels"],
            "out_channels": data["out_channels"],
            "height": data["height"],
            "width": data["width"],
        }
        self.generator = build_net(**shape, **generator)
        self.discriminator = build_net(**shape, **discriminator)
        self.val_l1, self.test_l1 = MeanAbsoluteError(), MeanAbsoluteError()
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))
        self.test_psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Translate inputs in [0, 1] (as the data spec makes them) to images in [0, 1]."""
        outputs = (self.generator(inputs * 2 - 1) + 1) / 2
        if self.hparams.keep_luminance and self.hparams.data["task"] == "grey":
            outputs = (outputs + inputs - to_grey(outputs)).clamp(0, 1)
        return outputs

    def adversarial_loss(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        opt_g, opt_d = self.optimizers()
        inputs, targets, fakes = (t * 2 - 1 for t in (*batch, self(batch[0])))  # [-1, 1], as in the paper
        logs: dict[str, torch.Tensor] = {}
        weight = self.hparams.adversarial_weight
        if weight > 0:
            self.toggle_optimizer(opt_d)
            d_loss = 0.5 * (
                self.adversarial_loss(self.discriminator(inputs, targets), True)
                + self.adversarial_loss(self.discriminator(inputs, fakes.detach()), False)
            )
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            logs["d_loss"] = d_loss.detach()

        self.toggle_optimizer(opt_g)
        l1 = (fakes - targets).abs().mean()
        g_adv = (
            self.adversarial_loss(self.discriminator(inputs, fakes), True) if weight > 0 else l1.new_zeros(())
        )
        g_loss = weight * g_adv + self.hparams.l1_weight * l1
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        logs.update(g_loss=g_loss.detach(), g_adv=g_adv.detach(), l1=l1.detach() / 2)  # l1 in [0, 1] units
        self.log_train_step(logs, batch_size=len(inputs), prog_bar=logs)
        return logs

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        inputs, targets = batch
        outputs = self(inputs).clamp(0, 1)
        l1, psnr = (self.val_l1, self.val_psnr) if stage == "val" else (self.test_l1, self.test_psnr)
        l1(outputs, targets)
        psnr(outputs, targets)
        self.log(f"{stage}/l1", l1, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/psnr", psnr, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_callbacks(self) -> list[Callback]:
        options = self.hparams.pictures
        present = any(isinstance(c, TranslationGrid) for c in self.trainer.callbacks)
        return [] if options is None or present else [TranslationGrid(**options)]

    def on_train_epoch_end(self) -> None:
        """Manual optimization steps the schedulers itself (plateau ones on the model's monitor)."""
        super().on_train_epoch_end()
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                value = self.trainer.callback_metrics.get(self.hparams.monitor)
                if value is not None:
                    scheduler.step(value)
            else:
                scheduler.step()

    def configure_optimizers(self) -> Any:
        opt_g = self.build_optimizer(self.hparams.optimizer_g, self.generator.parameters())
        opt_d = self.build_optimizer(self.hparams.optimizer_d, self.discriminator.parameters())
        optimizers = [opt_g, opt_d]
        if not self.hparams.scheduler:
            return optimizers
        return optimizers, [self.build_scheduler(self.hparams.scheduler, opt) for opt in optimizers]


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
