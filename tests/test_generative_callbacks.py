"""The generative-model callbacks on a toy generator: grids, progress strip, sample quality."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from dlforge.callbacks.generative import SampleGrid, SampleQualityMonitor
from dlforge.data import MNISTDataModule
from dlforge.models.base import GenerativeModule
from tests.test_quality import classifier_run  # noqa: F401  (module fixture)


class ToyGenerator(GenerativeModule):
    kind = "toy_generator"
    latent_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.decoder = nn.Sequential(nn.Linear(8, 28 * 28), nn.Sigmoid())

    def decode_latent(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, 28, 28)

    def training_step(self, batch, batch_idx):
        images, _ = batch
        return nn.functional.mse_loss(self.decode_latent(self.sample_latent(len(images))), images)

    def validation_step(self, batch, batch_idx):
        pass

    def test_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_grids_each_epoch_then_progress_strip_and_gif(data_dir: Path, tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=str(data_dir), val_size=32, batch_size=16)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[SampleGrid(n=16, nrow=4)],
    )
    trainer.fit(ToyGenerator(), datamodule=dm)
    samples = tmp_path / "samples"
    assert sorted(p.name for p in samples.glob("epoch_*.png")) == [
        "epoch_000.png",
        "epoch_001.png",
        "epoch_002.png",
    ]
    from PIL import Image

    strip = Image.open(samples / "progress.png")
    epoch = Image.open(samples / "epoch_000.png")
    assert strip.size[0] == epoch.size[0] and strip.size[1] < epoch.size[1]  # 3 rows of 4 vs 4 rows of 4
    assert Image.open(samples / "progress.gif").n_frames == 3


def test_quality_monitor_logs_fid_with_its_extractor(data_dir: Path, tmp_path: Path, classifier_run) -> None:  # noqa: F811
    ckpt, _ = classifier_run
    dm = MNISTDataModule(data_dir=str(data_dir), val_size=64, batch_size=16, eval_batch_size=32)
    monitor = SampleQualityMonitor(ckpt, num_samples=48, batch_size=20)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[monitor],
    )
    model = ToyGenerator()
    trainer.fit(model, datamodule=dm)
    assert {"val/fid", "val/kid", "val/inception_score"} <= set(trainer.callback_metrics)
    trainer.test(model, datamodule=dm)
    assert trainer.callback_metrics["test/fid"] > 0
    report = json.loads((tmp_path / "sample_quality.json").read_text())
    assert report["val"]["num_samples"] == 48 and report["val"]["real_images"] == 48
    assert report["test"]["extractor"].startswith("last.ckpt (convnet on mnist")
    assert sum(report["test"]["class_counts"]) == 48
    assert (tmp_path / "class_histogram.png").is_file()


def test_callbacks_ignore_classifiers(make_cfg) -> None:
    from dlforge.training import train
    from tests.conftest import FAST

    cfg = make_cfg("model=lenet", *FAST, "trainer.max_epochs=1", "quality_classifier=/nonexistent.ckpt")
    train(cfg)
    assert not (Path(cfg.paths.output_dir) / "samples").exists()
