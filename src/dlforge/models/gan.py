"""Generative adversarial networks with manual optimization: one LightningModule for every GAN net."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryAccuracy

from dlforge.models.base import IMAGE_DATA, AdversarialModule, GenerativeModule
from dlforge.nets import build_net
from dlforge.nets.gan import DiffAugment, cluster_of, latent_code
from dlforge.registry import register_model

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """Let ``module``'s batch-norm layers normalize with each batch's own statistics, as in training,
    leaving their running statistics untouched.

    A discriminator sees real and generated batches separately, so its running statistics mix two
    distributions and its eval-mode outputs are no guide to how it judges either (D(x) and D(G(z))
    can both collapse towards 0); validation measures it the way it is trained.
    """
    norms = [m for m in module.modules() if isinstance(m, BATCH_NORMS)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:
        m.training, m.track_running_stats = True, False
    try:
        yield
    finally:
        for m, (training, track) in zip(norms, saved, strict=True):
            m.training, m.track_running_stats = training, track


#: the adversarial losses (``loss=``): the discriminator's and the generator's, on logits
LOSSES = ("non_saturating", "hinge", "least_squares", "wgan_gp")


def discriminator_loss(
    kind: str, real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0
) -> torch.Tensor:
    """The discriminator's loss on its logits for real and generated images.

    ``non_saturating``: binary cross-entropy (Goodfellow et al. 2014), real target ``1 - smoothing``;
    ``hinge``: ``relu(1 - D(x)) + relu(1 + D(G(z)))`` (Lim & Ye 2017; Miyato et al. 2018);
    ``least_squares``: ``((D(x) - 1)^2 + D(G(z))^2) / 2`` (Mao et al. 2017);
    ``wgan_gp``: ``D(G(z)) - D(x)``, the critic's loss (Gulrajani et al. 2017; add :func:`gradient_penalty`).
    """
    if kind == "non_saturating":
        real_target = torch.full_like(real, 1.0 - smoothing)
        return F.binary_cross_entropy_with_logits(real, real_target) + F.binary_cross_entropy_with_logits(
            fake, torch.zeros_like(fake)
        )
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "least_squares":
        return ((real - 1).square().mean() + fake.square().mean()) / 2
    return fake.mean() - real.mean()


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss on the discriminator's logits for its images: ``-log D(G(z))``
    (non-saturating), ``-D(G(z))`` (hinge, wgan_gp) or ``(D(G(z)) - 1)^2 / 2`` (least squares)."""
    if kind == "non_saturating":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "least_squares":
        return (fake - 1).square().mean() / 2
    return -fake.mean()


def input_gradient_norms(
    critic: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
) -> torch.Tensor:
    """Per-image squared norm of d critic(x) / d x, kept in the graph (for penalties)."""
    images = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(images).sum(), images, create_graph=True)
    return grad.flatten(1).square().sum(dim=1)


def r1_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, gamma: float
) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): ``gamma / 2 * E ||d D(x) / d x||^2`` on real images."""
    return gamma / 2 * input_gradient_norms(critic, real).mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
) -> torch.Tensor:
    """WGAN-GP's ``weight * E (||d D(x^) / d x^|| - 1)^2`` at random points x^ between real and fakes."""
    mix = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    between = mix * real.detach() + (1 - mix) * fake.detach()
    return weight * (input_gradient_norms(critic, between).add(1e-12).sqrt() - 1).square().mean()


