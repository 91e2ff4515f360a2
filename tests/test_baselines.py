"""scikit-learn baselines on the networks' path: tiny images and texts, the same split, safe checkpoints."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest
import torch

from dlforge.checkpoint import load_model
from dlforge.errors import CheckpointError
from dlforge.models import ClassicalClassifier
from dlforge.nets.classical import load_pipeline
from dlforge.training import build_run, train
from tests.text_fixtures import write_text_data

BASELINES = ("random_forest", "decision_tree", "gradient_boosting", "logistic_regression")
#: a baseline run on the tiny image sets: the whole (small) training split, one CPU process
QUICK = ("trainer=cpu", "trainer.enable_model_summary=false", "data.val_size=40", "data.batch_size=64")
SMALL = {
    "random_forest": ("model.net.n_estimators=20", "model.net.n_jobs=1"),
    "gradient_boosting": ("model.net.max_iter=15",),
}


@pytest.mark.parametrize("model", BASELINES)
def test_each_baseline_beats_chance_and_writes_the_networks_run_dir(make_cfg, model: str) -> None:
    cfg = make_cfg(f"model={model}", "data=fashion_mnist", *QUICK, *SMALL.get(model, ()))
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = summary["metrics"]
    assert metrics["test/acc"] > 0.5 and metrics["val/acc"] > 0.5  # 10 classes: chance is 0.1
    assert {"test/loss", "val/acc_best", "train/acc", "train/fit_time_s"} <= set(metrics)
    assert summary["kind"] == "classical" and summary["epochs"] == 1 and summary["global_step"] == 1
    assert json.loads((out / "metrics.json").read_text())["wall_time_s"] > 0
    with open(out / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))[1:]
    assert sum(int(v) for row in rows for v in row[1:]) == 80  # the whole official test split
    # the checkpoint holds tensors and plain data only, and tests the same as the trained model
    checkpoint = torch.load(summary["best_checkpoint"], weights_only=True)
    assert checkpoint["state_dict"]["net._extra_state"].dtype == torch.uint8
    assert load_model(summary["best_checkpoint"]).net.fitted


def test_a_baseline_fits_on_exactly_the_networks_training_split(make_cfg) -> None:
    """Same config, same seed: the baseline's features are the training split a network trains on,
    and it is validated and tested on the network's validation and test splits."""
    cfg = make_cfg("model=logistic_regression", "data=mnist", *QUICK, "seed=3")
    datamodule, model, trainer = build_run(cfg)
    seen: list[torch.Tensor] = []
    fit = model.net.fit
    model.net.fit = lambda features, labels, seed: (
        seen.append(torch.as_tensor(labels)),
        fit(features, labels, seed),
    )
    trainer.fit(model, datamodule=datamodule)
    network_data, _, _ = build_run(make_cfg("model=lenet", "data=mnist", *QUICK, "seed=3"))
    for split in ("train", "val", "test"):
        mine, theirs = datamodule.splits[split].tensors, network_data.splits[split].tensors
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))
    assert torch.equal(seen[0].sort().values, network_data.splits["train"].tensors[1].sort().values)
    other, _, _ = build_run(make_cfg("model=lenet", "data=mnist", *QUICK, "seed=4"))
    assert not torch.equal(other.splits["val"].tensors[1], network_data.splits["val"].tensors[1])


@pytest.mark.parametrize(
    ("model", "features"),
    [("logistic_regression", "tfidf"), ("random_forest", "tfidf"), ("gradient_boosting", "mean_vectors")],
)
def test_text_baselines_on_tfidf_and_mean_word_vectors(
    make_cfg, data_dir: Path, model: str, features: str
) -> None:
    root = write_text_data(data_dir)
    cfg = make_cfg(
        f"model={model}",
        "data=mr",
        f"data.glove.path={root / 'glove' / 'tiny.16d.txt'}",
        "data.max_len=null",
        "data.val_size=0.2",
        "data.test_size=0.2",
        f"model.features.text={features}",
        "trainer=cpu",
        "trainer.enable_model_summary=false",
        *SMALL.get(model, ()),
    )
    summary = train(cfg)
    assert summary["metrics"]["test/acc"] > 0.75  # two classes: chance is 0.5
    assert {"test/roc_auc", "test/pr_auc", "val/roc_auc"} <= set(summary["metrics"])
    loaded = load_model(summary["last_checkpoint"])
    assert isinstance(loaded, ClassicalClassifier)
    if features == "mean_vectors":  # the word vectors travel in the weights
        assert loaded.embeddings.abs().sum() > 0


def test_evaluate_and_predict_take_a_baseline_checkpoint(make_cfg, run_main, tmp_path: Path) -> None:
    summary = train(make_cfg("model=decision_tree", "data=mnist", *QUICK))
    ckpt = summary["best_checkpoint"]
    done = run_main("-m", "dlforge.evaluate", f"ckpt_path={ckpt}", "data=mnist", "trainer=cpu")
    assert done.returncode == 0, done.stderr
    evaluated = json.loads(next((tmp_path / "outputs").rglob("metrics.json")).read_text())
    assert evaluated["metrics"]["test/acc"] == pytest.approx(summary["metrics"]["test/acc"])
    from PIL import Image

    from tests.conftest import class_images

    images, labels = class_images(4, 28, 1, seed=5)
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / f"{i}_{labels[i]}.png")
    out = tmp_path / "predictions.csv"
    done = run_main(
        "-m", "dlforge.predict", f"ckpt_path={ckpt}", f"image={folder}", f"output={out}", "preprocess=resize"
    )
    assert done.returncode == 0, done.stderr
    assert len(list(csv.DictReader(out.open()))) == 4
    done = run_main("-m", "dlforge.export", f"ckpt_path={ckpt}", "format=onnx")
    assert done.returncode == 2 and "cannot be exported" in done.stderr


