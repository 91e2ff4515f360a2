"""Tabular data (data=csv_table) and its models: encoding from the training split, class weights,
ROC-AUC / PR-AUC, and one clear error for bad tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from dlforge.checkpoint import load_model
from dlforge.data.table import encode_rows
from dlforge.training import train

QUICK = ("trainer=cpu", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1")


def write_table(path: Path, n: int = 600, positive: float = 0.5, seed: int = 0) -> Path:
    """Rows of two numeric columns on very different scales, a categorical column, an id, and a label
    (``fraud`` at rate ``positive``); the label shifts ``amount`` and ``score`` and favours one colour."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < positive
    amount = 1000 + 300 * rng.normal(size=n) + 350 * labels
    score = rng.normal(size=n) + 1.2 * labels
    colour = np.where(rng.random(n) < 0.5 + 0.3 * labels, "red", rng.choice(["green", "blue"], size=n))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "amount", "colour", "score", "class"])
        for i in range(n):
            label = "fraud" if labels[i] else "ok"
            writer.writerow([i, f"{amount[i]:.2f}", colour[i], f"{score[i]:.4f}", label])
    return path


def table_overrides(path: Path, *extra: str) -> tuple[str, ...]:
    return (
        "data=csv_table",
        f"data.path={path}",
        "data.label_column=class",
        "data.categorical_columns=[colour]",
        "data.drop_columns=[id]",
        *extra,
    )


def test_the_table_is_encoded_from_its_training_split(make_cfg, tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv")
    datamodule = instantiate(make_cfg(*table_overrides(path)).data)
    datamodule.setup("fit")
    spec = datamodule.spec
    assert spec["columns"] == ["amount", "colour", "score"]
    assert spec["categorical"] == {"colour": ["blue", "green", "red"]}
    assert spec["num_features"] == 5 and spec["class_names"] == ["fraud", "ok"]
    train_x = datamodule.splits["train"].tensors[0]
    assert torch.allclose(train_x[:, 0].mean(), torch.tensor(0.0), atol=1e-4)  # standardized on train
    assert torch.allclose(train_x[:, 0].std(), torch.tensor(1.0), atol=1e-3)
    assert train_x[:, 1:4].sum(dim=1).eq(1).all()  # one-hot
    sizes = [len(datamodule.splits[s]) for s in ("train", "val", "test")]
    assert sizes == [432, 48, 120]  # 20% test, then 10% of the rest
    # the same seed holds out the same rows; another seed others
    again = instantiate(make_cfg(*table_overrides(path)).data)
    again.setup("fit")
    assert torch.equal(again.splits["test"].tensors[0], datamodule.splits["test"].tensors[0])
    other = instantiate(make_cfg(*table_overrides(path), "seed=7").data)
    other.setup("fit")
    assert not torch.equal(other.splits["test"].tensors[0], datamodule.splits["test"].tensors[0])
    # a checkpoint's spec encodes new rows the same way (an unseen category: all zeros)
    rows = [{"amount": "1000", "colour": "purple", "score": "0.5"}]
    encoded = encode_rows(rows, spec)
    assert encoded.shape == (1, 5) and encoded[0, 1:4].eq(0).all()


def test_tabular_mlp_trains_and_reports_roc_and_pr_auc(make_cfg, tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv")
    test_path = write_table(tmp_path / "test.csv", n=200, seed=1)
    cfg = make_cfg(
        "model=tabular_mlp",
        *table_overrides(path, f"data.test_path={test_path}", "data.batch_size=32"),
        *QUICK,
        "trainer.max_epochs=4",
        "optimizer.lr=0.01",
    )
    summary = train(cfg)
    metrics = summary["metrics"]
    with open(Path(cfg.paths.output_dir) / "metrics.csv") as f:
        losses = [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    assert losses[-1] < losses[0]
    assert metrics["test/acc"] > 0.75 and metrics["test/roc_auc"] > 0.8 and metrics["test/pr_auc"] > 0.7
    assert "val/pr_auc" in metrics
    model = load_model(summary["last_checkpoint"])
    assert model.hparams.data["class_weights"] is not None


def minority_recall(run_dir: Path) -> float:
    with open(run_dir / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))
    fraud = rows[1]  # true class 0 (fraud, the minority): its row
    return int(fraud[1]) / sum(int(v) for v in fraud[1:])


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("tabular_mlp", ("trainer.max_epochs=6", "optimizer.lr=0.01", "data.batch_size=64")),
        ("logistic_regression", ()),
    ],
)
def test_class_weights_raise_the_minority_recall(make_cfg, tmp_path: Path, model: str, extra: tuple) -> None:
    path = write_table(tmp_path / "t.csv", n=1500, positive=0.08)
    recalls = {}
    for weights in ("none", "balanced"):
        cfg = make_cfg(
            f"model={model}", *table_overrides(path, f"data.class_weights={weights}"), *QUICK, *extra
        )
        cfg.paths.output_dir = str(tmp_path / weights)
        train(cfg)
        recalls[weights] = minority_recall(tmp_path / weights)
    assert recalls["balanced"] > recalls["none"] + 0.2, recalls


def test_a_baseline_on_a_table_uses_its_class_weights(make_cfg, tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", n=400, positive=0.2)
    cfg = make_cfg(
        "model=random_forest",
        *table_overrides(path),
        *QUICK,
        "model.net.n_estimators=10",
        "model.net.n_jobs=1",
    )
    summary = train(cfg)
    model = load_model(summary["best_checkpoint"])
    weights = model.net.estimator.class_weight
    assert weights[0] > 1 > weights[1]  # the rare class (fraud) weighs more
    assert summary["metrics"]["test/roc_auc"] > 0.7
