"""Generative adversarial networks with manual optimization: one LightningModule for every GAN net."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryAccuracy

from dlforge.models.base import IMAGE_DATA, AdversarialModule, GenerativeModule
from dlforge.nets import build_net
from dlforge.registry import register_model


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """Let ``module``'s batch-norm layers normalize with each batch's own statistics, as in training,
    leaving their running statistics untouched.

    A discriminator sees real and generated batches separately, so its running statistics mix two
    distributions and its eval-mode outputs are no guide to how it judges either (D(x) and D(G(z))
    can both collapse towards 0); validation measures it the way it is trained.
    """
    norms = [m for m in module.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm))]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:
        m.training, m.track_running_stats = True, False
    try:
        yield
    finally:
        for m, (training, track) in zip(norms, saved, strict=True):
            m.training, m.track_running_stats = training, track


@register_model("gan")
class GAN(GenerativeModule, AdversarialModule):
    """A generator/discriminator pair from ``dlforge.nets`` trained adversarially.

    Each training batch (images in [0, 1], mapped to [-1, 1] for the tanh generator):

    1. discriminator step: binary cross-entropy on logits for a real batch (target
       ``1 - label_smoothing``, one-sided smoothing) and a generated batch (target 0);
    2. generator step (every ``d_steps``-th batch): the non-saturating loss
       ``-log D(G(z))``, i.e. BCE against target 1 of the just-updated discriminator's logits
       on the same fakes.

    ``instance_noise`` adds Gaussian noise of that standard deviation (in [-1, 1] pixel units) to
    everything the discriminator sees while training, decaying linearly to 0 over
    ``trainer.max_epochs`` if ``instance_noise_anneal``. Validation and test measure the
    discriminator on held-out real images against as many generated ones (``val/d_acc``,
    ``val/d_real``, ``val/d_fake``, losses; with batch statistics, see :func:`batch_statistics`);
    sample quality (FID/KID) comes from the ``SampleQualityMonitor`` callback.

    Args:
        net: ``{"name": dcgan | cgan | gan_seed002, **its options}`` (see :mod:`dlforge.nets.gan`).
        data: the data module's ``spec`` (shape and classes).
        optimizer_g, optimizer_d: optimizer configs of the generator and the discriminator
            (``conf/model/dcgan.yaml``: Adam, lr 2e-4, betas (0.5, 0.999), as in DCGAN).
        scheduler: optional learning-rate scheduler config, one scheduler for each optimizer.
        label_smoothing: real targets become ``1 - label_smoothing`` for the discriminator.
        instance_noise: standard deviation of the noise added to the discriminator's inputs.
        instance_noise_anneal: decay the noise linearly to 0 over training.
        d_steps: discriminator steps per generator step.
        samples: options of the fixed-latent sample grids (:class:`dlforge.callbacks.generative.SampleGrid`;
            null: none).
        monitor, monitor_mode: the metric that picks the best checkpoint (``null``: the latest).
    """

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        optimizer_g: dict[str, Any],
        optimizer_d: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        instance_noise: float = 0.0,
        instance_noise_anneal: bool = True,
        d_steps: int = 1,
        samples: dict[str, Any] | None = None,
        monitor: str | None = None,
        monitor_mode: str = "min",
    ) -> None:
        super().__init__()
        if d_steps < 1:
            raise ValueError(f"d_steps={d_steps}: need at least one discriminator step per generator step")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing={label_smoothing}: use a value in [0, 1), e.g. 0.1")
        self.require_data(data, ("channels", "height", "width", "num_classes"), IMAGE_DATA)
        self.save_hyperparameters()
        pair = build_net(
            in_channels=data["channels"],
            height=data["height"],
            width=data["width"],
            num_classes=data["num_classes"],
            **net,
        )
        # the two networks as direct children: each gets its optimizer (and compile=true compiles each)
        self.generator, self.discriminator = pair.generator, pair.discriminator
        self.latent_dim = pair.latent_dim
        self.num_classes = data["num_classes"] if pair.conditional else 0
        self.eval_metrics = torch.nn.ModuleDict()
        for stage in ("val", "test"):
            self.eval_metrics[f"{stage}_d_acc"] = BinaryAccuracy()
            self.eval_metrics[f"{stage}_d_loss"] = MeanMetric()
            self.eval_metrics[f"{stage}_g_loss"] = MeanMetric()

    # --- generation (the GenerativeModule interface) -----------------------------------------
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generator output in [-1, 1]."""
        return self.generator(z, labels if self.num_classes else None)

    def decode_latent(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] for latents ``z``; a conditional GAN needs ``labels``: class
        indices (N,) or class vectors (N, num_classes)."""
        if self.num_classes and labels is None:
            raise ValueError("this GAN is conditional: pass the class labels of the images to generate")
        return ((self.generate(z, labels).float() + 1) / 2).clamp(0, 1)

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Discriminator logits for images in [-1, 1]."""
        return self.discriminator(images, labels if self.num_classes else None)

    # --- training ----------------------------------------------------------------------------
    def noise_std(self, batch_idx: int) -> float:
        """The instance noise's standard deviation now (annealed linearly over ``max_epochs``)."""
        std = self.hparams.instance_noise
        epochs = self.trainer.max_epochs
        if std and self.hparams.instance_noise_anneal and epochs and epochs > 0:
            batches = max(1, int(min(self.trainer.num_training_batches, 1e12)))
            std *= max(0.0, 1.0 - (self.current_epoch + batch_idx / batches) / epochs)
        return float(std)

    def with_noise(self, images: torch.Tensor, std: float) -> torch.Tensor:
        return images + std * torch.randn_like(images) if std > 0 else images

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """One discriminator step and (every ``d_steps``-th batch) one generator step; returns the
        losses (for ``FiniteLossGuard``)."""
        images, labels = batch
        real = images * 2 - 1
        n = real.shape[0]
        labels = labels if self.num_classes else None
        opt_g, opt_d = self.optimizers()
        train_g = (batch_idx + 1) % self.hparams.d_steps == 0
        std = self.noise_std(batch_idx)

        # one batch of fakes: detached for the discriminator, with its graph for the generator
        z = torch.randn(n, self.latent_dim, device=self.device)
        with torch.set_grad_enabled(train_g):
            fake = self.generate(z, labels)

        self.toggle_optimizer(opt_d)
        real_logits = self.discriminate(self.with_noise(real, std), labels)
        fake_logits = self.discriminate(self.with_noise(fake.detach(), std), labels)
        real_target = torch.full_like(real_logits, 1.0 - self.hparams.label_smoothing)
        d_loss = F.binary_cross_entropy_with_logits(real_logits, real_target) + (
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        )
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        log: dict[str, torch.Tensor | float] = {
            "d_loss": d_loss.detach(),
            "d_real": real_logits.detach().float().sigmoid().mean(),
            "d_fake": fake_logits.detach().float().sigmoid().mean(),
        }

        if train_g:
            self.toggle_optimizer(opt_g)
            g_logits = self.discriminate(self.with_noise(fake, std), labels)
            g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            log["g_loss"] = g_loss.detach()
        if std:
            log["instance_noise"] = std
        self.log_train_step(log, batch_size=n, prog_bar=("d_loss", "g_loss"))
        return {key: log[key] for key in ("d_loss", "g_loss") if key in log}

    # --- validation / test: the discriminator on held-out real images vs as many fakes -------
    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        images, labels = batch
        real = images * 2 - 1
        labels = labels if self.num_classes else None
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)
        fake = self.generate(z, labels)
        with batch_statistics(self.discriminator):  # one real, one generated batch: as in training
            real_logits, fake_logits = self.discriminate(real, labels), self.discriminate(fake, labels)
        ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
        d_loss = F.binary_cross_entropy_with_logits(real_logits, ones) + (
            F.binary_cross_entropy_with_logits(fake_logits, zeros)
        )
        g_loss = F.binary_cross_entropy_with_logits(fake_logits, ones)
        n = real.shape[0]
        metrics = {key: self.eval_metrics[f"{stage}_{key}"] for key in ("d_acc", "d_loss", "g_loss")}
        scores = torch.cat([real_logits, fake_logits]).float().sigmoid()
        metrics["d_acc"](scores, torch.cat([ones, zeros]).int())
        metrics["d_loss"](d_loss, weight=n)
        metrics["g_loss"](g_loss, weight=n)
        for key, metric in metrics.items():
            self.log(f"{stage}/{key}", metric, on_epoch=True, prog_bar=stage == "val" and key == "d_acc")
        d_real, d_fake = real_logits.float().sigmoid().mean(), fake_logits.float().sigmoid().mean()
        self.log(f"{stage}/d_real", d_real, on_epoch=True, batch_size=n, sync_dist=True)
        self.log(f"{stage}/d_fake", d_fake, on_epoch=True, batch_size=n, sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")
