"""Callbacks for WaveNet: a clip of every digit each few epochs, and how an audio classifier hears them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dlforge.models.wavenet import WaveNetModel
from dlforge.outputs import write_json
from dlforge.quality import DigitRecognition
from dlforge.registry import register_callbacks
from dlforge.sound import joined, sound_figure, write_wav
from dlforge.viz import evaluating, log_image, save_figure

log = logging.getLogger(__name__)


class AudioSamples(Callback):
    """Every ``every_n_epochs``: one clip of each digit, ``seconds`` long, from the same seed, as
    ``samples/epoch_NNN.wav`` (the digits in a row) and ``samples/epoch_NNN.png`` (waveforms and
    spectrograms), also sent to the loggers."""

    def __init__(
        self, seconds: float = 0.6, temperature: float = 1.0, seed: int = 0, every_n_epochs: int = 1
    ) -> None:
        self.seconds, self.temperature, self.seed = seconds, temperature, seed
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: WaveNetModel) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        labels = torch.arange(pl_module.num_classes)
        with evaluating(pl_module):
            waves = pl_module.generate(labels, self.seconds, self.seed, self.temperature).cpu()
        stem = Path(trainer.default_root_dir) / "samples" / f"epoch_{trainer.current_epoch:03d}"
        write_wav(stem.with_suffix(".wav"), joined(waves, pl_module.sample_rate), pl_module.sample_rate)
        names = pl_module.hparams.data["class_names"]
        fig = sound_figure(
            list(waves), pl_module.sample_rate, [f"digit {names[k]}" for k in labels], columns=5
        )
        log_image(trainer, "samples/digits", save_figure(fig, stem.with_suffix(".png")))


class DigitQualityMonitor(Callback):
    """Generate ``num_samples`` clips (digits in turn) and let an audio classifier judge them, as the
    GANs' FID: logs ``quality/digit_acc`` (share recognized as the digit asked for) and
    ``quality/confidence`` at every ``every_n_epochs``-th validation and at test; writes
    ``sample_quality.json`` (with the class histogram and the classifier's name)."""

    def __init__(
        self,
        classifier_ckpt: str,
        num_samples: int = 100,
        every_n_epochs: int = 1,
        seconds: float = 0.6,
        temperature: float = 1.0,
        seed: int = 1234,
        batch_size: int = 250,
    ) -> None:
        self.classifier_ckpt, self.num_samples, self.every_n_epochs = (
            classifier_ckpt,
            num_samples,
            every_n_epochs,
        )
        self.seconds, self.temperature, self.seed, self.batch_size = seconds, temperature, seed, batch_size
        self.judge: DigitRecognition | None = None
        self.results: dict[str, Any] = {}

    def measure(self, trainer: pl.Trainer, pl_module: WaveNetModel, stage: str) -> None:
        if self.judge is None:
            self.judge = DigitRecognition(self.classifier_ckpt, pl_module.sample_rate)
        self.judge.to(pl_module.device)
        labels = torch.arange(self.num_samples) % pl_module.num_classes
        with evaluating(pl_module):
            waves = torch.cat(
                [
                    pl_module.generate(part, self.seconds, self.seed + i, self.temperature).cpu()
                    for i, part in enumerate(labels.split(self.batch_size))
                ]
            )
        result = self.judge.judge(waves, labels)
        pl_module.log("quality/digit_acc", result["digit_acc"], sync_dist=True)
        pl_module.log("quality/confidence", result["confidence"], sync_dist=True)
        result.update(
            stage=stage, epoch=trainer.current_epoch, seconds=self.seconds, temperature=self.temperature
        )
        self.results[stage] = result
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / "sample_quality.json"
            history = json.loads(path.read_text()) if path.exists() else {}
            write_json(path, {**history, stage: result})
            log.info(
                "%s: %d generated digits, %.3f recognized (%s)",
                stage,
                self.num_samples,
                result["digit_acc"],
                self.judge.extractor,
            )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: WaveNetModel) -> None:
        if not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.measure(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: WaveNetModel) -> None:
        self.measure(trainer, pl_module, "test")


@register_callbacks(WaveNetModel)
def wavenet_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    """Per-epoch digit clips (the model's ``samples``; null: none) and, with ``quality_classifier``,
    how that audio classifier hears ``quality_samples`` generated digits."""
    samples = hparams.get("samples")
    callbacks: list[Callback] = [AudioSamples(**samples)] if samples is not None else []
    if options.get("quality_classifier"):
        sound = {key: samples[key] for key in ("seconds", "temperature") if key in (samples or {})}
        callbacks.append(
            DigitQualityMonitor(
                options["quality_classifier"],
                num_samples=options.get("quality_samples") or 100,
                every_n_epochs=options.get("quality_every_n_epochs") or 1,
                **sound,
            )
        )
    return callbacks
