"""Text classifiers: every model trains and its loss falls; embeddings modes; checkpoints; evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from dlforge.checkpoint import load_model
from dlforge.data.text import PAD_ID
from dlforge.models import TextClassifier
from dlforge.nets.text import TextRNN
from dlforge.train import build_run, train
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
        ("lstm", ("model.net.bidirectional=true",)),
        ("gru", ("model.net.readout=mean", "data.padding=wrap")),
    ],
)
def test_every_text_model_trains_and_its_loss_falls(
    make_cfg, text_root: Path, model: str, extra: tuple
) -> None:
    cfg = make_cfg(f"model={model}", *text_overrides(text_root), "optimizer.lr=0.003", *extra)
    summary = train(cfg)
    values = losses(Path(cfg.paths.output_dir))
    assert len(values) == 12
    assert window_mean(values, first=False) < window_mean(values, first=True)
    assert 0.0 <= summary["metrics"]["test/acc"] <= 1.0
    for key in ("train/acc", "val/acc", "val/acc_best", "test/loss"):
        assert key in summary["metrics"]
    assert (Path(cfg.paths.output_dir) / "confusion_matrix.png").is_file()


def test_static_embeddings_stay_fixed_and_non_static_ones_learn(make_cfg, text_root: Path) -> None:
    def trained(mode: str) -> tuple[TextClassifier, torch.Tensor]:
        cfg = make_cfg("model=textcnn_kim", *text_overrides(text_root), f"model.embedding={mode}")
        datamodule, model, trainer = build_run(cfg)
        before = datamodule.embeddings.clone()
        trainer.fit(model, datamodule=datamodule)
        return model, before

    static, before = trained("static")
    assert torch.equal(static.embedding.weight, before)
    tuned, before = trained("non_static")
    assert not torch.equal(tuned.embedding.weight, before)
    assert torch.equal(tuned.embedding.weight[PAD_ID], before[PAD_ID])  # PAD never learns
    multi, before = trained("multichannel")
    assert torch.equal(multi.static_embedding.weight, before)
    assert not torch.equal(multi.embedding.weight, before)


def test_kim_max_norm_bounds_the_output_weights(make_cfg, text_root: Path) -> None:
    cfg = make_cfg("model=textcnn_kim", *text_overrides(text_root), "model.net.max_norm=0.05")
    datamodule, model, trainer = build_run(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert model.net.head.weight.norm(dim=1).max() <= 0.05 + 1e-6


def test_rnn_padding_does_not_leak_into_the_state() -> None:
    torch.manual_seed(0)
    for readout in ("last", "mean", "max"):
        net = TextRNN(embedding_dim=4, max_len=9, num_classes=2, cell="lstm", hidden_size=5, readout=readout)
        x = torch.randn(1, 1, 9, 4)
        short = net(x[:, :, :4], torch.tensor([4]))
        padded = torch.cat([x[:, :, :4], torch.randn(1, 1, 5, 4)], dim=2)  # garbage after the text
        assert torch.allclose(net(padded, torch.tensor([4])), short, atol=1e-6), readout


def test_checkpoint_is_self_contained_and_loads_weights_only(make_cfg, text_root: Path) -> None:
    cfg = make_cfg("model=gru", *text_overrides(text_root), "trainer.max_epochs=1")
    summary = train(cfg)
    raw = torch.load(summary["last_checkpoint"], weights_only=True)
    assert raw["dlforge"]["model"] == "text_classifier"
    spec = raw["hyper_parameters"]["data"]
    assert spec["vocab"][:2] == ["<pad>", "<unk>"] and spec["max_len"] == 16
    assert "embeddings" not in raw["hyper_parameters"]
    model = load_model(summary["last_checkpoint"])
    assert torch.equal(model.embedding.weight, raw["state_dict"]["embedding.weight"])
    datamodule, fresh, _ = build_run(cfg)
    fresh.load_state_dict(raw["state_dict"])
    fresh.eval()
    tokens, _ = next(iter(datamodule.test_dataloader()))
    assert torch.allclose(model(tokens), fresh(tokens))
    texts = ["a witty , gorgeous film", "dull and boring"]
    assert torch.allclose(model.predict_texts(texts), fresh(model.encoder.encode(texts)).softmax(-1))


def test_text_model_on_image_data_is_one_clear_error(make_cfg) -> None:
    from dlforge.errors import DlforgeError

    with pytest.raises(DlforgeError, match="text data set"):
        build_run(make_cfg("model=textcnn_kim", "data.val_size=32"))


def test_cli_evaluate_encodes_with_the_checkpoints_vocabulary(run_cli, make_cfg, text_root: Path) -> None:
    cfg = make_cfg("model=textcnn_kim", *text_overrides(text_root), "trainer.max_epochs=1")
    summary = train(cfg)
    result = run_cli(
        "-m", "dlforge.evaluate", f"ckpt_path={summary['best_checkpoint']}", "data=mr", "data.test_size=0.2",
        "data.glove.path=/nonexistent/glove.txt", "trainer=cpu", "hydra.run.dir=outputs/eval",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads(
        (Path(cfg.paths.output_dir).parent / "outputs" / "eval" / "metrics.json").read_text()
    )
    assert evaluated["model"] == "text_classifier"
    assert evaluated["metrics"]["test/acc"] == pytest.approx(summary["metrics"]["test/acc"], abs=1e-6)