def warmed_up_average(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``AveragedModel``'s ``avg_fn`` for an exponential average whose decay warms up:
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` averaged updates, so early weights fade fast."""

    def average(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        return averaged.lerp(current, 1 - d)

    return average


#: what an average written before torch's ``AveragedModel`` counts as its updates: enough that the
#: warm-up is over (the average of a trained model), as it was for any checkpoint worth loading
OLD_AVERAGE_UPDATES = 100_000


def averaged_model_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """A ``load_state_dict`` pre-hook: a weight average saved before it was torch's ``AveragedModel``
    (keys ``generator_ema.net.*``, no update count) loads into one (``generator_ema.module.net.*``)."""
    old = f"{prefix}generator_ema.net."
    keys = [key for key in state_dict if key.startswith(old)]
    if not keys:
        return
    expected = set(module.state_dict())
    for key in keys:
        value, new = state_dict.pop(key), f"{prefix}generator_ema.module.net." + key[len(old) :]
        if new.removeprefix(prefix) in expected:
            state_dict[new] = value
    state_dict.setdefault(f"{prefix}generator_ema.n_averaged", torch.tensor(OLD_AVERAGE_UPDATES))


@torch.no_grad()
def refresh_batch_norm(
    net: nn.Module, sample: Callable[[torch.Generator], tuple[torch.Tensor, ...]], batches: int
) -> None:
    """Recompute ``net``'s batch-norm running statistics as the plain mean over ``batches`` forward
    passes of ``sample(generator)`` (BigGAN's "standing statistics"): averaged weights need the
    statistics of their own activations. Seeded, so the same weights give the same statistics."""
    norms = [m for m in net.modules() if isinstance(m, BATCH_NORMS)]
    if not norms:
        return
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.train()
        m.momentum = None  # a cumulative average
    generator = torch.Generator().manual_seed(0)
    try:
        for _ in range(batches):
            net(*sample(generator))
    finally:
        for m, (training, momentum) in zip(norms, saved, strict=True):
            m.train(training)
            m.momentum = momentum


@register_model("gan")
class GAN(GenerativeModule, AdversarialModule):
    """A generator/discriminator pair from ``dlforge.nets`` trained adversarially.

    Each training batch (images in [0, 1], mapped to [-1, 1] for the tanh generator):

    1. discriminator step: ``loss`` (:func:`discriminator_loss`) on the logits of a real and a
       generated batch, plus the ``r1_gamma`` penalty on the real one (every ``r1_every``-th batch,
       times ``r1_every``) and, for ``wgan_gp``, the
       gradient penalty (weight ``gp_weight``);
    2. generator step (every ``d_steps``-th batch): :func:`generator_loss` on the just-updated
       discriminator's logits for the same fakes; then the weight average (``ema_decay``) moves.

    What the discriminator sees, real or generated, passes through ``diffaugment`` (a list of
    :class:`~dlforge.nets.gan.DiffAugment` policies) and ``instance_noise`` (Gaussian noise of that
    standard deviation in [-1, 1] pixel units, decaying linearly to 0 over ``trainer.max_epochs`` if
    ``instance_noise_anneal``). Spectral normalization, the minibatch standard deviation and the
    projection discriminator are options of the networks (``net.spectral_norm`` etc.). Separate
    learning rates for G and D (TTUR, Heusel et al. 2017) are the two optimizer configs.

    With a latent code (``net.codes``: InfoGAN, Chen et al. 2016), both steps also add ``info_weight``
    times the cross-entropy of the discriminator's code head on the fakes against the code each was
    drawn with (a lower bound on their mutual information), so the code comes to name a mode.

    Self-conditioned (``net.clusters``; Liu et al. 2020, on pixel clusters): each real batch first moves
    the online k-means of the real images (:class:`~dlforge.nets.gan.PixelClusters`); the discriminator
    then reads real images with their nearest cluster and fakes with the cluster each latent drew, in
    the clusters' shares so far. No labels are used, and a sample still needs only z.

    With ``ema_decay`` > 0 the generator's weights are averaged (torch's ``AveragedModel``; Yazici
    et al. 2019), ``decay`` warmed up as ``min(decay, (1 + n) / (10 + n))`` after n updates; samples,
    FID, ``generate``, ``export`` and the app use the average, whose batch-norm statistics are
    recomputed from 8 seeded batches whenever it is used after training moved it.

    Validation and test measure the discriminator on held-out real images against as many
    generated ones (``val/d_acc``, ``val/d_real``, ``val/d_fake``, losses; with batch statistics,
    see :func:`batch_statistics`); sample quality (FID/KID, class balance) comes from the
    ``SampleQualityMonitor`` callback.

    Args:
        net: ``{"name": dcgan | cgan | gan_seed002, **its options}`` (see :mod:`dlforge.nets.gan`).
        data: the data module's ``spec`` (shape and classes).
        loss: non_saturating | hinge | least_squares | wgan_gp.
        r1_gamma: weight of the R1 penalty on real images (0: off).
        r1_every: apply R1 on every ``r1_every``-th batch of an epoch only, times ``r1_every``
            (StyleGAN2's lazy regularization, Karras et al. 2020: about the same penalty for a
            ``1 / r1_every`` share of its cost).
        gp_weight: weight of WGAN-GP's gradient penalty (``loss=wgan_gp`` only).
        ema_decay: decay of the generator's weight average (0: none; samples use the raw weights).
        diffaugment: DiffAugment policies for the discriminator's inputs, e.g. ``[translation, cutout]``.
        label_smoothing: real targets become ``1 - label_smoothing`` (non-saturating loss only).
        instance_noise: standard deviation of the noise added to the discriminator's inputs.
        instance_noise_anneal: decay the noise linearly to 0 over training.
        d_steps: discriminator steps per generator step.
        info_weight: weight of the latent code's cross-entropy (``net.codes`` > 0 only; InfoGAN's lambda).
        samples: options of the fixed-latent sample grids (:class:`dlforge.callbacks.generative.SampleGrid`;
            null: none).
        training: ``optimizer_g``, ``optimizer_d`` (the optimizer configs of the generator and the
            discriminator), ``scheduler`` (one for each optimizer), ``monitor`` (default null: the
            latest checkpoint is kept), ``monitor_mode`` (:class:`~dlforge.models.base.AdversarialModule`).
    """

    EMA_STATISTICS_BATCHES = 8

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        loss: str = "non_saturating",
        r1_gamma: float = 0.0,
        r1_every: int = 1,
        gp_weight: float = 10.0,
        ema_decay: float = 0.0,
        diffaugment: list[str] | None = None,
        label_smoothing: float = 0.0,
        instance_noise: float = 0.0,
        instance_noise_anneal: bool = True,
        d_steps: int = 1,
        info_weight: float = 1.0,
        samples: dict[str, Any] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        if d_steps < 1:
            raise ValueError(f"d_steps={d_steps}: need at least one discriminator step per generator step")
        if r1_every < 1:
            raise ValueError(f"r1_every={r1_every}: use a whole number >= 1 (1: R1 on every batch)")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing={label_smoothing}: use a value in [0, 1), e.g. 0.1")
        if loss not in LOSSES:
            raise ValueError(f"loss={loss}: choose one of {', '.join(LOSSES)}")
        if label_smoothing and loss != "non_saturating":
            raise ValueError(
                f"label_smoothing={label_smoothing} smooths binary cross-entropy targets: "
                f"use it with loss=non_saturating, not loss={loss}"
            )
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay={ema_decay}: use a value in [0, 1), e.g. 0.999 (0: no average)")
        if r1_gamma < 0 or gp_weight < 0 or info_weight < 0:
            raise ValueError(
                f"r1_gamma={r1_gamma}, gp_weight={gp_weight}, info_weight={info_weight}: "
                "loss weights cannot be negative"
            )
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
        self.codes = getattr(pair, "codes", 0)
        self.clusters = getattr(pair, "clusters", None)
        self.augment = DiffAugment(diffaugment or ())
        if ema_decay:  # torch's weight average; its batch-norm statistics are refreshed, not averaged
            self.generator_ema = AveragedModel(self.generator, avg_fn=warmed_up_average(ema_decay))
            self.generator_ema.requires_grad_(False)
            self.ema_stale = True  # batch-norm statistics not yet those of the averaged weights
            self.register_load_state_dict_pre_hook(averaged_model_keys)
        self.eval_metrics = torch.nn.ModuleDict()
        for stage in ("val", "test"):
            self.eval_metrics[f"{stage}_d_acc"] = BinaryAccuracy()
            self.eval_metrics[f"{stage}_d_loss"] = MeanMetric()
            self.eval_metrics[f"{stage}_g_loss"] = MeanMetric()

    # --- generation (the GenerativeModule interface) -----------------------------------------
    def sampling_generator(self) -> nn.Module:
        """The network that draws samples: the weight average (statistics refreshed) or the generator."""
        if not self.hparams.ema_decay:
            return self.generator
        if self.ema_stale and not torch.jit.is_tracing() and not torch.jit.is_scripting():
            self.refresh_ema_statistics()
        return self.generator_ema

    def refresh_ema_statistics(self) -> None:
        """Batch-norm statistics of the averaged generator from its own activations (seeded)."""

        def prior(generator: torch.Generator) -> tuple[torch.Tensor, ...]:
            z = torch.randn(256, self.latent_dim, generator=generator).to(self.device)
            labels = torch.randint(max(self.num_classes, 1), (256,), generator=generator).to(self.device)
            return (z, labels if self.num_classes else None)

        refresh_batch_norm(self.generator_ema, prior, self.EMA_STATISTICS_BATCHES)
        self.ema_stale = False

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Training generator output in [-1, 1]."""
        return self.generator(z, labels if self.num_classes else None)

    def decode_latent(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] for latents ``z`` (from the weight average, if any); a conditional GAN
        needs ``labels``: class indices (N,) or class vectors (N, num_classes)."""
        if self.num_classes and labels is None:
            raise ValueError("this GAN is conditional: pass the class labels of the images to generate")
        images = self.sampling_generator()(z, labels if self.num_classes else None)
        return ((images.float() + 1) / 2).clamp(0, 1)

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Discriminator logits for images in [-1, 1] and what it reads with them (:meth:`conditions`)."""
        return self.discriminator(images, labels)

    def conditions(
        self, real: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, learn: bool = False
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """What the discriminator reads with the real images and with the fakes of ``z``: a conditional
        GAN's classes (the same for both), a self-conditioned one's clusters (each real image's
        nearest, after moving the centres with them if ``learn``; the ones the latents draw), or None."""
        if self.clusters is None:
            return (labels, labels) if self.num_classes else (None, None)
        real_clusters = self.clusters.update(real) if learn else self.clusters.assign(real)
        if learn:  # the generators draw clusters in their shares so far
            cdf = self.clusters.cdf()
            self.generator.cluster_cdf.copy_(cdf)
            if self.hparams.ema_decay:
                self.generator_ema.module.cluster_cdf.copy_(cdf)
        return real_clusters, cluster_of(z, self.generator.cluster_cdf)

    # --- training ----------------------------------------------------------------------------
    def noise_std(self, batch_idx: int) -> float:
        """The instance noise's standard deviation now (annealed linearly over ``max_epochs``)."""
        std = self.hparams.instance_noise
        epochs = self.trainer.max_epochs
        if std and self.hparams.instance_noise_anneal and epochs and epochs > 0:
            batches = max(1, int(min(self.trainer.num_training_batches, 1e12)))
            std *= max(0.0, 1.0 - (self.current_epoch + batch_idx / batches) / epochs)
        return float(std)

    def seen(self, images: torch.Tensor, std: float) -> torch.Tensor:
        """What the discriminator sees of ``images`` while training: augmented, then noised."""
        images = self.augment(images)
        return images + std * torch.randn_like(images) if std > 0 else images

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """One discriminator step and (every ``d_steps``-th batch) one generator step; returns the
        losses (for ``FiniteLossGuard``)."""
        images, labels = batch
        real = images * 2 - 1
        n = real.shape[0]
        opt_g, opt_d = self.optimizers()
        train_g = (batch_idx + 1) % self.hparams.d_steps == 0
        std = self.noise_std(batch_idx)
        kind = self.hparams.loss

        # one batch of fakes: detached for the discriminator, with its graph for the generator
        z = torch.randn(n, self.latent_dim, device=self.device)
        real_labels, fake_labels = self.conditions(real, z, labels, learn=True)
        with torch.set_grad_enabled(train_g):
            fake = self.generate(z, fake_labels)

        def critic(x: torch.Tensor, labels: torch.Tensor | None = real_labels) -> torch.Tensor:
            return self.discriminate(self.seen(x, std), labels)

        def coded_critic(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Logits and, with a latent code, its cross-entropy against the codes of ``z`` (else 0)."""
            if not self.codes:
                return critic(x, fake_labels), x.new_zeros(())
            logits, code_logits = self.discriminator(self.seen(x, std), None, read_code=True)
            return logits, F.cross_entropy(code_logits.float(), latent_code(z, self.codes))

        self.toggle_optimizer(opt_d)
        real_logits, (fake_logits, fake_info) = critic(real), coded_critic(fake.detach())
        d_loss = discriminator_loss(kind, real_logits, fake_logits, self.hparams.label_smoothing)
        log: dict[str, torch.Tensor | float] = {
            "d_loss": d_loss.detach(),
            "d_real": real_logits.detach().float().sigmoid().mean(),
            "d_fake": fake_logits.detach().float().sigmoid().mean(),
        }
        if self.codes:
            d_loss, log["info"] = d_loss + self.hparams.info_weight * fake_info, fake_info.detach()
        if self.hparams.r1_gamma:  # logged every step (0 where lazy R1 skips), so its mean is the penalty's
            every, log["r1"] = self.hparams.r1_every, 0.0
            if batch_idx % every == 0:
                penalty = every * r1_penalty(critic, real, self.hparams.r1_gamma)
                d_loss, log["r1"] = d_loss + penalty, penalty.detach()
        if kind == "wgan_gp":
            penalty = gradient_penalty(critic, real, fake, self.hparams.gp_weight)
            d_loss, log["gp"] = d_loss + penalty, penalty.detach()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        if train_g:
            self.toggle_optimizer(opt_g)
            fake_logits, fake_info = coded_critic(fake)
            g_loss = generator_loss(kind, fake_logits) + self.hparams.info_weight * fake_info
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            log["g_loss"] = g_loss.detach()
            if self.hparams.ema_decay:
                self.generator_ema.update_parameters(self.generator)
                self.ema_stale = True
        if std:
            log["instance_noise"] = std
        self.log_train_step(log, batch_size=n, prog_bar=("d_loss", "g_loss"))
        return {key: log[key] for key in ("d_loss", "g_loss") if key in log}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints hold the averaged generator with its own batch-norm statistics (refreshed in
        place, so the state dict Lightning has just taken sees them)."""
        super().on_save_checkpoint(checkpoint)
        if self.hparams.ema_decay:
            self.sampling_generator()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.hparams.ema_decay:
            self.ema_stale = False  # saved refreshed

    # --- validation / test: the discriminator on held-out real images vs as many fakes -------
    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        images, labels = batch
        real = images * 2 - 1
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)
        real_labels, fake_labels = self.conditions(real, z, labels)
        fake = self.generate(z, fake_labels)
        with batch_statistics(self.discriminator):  # one real, one generated batch: as in training
            real_logits = self.discriminate(real, real_labels)
            fake_logits = self.discriminate(fake, fake_labels)
        kind = self.hparams.loss
        d_loss = discriminator_loss(kind, real_logits, fake_logits)
        g_loss = generator_loss(kind, fake_logits)
        n = real.shape[0]
        metrics = {key: self.eval_metrics[f"{stage}_{key}"] for key in ("d_acc", "d_loss", "g_loss")}
        ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
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
