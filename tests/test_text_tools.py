"""Text checkpoints and tools as typed: evaluate, predict (a text, a file, stdin), k-fold CV."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from dlforge import CONF_DIR
from dlforge.checkpoint import load_model
from dlforge.crossval import crossval
from dlforge.data.text_encoder import TextEncoder
from dlforge.errors import DlforgeError
from dlforge.predict import main as predict_main
from dlforge.predict import predict
from dlforge.training import build_run, train
from tests.conftest import FAST
from tests.text_fixtures import text_overrides, write_text_data


@pytest.fixture(scope="session")
def text_root(data_dir: Path) -> Path:
    return write_text_data(data_dir)


def cli_env(text_root: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DATA_DIR": str(text_root), "DLFORGE_CACHE": str(tmp_path / "cache")}


def predict_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="predict", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = "unused"
    return cfg


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DictConfig, dict[str, Any]]:
    """One small Kim CNN trained on the tiny MR: its config and run summary."""
    root = write_text_data(data_dir)
    out = tmp_path_factory.mktemp("text_run")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"paths.data_dir={root}", f"paths.cache_dir={out / 'cache'}", "model=textcnn_kim",
                *text_overrides(root), "optimizer.lr=0.003",
            ],
        )  # fmt: skip
    with open_dict(cfg):
        cfg.paths.output_dir = str(out / "run")
    return cfg, train(cfg)


def test_checkpoint_is_self_contained_and_loads_weights_only(trained) -> None:
    cfg, summary = trained
    raw = torch.load(summary["best_checkpoint"], weights_only=True)
    assert raw["dlforge"]["model"] == "text_classifier"
    spec = raw["hyper_parameters"]["data"]
    assert spec["vocab"][:2] == ["<pad>", "<unk>"] and spec["max_len"] == 16
    assert "embeddings" not in raw["hyper_parameters"]
    model = load_model(summary["best_checkpoint"])
    assert torch.equal(model.embedding.weight, raw["state_dict"]["embedding.weight"])
    datamodule, fresh, _ = build_run(cfg)
    fresh.load_state_dict(raw["state_dict"])
    fresh.eval()
    tokens, _ = next(iter(datamodule.test_dataloader()))
    assert torch.allclose(model(tokens), fresh(tokens))
    texts = ["a witty , gorgeous film", "dull and boring"]
    encoded = TextEncoder.from_spec(model.hparams.data).encode(texts)  # the checkpoint alone encodes text
    assert encoded.shape == (2, 16) and (encoded[:, 0] > 1).all()  # known words: neither PAD nor OOV
    assert torch.allclose(model(encoded), fresh(datamodule.encoder.encode(texts)))


def test_cli_evaluate_encodes_with_the_checkpoints_vocabulary(trained, run_main, tmp_path: Path) -> None:
    _, summary = trained
    result = run_main(
        "-m",
        "dlforge.evaluate",
        f"ckpt_path={summary['best_checkpoint']}",
        "data=mr",
        "data.test_size=0.2",
        "data.glove.path=/nonexistent/glove.txt",
        "trainer=cpu",
        "hydra.run.dir=outputs/eval",
    )  # fmt: skip  (no GloVe needed: the embeddings are in the checkpoint)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "outputs" / "eval" / "metrics.json").read_text())
    assert evaluated["kind"] == "text_classifier" and evaluated["tool"] == "evaluate"
    assert evaluated["metrics"]["test/acc"] == pytest.approx(summary["metrics"]["test/acc"], abs=1e-6)


def test_predict_cli_text_file_and_stdin(
    trained, text_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    ckpt = trained[1]["best_checkpoint"]
    # the entry point as typed (in this process: a second interpreter start-up costs ~10 s)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["predict", f"ckpt_path={ckpt}", "text=a gorgeous, witty film"])
    predict_main()
    label, probability = capsys.readouterr().out.strip().splitlines()[-1].split("\t")
    assert label == "positive" and 0.5 <= float(probability) <= 1.0

    reviews = ["a gorgeous , witty and moving film .", "dull , boring and tedious .", "great fun !"]
    stdin = subprocess.run(
        [sys.executable, "-m", "dlforge.predict", f"ckpt_path={ckpt}", "input=-", "output=-"],
        input="\n".join(reviews) + "\n\n",
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env=cli_env(text_root, tmp_path),
    )  # fmt: skip
    assert stdin.returncode == 0, stdin.stderr[-3000:]
    rows = list(csv.DictReader(stdin.stdout.splitlines()))
    assert [r["text"] for r in rows] == reviews
    assert [r["label"] for r in rows] == ["positive", "negative", "positive"]  # the toy data is easy
    for row in rows:
        p = float(row["p_negative"]), float(row["p_positive"])
        assert sum(p) == pytest.approx(1, abs=1e-5) and float(row["probability"]) == pytest.approx(max(p))

    lines = tmp_path / "reviews.txt"
    lines.write_text("\n".join(reviews) + "\n", encoding="utf-8")
    out = tmp_path / "preds.csv"
    assert predict(predict_cfg(f"ckpt_path={ckpt}", f"input={lines}", f"output={out}"))["count"] == 3
    assert list(csv.DictReader(out.open())) == rows


def test_predict_needs_exactly_one_input_and_a_model_it_handles(make_cfg, tmp_path: Path) -> None:
    image_ckpt = train(make_cfg("model=cnn_seed000", *FAST, "trainer.max_epochs=1", "test=false"))
    with pytest.raises(DlforgeError, match="does not handle image_classifier"):
        predict(predict_cfg(f"ckpt_path={image_ckpt['last_checkpoint']}", "text=hello"))
    with pytest.raises(DlforgeError, match="either text="):
        predict(predict_cfg(f"ckpt_path={image_ckpt['last_checkpoint']}"))


def test_crossval_cli_runs_every_fold_and_reports_mean_and_std(
    run_cli, text_root: Path, tmp_path: Path
) -> None:
    overrides = [o for o in text_overrides(text_root) if not o.startswith("trainer.max_epochs")]
    result = run_cli(
        "-m", "dlforge.crossval", "model=textcnn_kim", *overrides, "data.folds=3", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "hydra.run.dir=outputs/cv",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "cv"
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["folds"] == 3 and summary["model"] == "textcnn_kim" and summary["data"] == "mr"
    accs = [fold["metrics"]["test/acc"] for fold in summary["per_fold"]]
    assert summary["metrics"]["test/acc"] == pytest.approx(sum(accs) / 3)
    mean = sum(accs) / 3
    std = (sum((a - mean) ** 2 for a in accs) / 2) ** 0.5
    assert summary["metrics_std"]["test/acc"] == pytest.approx(std)
    for k in range(3):
        fold = json.loads((run / f"fold_{k}" / "metrics.json").read_text())
        assert fold["metrics"]["test/acc"] == accs[k]
        assert (run / f"fold_{k}" / "confusion_matrix.csv").is_file()
    counted = [
        sum(int(v) for row in (run / f"fold_{k}" / "confusion_matrix.csv").read_text().splitlines()[1:]
            for v in row.split(",")[1:])
        for k in range(3)
    ]  # fmt: skip
    assert counted == [40, 40, 40]  # the 120 MR texts, each tested once


def test_crossval_without_folds_is_one_clear_error(make_cfg, text_root: Path) -> None:
    with pytest.raises(DlforgeError, match=r"data\.folds >= 2"):
        crossval(make_cfg("model=textcnn_kim", *text_overrides(text_root), config_name="crossval"))


@pytest.mark.parametrize("text", ["a gorgeous, witty film", "it's [great] = ${fun}", "a\\b\\", "'"])
def test_text_argument_reaches_predict_verbatim(text: str) -> None:
    from dlforge.cli import verbatim

    cfg = predict_cfg("ckpt_path=x", verbatim(f"text={text}", "text"))
    assert cfg.text == text
