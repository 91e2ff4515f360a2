"""Pix2pix (Isola et al. 2017): image-to-image translation with a conditional GAN and an L1 loss.

The generator (a U-Net) maps an input image to an output image; the discriminator (a PatchGAN)
judges (input, image) pairs patch by patch. Generator loss: adversarial (non-saturating BCE) +
``l1_weight`` x mean |output - target| on [-1, 1] images (the paper's lambda = 100). Manual
optimization: each training step updates the discriminator, then the generator.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError
from torchmetrics.image import PeakSignalNoiseRatio

from dlforge.data.paired import to_grey
from dlforge.models.base import AdversarialModule
from dlforge.nets import build_net
from dlforge.registry import register_model


@register_model("pix2pix")
class Pix2Pix(AdversarialModule):
    """Conditional GAN for paired translation (``dlforge.data.PairedDataModule`` batches).

    Args:
        generator: ``{"name": "unet_generator", **options}``; ``discriminator``: ``{"name":
            "patch_discriminator", **options}`` (``dlforge.nets.pix2pix``).
        data: the paired data module's ``spec`` (channels in and out, size, the task's input transform).
        l1_weight: lambda, the weight of the L1 term in the generator loss.
        adversarial_weight: weight of the adversarial term (0: a plain L1-regression U-Net, no
            discriminator updates; the paper's "L1 only" baseline).
        keep_luminance: for grey -> colour: shift each output pixel's RGB so its luminance is the
            input's (the generator only chooses colours, as in pix2pix's Lab colorization mode).
        pictures: ``{"n": ..., "every_n_epochs": ...}`` for the validation grids, or null.
        training: ``optimizer_g``, ``optimizer_d`` (the optimizer configs of the generator and the
            discriminator), ``scheduler`` (one for each optimizer), ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.AdversarialModule`).
    """

    default_monitor = "val/l1"

    def __init__(
        self,
        generator: dict[str, Any],
        discriminator: dict[str, Any],
        data: dict[str, Any],
        l1_weight: float = 100.0,
        adversarial_weight: float = 1.0,
        keep_luminance: bool = True,
        pictures: dict[str, Any] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        pairs = "a paired data set (data=edges2mnist, edges2fashion, grey2cifar10, grey2cifar10_jpeg)"
        self.require_data(data, ("in_channels", "out_channels", "task"), pairs)
        self.save_hyperparameters()
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
