"""StackGAN's pictures and its judge: caption grids while training, and at test time how often a drawing
shows what its caption asked for, on captions never seen in training."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback

from dlforge.checkpoint import load_model
from dlforge.data.captioned import TEST_SETS, caption_text, judge, measure_items
from dlforge.models.classifier import ImageClassifier
from dlforge.models.stackgan import StackGAN
from dlforge.quality import SampleQuality
from dlforge.registry import register_callbacks
from dlforge.viz import evaluating, save_grid

log = logging.getLogger(__name__)


def side_by_side(real: torch.Tensor, one: torch.Tensor, two: torch.Tensor) -> torch.Tensor:
    """Rows of (real canvas, stage I up-sampled, stage II), all at the canvas size, in [0, 1]."""
    one = F.interpolate(one, size=two.shape[2:], mode="nearest")
    return torch.stack([real, one, two], dim=1).flatten(0, 1)


def as_item_images(canvases: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Canvases brought to the quality classifier's input (grey, 28x28) for the FID features."""
    grey = canvases.mean(dim=1, keepdim=True) if shape[0] == 1 and canvases.shape[1] != 1 else canvases
    return F.interpolate(grey, size=shape[1:], mode="area").clamp(0, 1)


def item_crops(canvases: torch.Tensor, properties: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    """Each asked item's square as the judge's classifier reads it (grey, 28x28: the crops of
    :func:`dlforge.data.captioned.measure_items`), (M, 1, 28, 28) for the M items asked for."""
    crops = measure_items(canvases, properties, spec)["crops"]
    return crops[(properties != -1).any(dim=-1).to(crops.device)].clamp(0, 1)


class CaptionGrid(Callback):
    """Each ``every_n_epochs``: the first ``n`` validation captions as rows of real canvas, stage I and
    stage II (``samples/epoch_NNN.png``, the captions in ``samples/captions.txt``)."""

    def __init__(self, n: int = 8, seed: int = 0, every_n_epochs: int = 1) -> None:
        self.n, self.seed, self.every_n_epochs = n, seed, every_n_epochs
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_validation_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.batch is None and batch_idx == 0:
            self.batch = (batch[0][: self.n].cpu(), batch[1][: self.n].cpu())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: StackGAN) -> None:
        if self.batch is None or trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        real, tokens = self.batch
        with evaluating(pl_module), torch.no_grad():
            generator = torch.Generator().manual_seed(self.seed)
            one, two = pl_module.draw(tokens.to(pl_module.device), generator=generator)
        folder = Path(trainer.default_root_dir) / "samples"
        save_grid(
            side_by_side(real, one.cpu(), two.cpu()),
            folder / f"epoch_{trainer.current_epoch:03d}.png",
            nrow=3,
        )
        captions = caption_text(tokens, pl_module.hparams.data)
        (folder / "captions.txt").write_text("\n".join(captions) + "\n")


class CaptionJudge(Callback):
    """At test time, for each test set (held-out phrasings, held-out combinations): draw every test
    caption once and score the stage-II drawing with :func:`dlforge.data.captioned.judge` (the
    ``quality_classifier`` reads each item's region; position, size and colour come from the ink),
    logging ``test/caption_{class,position,size,colour}_acc_<set>``, and the stage-I drawing
    (up-sampled) as ``test/caption_{...}_acc_stage_one_<set>``; and FID of stage I (up-sampled)
    and stage II against the real canvases of the same captions, in the classifier's features
    (``test/fid_stage_one_<set>``, ``test/fid_stage_two_<set>``): of whole canvases brought to the
    classifier's 28x28, and of each item's square at 28x28 (:func:`item_crops`,
    ``test/item_fid_stage_{one,two}_<set>``), where a large item keeps the canvas's resolution."""

    def __init__(self, classifier_ckpt: str, seed: int = 0) -> None:
        self.classifier_ckpt, self.seed = classifier_ckpt, seed

    def on_test_start(self, trainer: pl.Trainer, pl_module: StackGAN) -> None:
        self.classifier = load_model(
            self.classifier_ckpt, ImageClassifier, pl_module.device, "an image classifier"
        )
        self.classifier.eval().requires_grad_(False)
        self.correct: dict[tuple[str, str], list[torch.Tensor]] = {}
        self.quality = {
            (scale, stage, name): SampleQuality(self.classifier_ckpt).to(pl_module.device)
            for scale in ("canvas", "item")
            for stage in ("one", "two")
            for name in TEST_SETS
        }
        self.generator = torch.Generator().manual_seed(self.seed)

    @torch.no_grad()
    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: StackGAN,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        images, tokens, properties = batch
        name = TEST_SETS[dataloader_idx]
        one, two = pl_module.draw(tokens, generator=self.generator)
        one = F.interpolate(one, size=images.shape[2:], mode="nearest")
        spec = pl_module.hparams.data
        shape = self.quality[("canvas", "two", name)].image_shape
        real = {"canvas": as_item_images(images, shape), "item": item_crops(images, properties, spec)}
        for stage, drawn in (("one", one), ("two", two)):
            verdict = judge(drawn, properties, spec, self.classifier)
            for prop, ok in verdict.items():
                key = (prop, name if stage == "two" else f"stage_one_{name}")
                self.correct.setdefault(key, []).append(ok.flatten().cpu())
            fake = {"canvas": as_item_images(drawn, shape), "item": item_crops(drawn, properties, spec)}
            for scale in ("canvas", "item"):
                self.quality[(scale, stage, name)].update_real(real[scale])
                self.quality[(scale, stage, name)].update_fake(fake[scale])

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: StackGAN) -> None:
        for (prop, name), parts in sorted(self.correct.items()):
            pl_module.log(
                f"test/caption_{prop}_acc_{name}", torch.cat(parts).float().mean(), add_dataloader_idx=False
            )
        for (scale, stage, name), quality in self.quality.items():
            if quality.real_seen >= 2:
                fid = quality.compute()["fid"]
                prefix = "" if scale == "canvas" else "item_"
                pl_module.log(f"test/{prefix}fid_stage_{stage}_{name}", fid, add_dataloader_idx=False)


@register_callbacks(StackGAN)
def stackgan_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    """Caption grids (the model's ``samples``; null: none) and, with ``quality_classifier``, the judge."""
    callbacks: list[Callback] = []
    if hparams.get("samples") is not None:
        callbacks.append(CaptionGrid(**hparams["samples"]))
    if options.get("quality_classifier"):
        callbacks.append(CaptionJudge(options["quality_classifier"]))
    return callbacks
