"""Autoencoders and variational autoencoders: one LightningModule family over any encoder/decoder pair.

Losses are per image: summed over the pixels (and latent dimensions), averaged over the batch. With
``reconstruction="bce"`` the reconstruction term is the Bernoulli negative log-likelihood in nats,
so the VAE's ``elbo`` is a per-image ELBO in nats; see docs/autoencoder.md.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from dlforge.models.base import IMAGE_DATA, DlforgeModule, GenerativeModule
from dlforge.nets import build_net
from dlforge.registry import register_model

RECONSTRUCTIONS = ("bce", "mse")
NOISES = ("gaussian", "masking", "salt_and_pepper")


def corrupt(
    images: torch.Tensor, noise: str, level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noisy copies of images in [0, 1] for denoising training (the inputs; the targets stay clean).

    ``gaussian``: add N(0, level^2) and clip to [0, 1]; ``masking``: set a fraction ``level`` of the
    pixels to 0; ``salt_and_pepper``: set a fraction ``level`` of the pixels to 0 or 1 at random.
    """
    if level <= 0:
        return images

    def rand(draw: Any) -> torch.Tensor:
        return draw(images.shape, generator=generator, device="cpu").to(images.device, images.dtype)

    if noise == "gaussian":
        return (images + level * rand(torch.randn)).clamp(0, 1)
    hit = rand(torch.rand) < level
    if noise == "masking":
        return images.masked_fill(hit, 0.0)
    if noise == "salt_and_pepper":
        return torch.where(hit, (rand(torch.rand) < 0.5).to(images.dtype), images)
    raise ValueError(f"unknown noise {noise!r}; choose one of {NOISES}")


