"""Text classifiers: every model trains and its loss falls; embeddings modes; checkpoints; evaluate."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from dlforge.data.text_encoder import PAD_ID
from dlforge.models import TextClassifier
from dlforge.nets.text import TextRNN
from dlforge.training import build_run, train
from tests.text_fixtures import text_overrides, write_text_data


@pytest.fixture(scope="session")
def text_root(data_dir: Path) -> Path:
    return write_text_data(data_dir)


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        return [float(row["train/loss_step"]) for row in csv.DictReader(f) if row.get("train/loss_step")]


def window_mean(values: list[float], first: bool, n: int = 3) -> float:
    part = values[:n] if first else values[-n:]
    return sum(part) / len(part)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("textcnn_seed000", ()),
        ("textcnn_kim", ()),
        ("textcnn_kim", ("model.embedding=static",)),
        ("textcnn_kim", ("model.embedding=multichannel",)),
        ("text_mlp", ("model.net.hidden=[64,64,64]",)),
        ("lstm", ("model.net.bidirectional=true", "model.net.hidden_size=32")),
        ("gru", ("model.net.readout=mean", "model.net.hidden_size=32", "data.padding=wrap")),
        ("rnn", ("model.net.hidden_size=32",)),
    ],
)
def test_every_text_model_trains_and_its_loss_falls(
    make_cfg, text_root: Path, model: str, extra: tuple
) -> None:
    cfg = make_cfg(
        f"model={model}",
        *text_overrides(text_root),
        "optimizer.lr=0.003",
        "callbacks=none",
        "+trainer.enable_checkpointing=false",
        *extra,
    )
    datamodule, module, trainer = build_run(cfg)
    initial = datamodule.embeddings.clone()
    trainer.fit(module, datamodule=datamodule)
    values = losses(Path(cfg.paths.output_dir))
    assert len(values) == 12
    assert window_mean(values, first=False) < window_mean(values, first=True)
    tokens, labels = datamodule.splits["val"].tensors  # the logged accuracy is the model's on the val split
    with torch.no_grad():
        accuracy = (module.eval()(tokens).argmax(1) == labels).float().mean()
    assert float(trainer.callback_metrics["val/acc"]) == pytest.approx(float(accuracy))
    # static embeddings stay as GloVe gave them; fine-tuned ones learn, except the PAD row
    mode = module.hparams.embedding
    assert torch.equal(module.embedding.weight, initial) == (mode == "static")
    assert torch.equal(module.embedding.weight[PAD_ID], initial[PAD_ID])
    if mode == "multichannel":
        assert torch.equal(module.static_embedding.weight, initial)


def test_training_run_writes_the_classifier_outputs(make_cfg, text_root: Path) -> None:
    cfg = make_cfg("model=textcnn_kim", *text_overrides(text_root), "trainer.max_epochs=1")
    summary = train(cfg)
    metrics = summary["metrics"]
    assert set(metrics) >= {
        "train/acc",
        "train/loss_epoch",
        "val/acc",
        "val/acc_best",
        "test/acc",
        "test/loss",
    }
    assert metrics["val/acc_best"] >= metrics["val/acc"] and metrics["train/loss_epoch"] > 0
    out = Path(cfg.paths.output_dir)
    rows = (out / "confusion_matrix.csv").read_text().splitlines()
    assert rows[0] == "true \\ predicted,negative,positive"
    counts = [[int(v) for v in row.split(",")[1:]] for row in rows[1:]]
    assert sum(map(sum, counts)) == 24  # every test text
    assert metrics["test/acc"] == pytest.approx((counts[0][0] + counts[1][1]) / 24)
    assert (out / "confusion_matrix.png").is_file() and Path(summary["best_checkpoint"]).is_file()
    assert "<unk>" not in (out / "hparams.yaml").read_text()  # the vocabulary is not sent to loggers


def test_kim_max_norm_bounds_the_output_weights_after_each_step() -> None:
    spec = {"vocab": ["<pad>", "<unk>", "a"], "embedding_dim": 4, "max_len": 6, "num_classes": 2}
    model = TextClassifier({"name": "kim_cnn", "max_norm": 0.5}, spec)
    with torch.no_grad():
        model.net.head.weight.mul_(100)
    assert model.net.head.weight.norm(dim=1).max() > 0.5
    model.on_train_batch_end(None, None, 0)
    assert torch.allclose(model.net.head.weight.norm(dim=1), torch.full((2,), 0.5))


def test_rnn_padding_does_not_leak_into_the_state() -> None:
    torch.manual_seed(0)
    for readout in ("last", "mean", "max"):
        net = TextRNN(embedding_dim=4, max_len=9, num_classes=2, cell="lstm", hidden_size=5, readout=readout)
        x = torch.randn(1, 1, 9, 4)
        short = net(x[:, :, :4], torch.tensor([4]))
        padded = torch.cat([x[:, :, :4], torch.randn(1, 1, 5, 4)], dim=2)  # garbage after the text
        assert torch.allclose(net(padded, torch.tensor([4])), short, atol=1e-6), readout


def test_text_model_on_image_data_is_one_clear_error(make_cfg) -> None:
    from dlforge.errors import DlforgeError

    with pytest.raises(DlforgeError, match="text data set"):
        build_run(make_cfg("model=textcnn_kim", "data.val_size=32"))
