"""The worked example of docs/architecture.md: a new model family is a network, a LightningModule, its
callbacks, its serving and a config, and nothing else; train, checkpoints, evaluate, predict, export and
the app take it as it is, without an edit to any tool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from PIL import Image
from pytorch_lightning.callbacks import Callback
from torch import nn

from dlforge import CONF_DIR
from dlforge.build import build_trainer
from dlforge.checkpoint import load_model
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.registry import (
    SERVING,
    TASKS,
    register_callbacks,
    register_model,
    register_net,
    register_serving,
)
from dlforge.serving.served import ServedModel, card_header
from dlforge.training import train
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
    def __init__(self, net: dict[str, Any], data: dict[str, Any], **training: Any) -> None:
        super().__init__(**training)  # optimizer, scheduler, monitor, monitor_mode: the base's
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
defaults:
  - base/training@_here_
  - _self_
kind: pixel_logreg
net:
  name: pixel_logreg
monitor: null
"""


def test_a_family_in_four_pieces_trains_checkpoints_and_evaluates(data_dir: Path, tmp_path: Path) -> None:
    cfg, summary = train_family(data_dir, tmp_path)
    assert summary["kind"] == "pixel_logreg" and summary["metrics"]["test/acc"] > 0.3  # well above chance
    assert json.loads((tmp_path / "run" / "weights.json").read_text()) == [10, 1, 28, 28]
    model = load_model(summary["last_checkpoint"], PixelLogRegModel)  # the one way back from a checkpoint
    raw = torch.load(summary["last_checkpoint"], weights_only=True)
    assert torch.equal(model.net.linear.weight, raw["state_dict"]["net.linear.weight"])
    trainer = build_trainer(cfg, type(model), dict(model.hparams))  # evaluate's trainer: same callbacks
    assert any(isinstance(c, WeightPicture) for c in trainer.callbacks)


# --- serving/<family>.py: its card and graph, predict, and an app panel ----------------------------
class PixelScores(ServedModel):
    """Scores every class of a 28x28 grey image; the app's ``pixels`` panel shows the best."""

    task = "pixel_scores"
    what = "a pixel logistic regression"
    panels = ("pixels",)

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        names = [str(k) for k in range(model.hparams.data["num_classes"])]
        inputs = [{"name": "images", "dtype": "float32", "shape": ["batch", 1, 28, 28], "range": [0, 1]}]
        outputs = [{"name": "probabilities", "dtype": "float32", "shape": ["batch", len(names)]}]
        return {**card_header(model, cls.task), "class_names": names, "inputs": inputs, "outputs": outputs}

    @classmethod
    def graph(cls, model: Any) -> nn.Module:
        return nn.Sequential(model.net, nn.Softmax(dim=-1))

    @classmethod
    def example_inputs(cls, model: Any, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)),)

    def scores(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(images.numpy())[0])

    def predict(self, cfg: Any) -> dict[str, Any]:
        pixels = np.asarray(Image.open(str(cfg.image)).convert("L"), dtype=np.float32) / 255
        best = int(self.scores(torch.from_numpy(pixels)[None, None]).argmax())
        print(f"class {self.class_names[best]}", flush=True)
        return {"label": self.class_names[best]}

    @classmethod
    def add_routes(cls, app: Any, context: Any) -> None:
        @app.post("/api/pixels")
        def pixels() -> dict[str, Any]:
            model = context.model("pixels")
            return {"scores": model.scores(torch.zeros(1, 1, 28, 28))[0].tolist()}


@pytest.fixture()
def served_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ServedModel]]:
    """The family's serving registered for this test only (other tests' apps keep their panels)."""
    files = tmp_path / "panels"
    files.mkdir()
    (files / "pixels.html").write_text('<section class="panel" id="pixels">pixel scores</section>\n')
    (files / "pixels.js").write_text('panel("pixels", () => {});\n')
    monkeypatch.setattr(PixelScores, "panel_files", files)
    register_serving(PixelLogRegModel)(PixelScores)
    yield PixelScores
    SERVING.pop(PixelLogRegModel)
    TASKS.pop(PixelScores.task)


def test_the_family_serves_itself_through_every_tool_unedited(
    data_dir: Path, tmp_path: Path, served_family: type[ServedModel], run_main: Any
) -> None:
    from fastapi.testclient import TestClient

    from dlforge.app import create_app, load_panels
    from dlforge.inference import load

    ckpt = train_family(data_dir, tmp_path)[1]["last_checkpoint"]
    checkpoint = load(ckpt)
    assert isinstance(checkpoint, PixelScores) and checkpoint.card["task"] == "pixel_scores"

    # predict: the family's own answer, as a user types the command
    image = tmp_path / "blank.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(image)
    expected = int(checkpoint.scores(torch.zeros(1, 1, 28, 28)).argmax())
    result = run_main("-m", "dlforge.predict", f"ckpt_path={ckpt}", f"image={image}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == f"class {expected}"

    # export: its graph, checked against the checkpoint, and its card; the export serves the same
    exported = tmp_path / "pixels.onnx"
    result = run_main(
        "-m", "dlforge.export", f"ckpt_path={ckpt}", f"output={exported}", "check.require_data=false"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    served = load(exported)
    assert isinstance(served, PixelScores) and served.backend == "onnx"
    probe = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(served.scores(probe), checkpoint.scores(probe), atol=1e-5, rtol=1e-4)

    # the app: its panel on the page, its script, its route
    client = TestClient(create_app(load_panels({"pixels": str(exported)})))
    assert '<section class="panel" id="pixels">' in client.get("/").text
    assert '<script src="/panels/pixels.js" defer>' in client.get("/").text
    assert client.get("/panels/pixels.js").text.startswith('panel("pixels"')
    panel = client.get("/api/panels").json()["panels"]["pixels"]
    assert panel["kind"] == "pixel_logreg" and panel["backend"] == "onnx"
    scores = client.post("/api/pixels").json()["scores"]
    assert scores == pytest.approx(checkpoint.scores(torch.zeros(1, 1, 28, 28))[0].tolist(), abs=1e-5)


def train_family(data_dir: Path, tmp_path: Path) -> tuple[DictConfig, dict[str, Any]]:
    """Train the family from a config folder of the user's own (``model/pixel_logreg.yaml``): its
    config and the run's summary."""
    extra = tmp_path / "conf"
    (extra / "model").mkdir(parents=True, exist_ok=True)
    (extra / "model" / "pixel_logreg.yaml").write_text(CONFIG)
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
    return cfg, train(cfg)