@register_model("autoencoder")
class Autoencoder(DlforgeModule):
    """Deterministic autoencoder: encoder -> code ``z`` (``latent_dim``) -> decoder -> sigmoid.

    Not a generative model: it has no prior to sample codes from (see :class:`VAE`).

    Args:
        net: ``{"name": "mlp_autoencoder" | "conv_autoencoder", **its options}`` (``dlforge.nets``).
        data: the data module's ``spec`` (image shape, classes, normalization statistics); the
            encoder sees standardized inputs, the decoder produces [0, 1] images.
        latent_dim: size of the code.
        reconstruction: ``bce`` (per-pixel binary cross-entropy; suits MNIST-like data) or ``mse``
            (squared error), summed over the pixels of an image.
        noise, noise_level: denoising option: inputs corrupted with ``gaussian`` (std
            ``noise_level``), ``masking`` or ``salt_and_pepper`` noise (fraction ``noise_level``) in
            every stage, targets clean. ``noise_level=0`` turns it off.
        pictures: options of :class:`dlforge.callbacks.autoencoder.AutoencoderPictures` (``null``: none).
        training: ``optimizer``, ``scheduler``, ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.DlforgeModule`).
    """

    stochastic: ClassVar[bool] = False  # VAE: the encoder gives a mean and a log-variance
    default_monitor = "val/loss"

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        latent_dim: int = 32,
        reconstruction: str = "bce",
        noise: str = "gaussian",
        noise_level: float = 0.0,
        pictures: dict[str, Any] | None = None,
        samples: dict[str, Any] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.require_data(data, ("channels", "height", "width", "mean"), IMAGE_DATA)
        self.save_hyperparameters()
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction {reconstruction!r}; choose one of {RECONSTRUCTIONS}")
        if noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r}; choose one of {NOISES}")
        self.latent_dim = latent_dim
        self.image_shape = (data["channels"], data["height"], data["width"])
        self.net = build_net(
            in_channels=data["channels"],
            height=data["height"],
            width=data["width"],
            latent_dim=latent_dim,
            **net,
        )
        self.head = nn.Linear(self.net.embedding_dim, latent_dim * (2 if self.stochastic else 1))
        self.register_buffer("mean", torch.tensor(data["mean"]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data["std"]).view(1, -1, 1, 1), persistent=False)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": MeanMetric()
                for stage in ("val", "test")
                for name in ("loss", "recon", "mse", *(("kl", "elbo") if self.stochastic else ()))
            }
        )

    # --- the model -------------------------------------------------------------------------------
    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The code of images in [0, 1] (VAE: the posterior mean and log-variance; else ``None``)."""
        h = self.head(self.net.encoder((images - self.mean) / self.std))
        if not self.stochastic:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latent codes of images in [0, 1] (VAE: the posterior means)."""
        return self.posterior(images)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latent codes ``z``."""
        return torch.sigmoid(self.net.decoder(z))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1] of images in [0, 1] (VAE: decoded posterior means)."""
        return self.decode(self.encode(images))

    def corrupt(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The denoising option's noisy inputs (the images themselves when it is off)."""
        return corrupt(images, self.hparams.noise, self.hparams.noise_level, generator)

    # --- the loss --------------------------------------------------------------------------------
    def reconstruction_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-image reconstruction loss (summed over pixels), shape (N,)."""
        if self.hparams.reconstruction == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        else:
            per_pixel = (torch.sigmoid(logits) - targets).square()
        return per_pixel.flatten(1).sum(1)

    def losses(
        self, images: torch.Tensor, beta: float = 1.0, inputs: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-image ``loss``, ``recon`` (VAE: and ``kl``, weighted by ``beta`` in the loss), averaged over
        the batch, of reconstructing ``images`` from ``inputs`` (default: ``self.corrupt(images)``);
        ``latent``: the codes (VAE: the posterior means)."""
        code, _ = self.posterior(self.corrupt(images) if inputs is None else inputs)
        recon = self.reconstruction_loss(self.net.decoder(code), images).mean()
        return {"loss": recon, "recon": recon, "latent": code}

    # --- Lightning -------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch[0], self.kl_weight(batch_idx))
        values = {name: out[name] for name in ("loss", "recon", "kl", "beta") if name in out}
        self.log_train_step(values, batch_size=len(batch[0]), prog_bar=("loss",))
        return out["loss"]

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        images, labels = batch
        inputs = self.corrupt(images)
        out = self.losses(images, self.kl_weight(), inputs)
        out["mse"] = F.mse_loss(self(inputs), images)  # per pixel, as the pictures show
        if "kl" in out:
            out["elbo"] = -(out["recon"] + out["kl"] + self.recon_constant())
        for name, value in out.items():
            key = f"{stage}_{name}"
            if key in self.metrics:
                self.metrics[key](value, weight=len(images))
                self.log(f"{stage}/{name}", self.metrics[key], on_epoch=True, prog_bar=name == "loss")
        return {"latent": out["latent"].detach(), "labels": labels}

    def kl_weight(self, batch_idx: int | None = None) -> float:
        """The KL weight ``beta``, ramped up over ``kl_warmup_epochs`` in training (VAE; 0 otherwise)."""
        return 0.0

    def recon_constant(self) -> float:
        """What turns the reconstruction loss into a negative log-likelihood in nats (per image)."""
        if self.hparams.reconstruction == "bce":
            return 0.0
        pixels = math.prod(self.image_shape)
        return 0.5 * pixels * math.log(math.pi)  # squared error = Gaussian NLL, variance 1/2, minus this

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        return self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        return self._evaluate(batch, "test")


@register_model("vae")
class VAE(Autoencoder, GenerativeModule):
    """Variational autoencoder (Kingma & Welling 2014): q(z|x) = N(mean, exp(logvar)), prior N(0, I).

    Loss per image: reconstruction of a reparameterised sample ``z = mean + exp(logvar / 2) * eps``
    plus ``beta * KL(q(z|x) || N(0, I))`` (analytic). ``beta`` rises linearly from 0 over the first
    ``kl_warmup_epochs`` of training (KL warm-up; 0: off); validation and test always use the full
    ``beta``. Samples: :meth:`decode_latent` of prior draws (``sample``, ``python -m dlforge.generate``).

    Args (besides :class:`Autoencoder`'s):
        beta: weight of the KL term (1: the ELBO; > 1: beta-VAE).
        samples: options of the prior-sample grids (:class:`dlforge.callbacks.generative.SampleGrid`;
            null: none).
        kl_warmup_epochs: epochs (fractions allowed) over which the KL weight grows from 0 to ``beta``.
    """

    stochastic = True

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        latent_dim: int = 16,
        reconstruction: str = "bce",
        beta: float = 1.0,
        kl_warmup_epochs: float = 0.0,
        noise: str = "gaussian",
        noise_level: float = 0.0,
        pictures: dict[str, Any] | None = None,
        samples: dict[str, Any] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(
            net=net,
            data=data,
            latent_dim=latent_dim,
            reconstruction=reconstruction,
            noise=noise,
            noise_level=noise_level,
            pictures=pictures,
            **training,
        )

    def decode_latent(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(z)

    def kl_weight(self, batch_idx: int | None = None) -> float:
        beta, warmup = self.hparams.beta, self.hparams.kl_warmup_epochs
        if batch_idx is None or warmup <= 0:
            return beta
        batches = self.trainer.num_training_batches
        epoch_fraction = (batch_idx + 1) / batches if math.isfinite(batches) and batches > 0 else 1.0
        return beta * min(1.0, (self.current_epoch + epoch_fraction) / warmup)

    def losses(
        self, images: torch.Tensor, beta: float = 1.0, inputs: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        mean, logvar = self.posterior(self.corrupt(images) if inputs is None else inputs)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        recon = self.reconstruction_loss(self.net.decoder(z), images).mean()
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(1).mean()
        return {
            "loss": recon + beta * kl,
            "recon": recon,
            "kl": kl,
            "beta": torch.tensor(beta),
            "latent": mean,
        }
