"""The pictures that explain an autoencoder: reconstructions, the latent space, interpolations, the manifold.

Options in ``model.pictures``; ``train.py`` and ``python -m dlforge.evaluate`` both write them into
the run dir and send them to the run's loggers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from pytorch_lightning.callbacks import Callback

from dlforge.models.autoencoder import Autoencoder
from dlforge.registry import register_callbacks
from dlforge.viz import evaluating, log_image, save_figure, save_grid

log = logging.getLogger(__name__)


class AutoencoderPictures(Callback):
    """Pictures of an :class:`~dlforge.models.autoencoder.Autoencoder` or ``VAE``.

    - every ``every_n_epochs``: ``reconstructions/epoch_NNN.png``, the first ``n`` validation images
      above their reconstructions (with the denoising option: clean, noisy input, output);
    - at test end: ``reconstructions/test.png`` (the first ``n`` test images), ``latent_space.png``
      (posterior means of up to ``max_points`` test images coloured by class; 2-d codes as they are,
      larger ones projected on their first two principal components), ``interpolation.png``
      (decoded straight lines between the codes of ``interpolation_pairs`` test-image pairs of
      different classes, real images at both ends) and, for a VAE with a 2-d latent,
      ``manifold.png``: decoded ``manifold_steps`` x ``manifold_steps`` grid of latent points at
      evenly spaced quantiles of the N(0, 1) prior (Kingma & Welling 2014, fig. 4).
    """

    def __init__(
        self,
        n: int = 8,
        every_n_epochs: int = 1,
        max_points: int = 10000,
        interpolation_pairs: int = 6,
        interpolation_steps: int = 10,
        manifold_steps: int = 20,
        seed: int = 0,
    ) -> None:
        self.n = n
        self.every_n_epochs = every_n_epochs
        self.max_points = max_points
        self.interpolation_pairs = interpolation_pairs
        self.interpolation_steps = interpolation_steps
        self.manifold_steps = manifold_steps
        self.seed = seed
        self.val_images: torch.Tensor | None = None
        self.test_images: list[torch.Tensor] = []
        self.test_labels: list[torch.Tensor] = []
        self.latents: list[torch.Tensor] = []

    # --- reconstructions during training -------------------------------------------------------
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.val_images is None and batch_idx == 0 and dataloader_idx == 0:
            self.val_images = batch[0][: self.n].detach().cpu()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (
            trainer.sanity_checking
            or self.val_images is None
            or (trainer.current_epoch + 1) % self.every_n_epochs
        ):
            return
        name = f"epoch_{trainer.current_epoch:03d}.png"
        self._reconstructions(trainer, pl_module, self.val_images, name, "val/reconstructions")

    def _reconstructions(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, images: torch.Tensor, name: str, key: str
    ) -> None:
        with evaluating(pl_module):
            inputs = pl_module.corrupt(images.to(pl_module.device), torch.Generator().manual_seed(self.seed))
            outputs = pl_module(inputs)
        rows = (
            [images, inputs.cpu(), outputs.cpu()]
            if pl_module.hparams.noise_level > 0
            else [images, outputs.cpu()]
        )
        if trainer.is_global_zero:
            grid = save_grid(torch.cat(rows), _folder(trainer) / "reconstructions" / name, nrow=len(images))
            log_image(trainer, key, grid)

    # --- test-set pictures ------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.test_images, self.test_labels, self.latents = [], [], []

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        seen = sum(len(z) for z in self.latents)
        if seen >= self.max_points or not isinstance(outputs, dict):
            return
        take = self.max_points - seen
        self.latents.append(outputs["latent"][:take].float().cpu())
        self.test_labels.append(outputs["labels"][:take].cpu())
        if seen < 64:
            self.test_images.append(batch[0][: 64 - seen].detach().cpu())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.latents:
            return
        images = torch.cat(self.test_images)
        latents, labels = torch.cat(self.latents), torch.cat(self.test_labels)
        self._reconstructions(trainer, pl_module, images[: self.n], "test.png", "test/reconstructions")
        if not trainer.is_global_zero:
            return
        folder = _folder(trainer)
        names = pl_module.hparams.data.get("class_names") or [str(k) for k in range(int(labels.max()) + 1)]
        figure = latent_scatter(latents, labels, names, _title(pl_module, len(latents)))
        log_image(trainer, "test/latent_space", save_figure(figure, folder / "latent_space.png"))
        log_image(trainer, "test/interpolation", self._interpolation(pl_module, images, labels, folder))
        if getattr(pl_module, "stochastic", False) and pl_module.latent_dim == 2:
            log_image(trainer, "test/manifold", self._manifold(pl_module, folder))
        log.info("autoencoder pictures: %s", folder)

    def _interpolation(
        self, pl_module: pl.LightningModule, images: torch.Tensor, labels: torch.Tensor, folder: Path
    ) -> torch.Tensor:
        starts, ends, i = [], [], 0
        while len(starts) < self.interpolation_pairs and i < len(images):
            j = next((j for j in range(i + 1, len(images)) if labels[j] != labels[i]), None)
            if j is None:
                break
            starts.append(i)
            ends.append(j)
            i = j + 1
        a, b = images[starts].to(pl_module.device), images[ends].to(pl_module.device)
        t = torch.linspace(0, 1, self.interpolation_steps, device=pl_module.device).view(1, -1, 1)
        with evaluating(pl_module):
            za, zb = pl_module.encode(a), pl_module.encode(b)
            path = (1 - t) * za[:, None] + t * zb[:, None]  # (pairs, steps, latent)
            decoded = pl_module.decode(path.flatten(0, 1)).view(
                len(a), self.interpolation_steps, *a.shape[1:]
            )
        rows = torch.cat([a[:, None], decoded, b[:, None]], dim=1).flatten(0, 1)
        return save_grid(rows.cpu(), folder / "interpolation.png", nrow=self.interpolation_steps + 2)

    def _manifold(self, pl_module: pl.LightningModule, folder: Path) -> torch.Tensor:
        steps = self.manifold_steps
        quantiles = torch.linspace(0.5 / steps, 1 - 0.5 / steps, steps)
        values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles)
        z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")  # rows: z2 from high to low
        z = torch.stack([z1.flatten(), z2.flatten()], dim=1).to(pl_module.device)
        with evaluating(pl_module):
            images = pl_module.decode(z)
        return save_grid(images.cpu(), folder / "manifold.png", nrow=steps, padding=0)


def latent_scatter(latents: torch.Tensor, labels: torch.Tensor, class_names: list[str], title: str) -> Figure:
    """Latent codes coloured by class: 2-d codes as they are, larger ones on 2 principal components."""
    latents = latents.double()
    if latents.shape[1] == 1:
        jitter = torch.rand(len(labels), 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        points = torch.cat([latents, labels[:, None].double() + 0.6 * (jitter - 0.5)], 1)
        axes = ("z", "class (jittered)")
    elif latents.shape[1] == 2:
        points, axes = latents, ("z[0]", "z[1]")
    else:
        centred = latents - latents.mean(0)
        _, _, v = torch.pca_lowrank(centred, q=2, center=False)
        points = centred @ v
        share = points.var(0) / centred.var(0).sum()
        axes = tuple(
            f"principal component {k + 1} ({100 * float(s):.1f}% of variance)" for k, s in enumerate(share)
        )
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    colours = matplotlib.colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))  # no class drawn on top
    x, y = points[order].T.numpy()
    ax.scatter(x, y, s=3, alpha=0.6, c=[colours(int(k) % colours.N) for k in labels[order]], rasterized=True)
    present = set(labels.tolist())
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours(k % colours.N), label=str(name))
        for k, name in enumerate(class_names)
        if k in present
    ]
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=9)
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def _title(pl_module: pl.LightningModule, n: int) -> str:
    data = pl_module.hparams.data
    what = "posterior means" if getattr(pl_module, "stochastic", False) else "codes"
    dims = f"{pl_module.latent_dim}-d {what}"
    return f"{pl_module.kind} latent space ({dims}) of {n} {data.get('name')} test images"


def _folder(trainer: pl.Trainer) -> Path:
    return Path(trainer.default_root_dir)


@register_callbacks(Autoencoder)
def autoencoder_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    pictures = hparams.get("pictures")
    return [] if pictures is None else [AutoencoderPictures(**pictures)]
