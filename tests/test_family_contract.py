"""The worked example of docs/architecture.md: a new model family is a network, a LightningModule, its
callbacks and a config, and nothing else; train, checkpoints and evaluate take it as it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from pytorch_lightning.callbacks import Callback
from torch import nn

from dlforge import CONF_DIR
from dlforge.build import build_trainer
from dlforge.checkpoint import load_model
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.registry import register_callbacks, register_model, register_net
from dlforge.train import train
from tests.conftest import FAST


# --- nets/<family>.py: a plain network, registered by name ----------------------------------------
@register_net("pixel_logreg")
class PixelLogReg(nn.Module):
    """Multinomial logistic regression on raw pixels."""

    def __init__(self, in_channels: int, height: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels * height * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


# --- models/<family>.py: the LightningModule, registered under its kind ----------------------------
@register_model("pixel_logreg")
class PixelLogRegModel(DlforgeModule):
    def __init__(
        self, net: dict[str, Any], data: dict[str, Any], optimizer: dict[str, Any], **_: Any
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        shape = {k: data[k] for k in ("height", "width", "num_classes")}
        self.net = build_net(in_channels=data["channels"], **shape, **net)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self.net(batch[0]), batch[1])
        self.log_train_step({"loss": loss}, batch_size=len(batch[1]))
        return loss

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        accuracy = (self.net(batch[0]).argmax(1) == batch[1]).float().mean()
        self.log("test/acc", accuracy, batch_size=len(batch[1]))


# --- callbacks/<family>.py: its pictures and side outputs, chosen for models of its class ---------
class WeightPicture(Callback):
    def on_test_end(self, trainer: pl.Trainer, pl_module: PixelLogRegModel) -> None:
        weights = pl_module.net.linear.weight.detach().view(-1, 1, 28, 28)
        (Path(trainer.default_root_dir) / "weights.json").write_text(json.dumps(list(weights.shape)))


@register_callbacks(PixelLogRegModel)
def pixel_logreg_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    return [WeightPicture()]


# --- conf/model/<name>.yaml ------------------------------------------------------------------------
CONFIG = """\
kind: pixel_logreg
net:
  name: pixel_logreg
optimizer: ${optimizer}
scheduler: ${scheduler}
monitor: null
monitor_mode: min
"""


def test_a_family_in_four_pieces_trains_checkpoints_and_evaluates(data_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "conf"
    (extra / "model").mkdir(parents=True)
    (extra / "model" / "pixel_logreg.yaml").write_text(CONFIG)  # a config folder of the user's own
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"hydra.searchpath=[file://{extra}]",
                "model=pixel_logreg",
                f"paths.data_dir={data_dir}",
                *FAST,
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    summary = train(cfg)
    assert summary["kind"] == "pixel_logreg" and summary["metrics"]["test/acc"] > 0.3  # well above chance
    assert json.loads((tmp_path / "run" / "weights.json").read_text()) == [10, 1, 28, 28]
    model = load_model(summary["last_checkpoint"], PixelLogRegModel)  # the one way back from a checkpoint
    raw = torch.load(summary["last_checkpoint"], weights_only=True)
    assert torch.equal(model.net.linear.weight, raw["state_dict"]["net.linear.weight"])
    trainer = build_trainer(cfg, type(model), dict(model.hparams))  # evaluate's trainer: same callbacks
    assert any(isinstance(c, WeightPicture) for c in trainer.callbacks)