def test_a_stored_baseline_with_foreign_types_is_refused(tmp_path: Path) -> None:
    """Loading builds only the types skops trusts and dlforge's trees: a stored object of any other
    type (here a plain Python class) never runs."""
    import skops.io
    from sklearn.pipeline import Pipeline

    data = skops.io.dumps(Pipeline([("estimator", Exploit())]), compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="does not trust"):
        load_pipeline(data)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_pipeline(b"not a zip file")


def test_trusted_types_are_named_from_public_scikit_learn_objects_and_every_baseline_loads_back() -> None:
    """The types a stored baseline may hold beyond skops' defaults are what skops finds in fitted public
    estimators (a decision tree's ``tree_`` among them), dlforge's code names no private scikit-learn
    module, and a fitted pipeline of every baseline (with TF-IDF or PCA) loads back predicting the same."""
    import inspect
    import re

    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    from dlforge.nets import classical

    rng = np.random.default_rng(0)
    features, labels = rng.integers(0, 4, size=(40, 6)).astype(float), np.arange(40) % 3
    tree = type(DecisionTreeClassifier().fit(features, labels).tree_)  # a public attribute's type
    assert f"{tree.__module__}.{tree.__qualname__}" in classical.trusted_types()
    assert all(name.startswith("sklearn.") for name in classical.trusted_types())
    assert re.search(r"sklearn(\.\w+)*\._", inspect.getsource(classical)) is None
    for name in BASELINES:
        for options in ({"tfidf": True}, {"pca": 3}):
            if name == "gradient_boosting" and "tfidf" in options:
                continue  # TF-IDF gives sparse features, which gradient boosting does not take
            net = classical.estimator_net(name)(**options)
            net.fit(features, labels, seed=0)
            loaded = load_pipeline(net.get_extra_state().numpy().tobytes())
            expected = net.pipeline.predict_proba(features)
            np.testing.assert_allclose(loaded.predict_proba(features), expected, rtol=0, atol=1e-12)


class Exploit:
    def fit(self, *args: object) -> Exploit:
        return self


def test_the_results_table_puts_baselines_beside_networks_measured_before(run_main, tmp_path: Path) -> None:
    """``report --results`` over a folder of new baseline runs keeps the rows of the networks measured
    earlier (runs not under the folder) and adds the baselines, one table, ordered by run dir."""
    reference = {"source": "Fashion-MNIST benchmark", "metric": "test/acc", "value": 0.897, "setting": "best"}
    for model, acc, seconds in (("random_forest", 0.8761, 412.0), ("logistic_regression", 0.8443, 95.0)):
        run_dir = tmp_path / "runs" / "baselines_fashion_mnist" / model
        run_dir.mkdir(parents=True)
        record = {"status": "ok", "experiment": "baselines_fashion_mnist", "reference": reference}
        record |= {
            "overrides": ["experiment=baselines_fashion_mnist", f"model={model}"],
            "data": "fashion_mnist",
        }
        record |= {"metrics": {"test/acc": acc, "train/fit_time_s": seconds - 30}, "wall_time_s": seconds}
        (run_dir / "metrics.json").write_text(json.dumps(record | {"epochs": 1, "device": "cpu x1"}))
    results = tmp_path / "results.md"
    columns = "experiment reproduces their_figure measured_here data epochs device wall_time changed run"
    header = "| " + " | ".join(c.replace("_", " ") for c in columns.split()) + " |"
    cells = "fashion_mnist_cnn,benchmark,test/acc 0.897,test/acc 0.9271,fashion_mnist,10,cpu x1,8.7 min,,"
    network = "| " + " | ".join(cells.split(",")) + "fashion_mnist_cnn |"
    separator = "|---" * 10 + "|"
    results.write_text(f"# Results\n\nold\n\n{header}\n{separator}\n{network}\n\n## Notes\n\nkept\n")
    done = run_main("-m", "dlforge.report", str(tmp_path / "runs"), "--results", str(results))
    assert done.returncode == 0, done.stderr
    text = results.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(header[:12])]
    assert [r.rsplit(" | ", 1)[-1] for r in rows] == [
        "baselines_fashion_mnist/logistic_regression |",
        "baselines_fashion_mnist/random_forest |",
        "fashion_mnist_cnn |",
    ]
    assert "test/acc 0.8761" in rows[1] and "6.9 min" in rows[1] and "model=random_forest" in rows[1]
    assert "1 rows of runs not under" in text and text.endswith("## Notes\n\nkept\n")
    # the sweep report of the baselines lists their fit time beside the test accuracy
    assert run_main("-m", "dlforge.report", str(tmp_path / "runs")).returncode == 0
    assert "train/fit_time_s" in (tmp_path / "runs" / "report.md").read_text()
