"""Callbacks for generative models (GANs, VAEs): fixed-latent sample grids and sample quality."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from PIL import Image
from pytorch_lightning.callbacks import Callback

from dlforge.models.base import GenerativeModule
from dlforge.outputs import write_json
from dlforge.quality import SampleQuality
from dlforge.registry import register_callbacks
from dlforge.viz import evaluating, log_image, save_figure, save_grid

log = logging.getLogger(__name__)


def _eval_mode_samples(model: GenerativeModule, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    with evaluating(model):
        images = model.decode_latent(z.to(model.device), None if labels is None else labels.to(model.device))
    return images.float().cpu()


class SampleGrid(Callback):
    """Each ``every_n_epochs``: decode one fixed latent batch, save ``samples/epoch_NNN.png``, log it.

    At the end of training, ``samples/progress.png`` stacks the first row of every saved grid
    (one row per epoch, at most ``max_strip_rows`` evenly spaced) and ``samples/progress.gif``
    animates the grids. A conditional model gets labels ``0, 1, 2, ...`` along each row.
    """

    def __init__(
        self, n: int = 64, nrow: int = 8, seed: int = 0, every_n_epochs: int = 1, max_strip_rows: int = 20
    ) -> None:
        self.n, self.nrow, self.seed = n, nrow, seed
        self.every_n_epochs = every_n_epochs
        self.max_strip_rows = max_strip_rows
        self.z: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.grids: list[tuple[int, torch.Tensor]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: GenerativeModule) -> None:
        self.z = pl_module.sample_latent(self.n, torch.Generator().manual_seed(self.seed)).cpu()
        if pl_module.num_classes:
            self.labels = torch.arange(self.n) % min(self.nrow, pl_module.num_classes)
        self.grids = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.z is None or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        images = _eval_mode_samples(pl_module, self.z, self.labels)
        if not trainer.is_global_zero:
            return
        folder = Path(trainer.default_root_dir) / "samples"
        grid = save_grid(images, folder / f"epoch_{trainer.current_epoch:03d}.png", nrow=self.nrow)
        self.grids.append((trainer.current_epoch, images[: self.nrow]))
        log_image(trainer, "samples/fixed_latent", grid)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.grids or not trainer.is_global_zero:
            return
        folder = Path(trainer.default_root_dir) / "samples"
        step = max(1, -(-len(self.grids) // self.max_strip_rows))
        rows = self.grids[::step]
        if rows[-1] is not self.grids[-1]:
            rows.append(self.grids[-1])
        save_grid(torch.cat([row for _, row in rows]), folder / "progress.png", nrow=self.nrow)
        frames = [Image.open(folder / f"epoch_{epoch:03d}.png").convert("P") for epoch, _ in self.grids]
        frames[0].save(folder / "progress.gif", save_all=True, append_images=frames[1:], duration=400, loop=0)
        log.info("sample grids: %s (progress.png: rows are epochs %s)", folder, [e for e, _ in rows])


class SampleQualityMonitor(Callback):
    """FID, KID, inception-style score and class histogram of ``num_samples`` generated images.

    Mode collapse shows while training: ``val/class_entropy`` (1: every class drawn equally often)
    is logged at each measurement, and one warning line names the classes under ``rare_share`` of
    the samples.

    Real images are the first ``num_samples`` of the validation (or test) set; the extractor is
    the classifier checkpoint ``classifier_ckpt`` (see :mod:`dlforge.quality`). Logs
    ``val/fid``, ``val/kid``, ``val/inception_score``, ``val/class_entropy`` (and ``test/...``); writes
    ``sample_quality.json`` (with the extractor's name and the class counts) and
    ``class_histogram.png``. Without a classifier it does nothing.
    """

    def __init__(
        self,
        classifier_ckpt: str | None = None,
        num_samples: int = 1000,
        every_n_epochs: int = 1,
        seed: int = 1234,
        batch_size: int = 500,
        rare_share: float = 0.02,
    ) -> None:
        self.classifier_ckpt = classifier_ckpt
        self.rare_share = rare_share
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self.batch_size = batch_size
        self.meters: dict[str, SampleQuality] = {}
        self.results: dict[str, Any] = {}

    def _active(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> bool:
        if not self.classifier_ckpt or trainer.sanity_checking:
            return False
        return stage == "test" or (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def _meter(self, stage: str, device: torch.device) -> SampleQuality:
        if stage not in self.meters:
            self.meters[stage] = SampleQuality(
                self.classifier_ckpt, kid_subset_size=min(1000, self.num_samples)
            )
        return self.meters[stage].to(device)

    def _collect_real(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, stage: str
    ) -> None:
        if not self._active(trainer, pl_module, stage):
            return
        meter = self._meter(stage, pl_module.device)
        missing = self.num_samples - meter.real_seen
        if missing > 0:
            meter.update_real(batch[0][:missing].float())

    def _measure(self, trainer: pl.Trainer, pl_module: GenerativeModule, stage: str) -> None:
        if not self._active(trainer, pl_module, stage):
            return
        meter = self._meter(stage, pl_module.device)
        generator = torch.Generator().manual_seed(self.seed)
        done = 0
        with evaluating(pl_module):
            while done < self.num_samples:
                n = min(self.batch_size, self.num_samples - done)
                z = pl_module.sample_latent(n, generator)
                labels = (
                    torch.randint(pl_module.num_classes, (n,), generator=generator)
                    if pl_module.num_classes
                    else None
                )
                meter.update_fake(pl_module.decode_latent(z, None if labels is None else labels.to(z.device)))
                done += n
        result = meter.compute()
        meter.reset_fake()
        for key in ("fid", "kid", "inception_score", "class_entropy"):
            pl_module.log(f"{stage}/{key}", result[key], sync_dist=True)
        rare = [
            k for k, n in enumerate(result["class_counts"]) if n < self.rare_share * result["num_samples"]
        ]
        if rare and trainer.is_global_zero:
            names = (pl_module.hparams.get("data") or {}).get("class_names") or []
            shown = ", ".join(
                f"{names[k] if k < len(names) else k} ({result['class_counts'][k]})" for k in rare
            )
            log.warning(
                "mode collapse? %s of %d samples are classes %s: each under %g%% (epoch %d, %s)",
                sum(result["class_counts"][k] for k in rare), result["num_samples"], shown,
                100 * self.rare_share, trainer.current_epoch, stage,
            )  # fmt: skip
        result.update(epoch=trainer.current_epoch, real_images=meter.real_seen)
        self.results[stage] = result
        if trainer.is_global_zero:
            self._write(Path(trainer.default_root_dir), trainer, stage, result, pl_module)

    def _write(
        self,
        folder: Path,
        trainer: pl.Trainer,
        stage: str,
        result: dict[str, Any],
        pl_module: GenerativeModule,
    ) -> None:
        path = folder / "sample_quality.json"
        history = json.loads(path.read_text()) if path.exists() else {}
        history[stage] = result
        write_json(path, history)
        names = (pl_module.hparams.get("data") or {}).get("class_names") or list(
            range(len(result["class_counts"]))
        )
        fig = Figure(figsize=(7, 3))
        ax = fig.subplots()
        ax.bar([str(n) for n in names], result["class_counts"])
        ax.set_ylabel("generated images")
        ax.set_title(
            f"class of {result['num_samples']} samples by {result['extractor']} ({stage})", fontsize=9
        )
        ax.tick_params(axis="x", labelrotation=45)
        log_image(trainer, f"{stage}/class_histogram", save_figure(fig, folder / "class_histogram.png"))

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._collect_real(trainer, pl_module, batch, "val")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._measure(trainer, pl_module, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect_real(trainer, pl_module, batch, "test")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._measure(trainer, pl_module, "test")


@register_callbacks(GenerativeModule)
def generative_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    """Sample grids (the model's ``samples`` options; null: none) and, with ``quality_classifier``,
    FID/KID of ``quality_samples`` samples."""
    callbacks: list[Callback] = []
    if hparams.get("samples") is not None:
        callbacks.append(SampleGrid(**hparams["samples"]))
    if options.get("quality_classifier"):
        callbacks.append(
            SampleQualityMonitor(
                options["quality_classifier"],
                num_samples=options.get("quality_samples") or 1000,
                every_n_epochs=options.get("quality_every_n_epochs") or 1,
            )
        )
    return callbacks
