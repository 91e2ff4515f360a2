"""Training image classifiers: every model trains, runs write their outputs, the CLI behaves."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from dlforge.build import model_options
from dlforge.checkpoint import load_model
from dlforge.errors import CheckpointError, DlforgeError
from dlforge.models import build_model
from dlforge.training import build_run, train
from tests.conftest import FAST, REPO


def confusion_accuracy(run_dir: Path) -> float:
    """The accuracy the written confusion matrix implies (its diagonal over its total)."""
    rows = [line.split(",")[1:] for line in (run_dir / "confusion_matrix.csv").read_text().splitlines()[1:]]
    counts = [[int(v) for v in row] for row in rows]
    return sum(counts[k][k] for k in range(len(counts))) / sum(map(sum, counts))


def first_and_last(metrics_csv: Path, key: str) -> tuple[float, float]:
    import csv

    with open(metrics_csv) as f:
        values = [float(row[key]) for row in csv.DictReader(f) if row.get(key)]
    return values[0], values[-1]


@pytest.mark.parametrize(
    ("model", "data"),
    [
        ("cnn_seed000", "mnist"),
        ("lenet", "mnist"),
        ("mlp", "fashion_mnist"),
        ("cifar_cnn", "cifar10"),
        ("cifar_cnn_deep", "cifar10"),
    ],
)
def test_every_classifier_trains_and_its_loss_falls(make_cfg, model: str, data: str) -> None:
    cfg = make_cfg(f"model={model}", f"data={data}", *FAST, "trainer.max_epochs=3", "optimizer.lr=0.003")
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    first, last = first_and_last(out / "metrics.csv", "train/loss_step")
    assert last < first
    assert summary["metrics"]["test/acc"] == pytest.approx(confusion_accuracy(out))
    assert summary["epochs"] == 3


def test_run_dir_holds_config_checkpoints_metrics_and_confusion_matrix(make_cfg) -> None:
    cfg = make_cfg("model=lenet", *FAST)
    train(cfg)
    out = Path(cfg.paths.output_dir)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["status"] == "ok"
    for key in ("test/acc", "test/loss", "val/acc", "val/acc_best", "train/loss_epoch"):
        assert key in summary["metrics"]
    assert summary["epochs"] == 2 and summary["wall_time_s"] > 0
    assert Path(summary["best_checkpoint"]).is_file() and Path(summary["last_checkpoint"]).name == "last.ckpt"
    assert (out / "config.yaml").is_file() and (out / "metrics.csv").is_file()
    rows = (out / "confusion_matrix.csv").read_text().splitlines()
    assert len(rows) == 11 and rows[0].startswith("true")
    assert sum(int(v) for row in rows[1:] for v in row.split(",")[1:]) == 80  # every test image counted
    assert (out / "confusion_matrix.png").stat().st_size > 1000


def test_checkpoints_load_weights_only_and_rebuild_the_model(make_cfg) -> None:
    cfg = make_cfg("model=cnn_seed000", *FAST)
    summary = train(cfg)
    raw = torch.load(summary["last_checkpoint"], weights_only=True)
    assert raw["dlforge"]["model"] == "image_classifier"
    assert raw["hyper_parameters"]["data"]["channels"] == 1
    model = load_model(summary["last_checkpoint"])
    datamodule, fresh, _ = build_run(cfg)
    images, _ = next(iter(datamodule.test_dataloader()))
    images = datamodule.preprocess(images)
    fresh.load_state_dict(raw["state_dict"])
    fresh.eval()
    assert torch.allclose(model(images), fresh(images))


def test_load_model_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_model(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        load_model(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a dlforge model"):
        load_model(tmp_path / "foreign.ckpt")


def test_same_seed_same_metrics_on_cpu(make_cfg, tmp_path: Path) -> None:
    def run(name: str) -> dict:
        cfg = make_cfg("model=lenet", "data=cifar10", "data.crop_padding=4", "data.hflip=true", *FAST)
        cfg.paths.output_dir = str(tmp_path / name)
        return train(cfg)["metrics"]

    assert run("a") == run("b")


def test_resume_from_last_checkpoint_continues_to_max_epochs(make_cfg, tmp_path: Path) -> None:
    first = make_cfg("model=lenet", *FAST, "trainer.max_epochs=1")
    last = train(first)["last_checkpoint"]
    resumed = make_cfg("model=lenet", *FAST, "trainer.max_epochs=3", f"ckpt_path={last}")
    resumed.paths.output_dir = str(tmp_path / "resumed")
    summary = train(resumed)
    assert summary["epochs"] == 3
    assert summary["global_step"] == 3 * 4  # 4 batches an epoch, epoch 0 done before the resume


def test_bf16_mixed_precision_runs_on_cpu(make_cfg) -> None:
    cfg = make_cfg("model=lenet", *FAST, "trainer.precision=bf16-mixed")
    summary = train(cfg)
    assert summary["precision"] == "bf16-mixed"
    first, last = first_and_last(Path(cfg.paths.output_dir) / "metrics.csv", "train/loss_step")
    assert last < first


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "rmsprop"])
def test_optimizer_group_options_compose(make_cfg, optimizer: str) -> None:
    cfg = make_cfg("model=lenet", f"optimizer={optimizer}", "scheduler=cosine", "data.val_size=32")
    _, model, _ = build_run(cfg)
    config = model.configure_optimizers()
    assert type(config["optimizer"]).__name__ == {"adam": "Adam", "rmsprop": "RMSprop"}.get(optimizer, "SGD")
    assert type(config["lr_scheduler"]["scheduler"]).__name__ == "CosineAnnealingLR"


def test_overrides_reach_the_network(make_cfg) -> None:
    cfg = make_cfg(
        "model=lenet",
        "model.net.blocks=[[4],[6],[8]]",
        "model.net.padding=same",
        "model.net.activation=tanh",
        "data.val_size=32",
    )
    _, model, _ = build_run(cfg)
    convs = [m for m in model.net.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 6, 8]
    assert any(isinstance(m, torch.nn.Tanh) for m in model.net.modules())


# --- the command line, as a user types it ------------------------------------------------------


def test_cli_trains_then_evaluate_reproduces_the_test_metrics(run_cli, tmp_path: Path) -> None:
    result = run_cli("train.py", "model=lenet", "data=mnist", *FAST, "hydra.run.dir=outputs/cli")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((tmp_path / "outputs" / "cli" / "metrics.json").read_text())
    result = run_cli(
        "-m",
        "dlforge.evaluate",
        f"ckpt_path={trained['best_checkpoint']}",
        "data=mnist",
        "trainer=cpu",
        "trainer.limit_test_batches=2",
        "hydra.run.dir=outputs/eval",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "outputs" / "eval" / "metrics.json").read_text())
    # one metrics.json schema for both tools; the same checkpoint on the same batches gives the same figures
    assert set(trained) >= set(evaluated) - {"checkpoint"}
    assert (trained["tool"], evaluated["tool"]) == ("train", "evaluate")
    assert trained["kind"] == evaluated["kind"] == "image_classifier"
    for name in ("test/acc", "test/loss"):
        assert evaluated["metrics"][name] == pytest.approx(trained["metrics"][name], abs=1e-6)
    assert (tmp_path / "outputs" / "eval" / "confusion_matrix.png").is_file()


def test_cli_multirun_runs_every_job(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "train.py",
        "-m",
        "model=cnn_seed000",
        "optimizer.lr=0.1,0.01",
        *FAST,
        "trainer.max_epochs=1",
        "hydra.sweep.dir=outputs/sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted((tmp_path / "outputs" / "sweep").glob("*/metrics.json"))
    assert len(jobs) == 2
    assert [json.loads(j.read_text())["overrides"][1] for j in jobs] == [
        "optimizer.lr=0.1",
        "optimizer.lr=0.01",
    ]


# --- train() as a library call: no Hydra state read, no process-wide setting changed ---------------


def test_train_takes_its_run_dir_as_an_argument_and_changes_nothing_process_wide(
    make_cfg, tmp_path: Path, monkeypatch
) -> None:
    import warnings

    import dlforge.train as train_module

    def mallopt() -> bool:
        raise AssertionError("a library call of train() changed the process's malloc")

    monkeypatch.setattr(train_module, "keep_freed_memory", mallopt)
    cfg = make_cfg("model=lenet", *FAST, "trainer.max_epochs=1", "keep_freed_memory=true")
    with open_dict(cfg):  # as Hydra composes it: nothing to resolve outside a Hydra run
        cfg.paths.output_dir = "${hydra:runtime.output_dir}"
    filters = list(warnings.filters)
    summary = train(cfg, output_dir=tmp_path / "given")
    assert warnings.filters == filters
    out = tmp_path / "given"
    assert json.loads((out / "metrics.json").read_text())["metrics"] == summary["metrics"]
    assert Path(summary["last_checkpoint"]) == out / "checkpoints" / "last.ckpt"
    assert OmegaConf.load(out / "config.yaml").paths.output_dir == str(out)
    assert OmegaConf.is_interpolation(cfg.paths, "output_dir")  # the caller's config is left as it was


def test_train_refuses_the_optimizer_group_for_a_gan_from_the_overrides_it_is_given(make_cfg) -> None:
    cfg = make_cfg(*FAST, "optimizer=sgd")  # the default model: a DCGAN, one optimizer per network
    _, model, _ = build_run(cfg)  # no overrides given: the composed config alone does not say who chose
    assert "optimizer" not in model.hparams
    with pytest.raises(DlforgeError, match="optimizer=sgd: this model has one optimizer per network"):
        train(cfg, overrides=["trainer=cpu", "optimizer=sgd"])
    run_dir = Path(cfg.paths.output_dir)
    assert not run_dir.exists() or not [
        p for p in run_dir.rglob("*") if p.is_file()
    ]  # refused before writing


def test_cli_main_sets_the_commands_malloc_and_hands_hydras_run_dir_and_overrides_to_train(
    run_main, tmp_path: Path, monkeypatch
) -> None:
    import dlforge.train as train_module

    calls: list[dict] = []
    library_train = train_module.train

    def recorded(cfg, extra_callbacks=(), **kwargs):
        calls.append(kwargs)
        return library_train(cfg, extra_callbacks, **kwargs)

    kept: list[bool] = []
    monkeypatch.setattr(train_module, "keep_freed_memory", lambda: kept.append(True) or True)
    monkeypatch.setattr(train_module, "train", recorded)
    args = ("model=lenet", *FAST, "trainer.max_epochs=1", "test=false")
    result = run_main("train.py", *args, "hydra.run.dir=outputs/main")
    assert result.returncode == 0, result.stderr[-3000:]
    assert kept == [True]
    assert len(calls) == 1 and calls[0]["overrides"] == list(args)  # hydra.* overrides are Hydra's own
    assert Path(calls[0]["output_dir"]).resolve() == (tmp_path / "outputs" / "main").resolve()
    record = json.loads((tmp_path / "outputs" / "main" / "metrics.json").read_text())
    # the command's own overrides and group choices reach the record, though train() reads no Hydra
    assert (record["status"], record["model"], record["overrides"]) == ("ok", "lenet", list(args))
    result = run_main("train.py", *args, "keep_freed_memory=false", "hydra.run.dir=outputs/own")
    assert result.returncode == 0, result.stderr[-3000:]
    assert kept == [True] and len(calls) == 2  # keep_freed_memory=false: glibc's own malloc


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_config_composes(make_cfg, experiment: str) -> None:
    cfg = make_cfg(f"experiment={experiment}")
    assert cfg.trainer.max_epochs >= 1
    if experiment.startswith("seed000_dream"):
        return  # measured by python -m dlforge.dream (docs/dream.md), not by a training metric
    assert {"source", "metric", "setting"} <= set(cfg.reference)  # docs/results.md compares against it
    assert "value" in cfg.reference or cfg.reference.by in cfg.hydra.sweeper.params


def test_channels_last_and_threads_options(make_cfg) -> None:
    cfg = make_cfg("model=lenet", *FAST, "trainer.max_epochs=1", "channels_last=true", "threads=1")
    datamodule, model, _ = build_run(cfg)
    images, _ = next(iter(datamodule.train_dataloader()))
    assert datamodule.preprocess(images).is_contiguous(memory_format=torch.channels_last)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    try:
        summary = train(cfg)
        assert torch.get_num_threads() == 1
        assert summary["metrics"]["test/acc"] == pytest.approx(confusion_accuracy(Path(cfg.paths.output_dir)))
    finally:
        torch.set_num_threads(threads)


FAULTS_PER_STEP = """
import resource, sys, torch
from torch import nn
from dlforge.speed import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "on" else None
model = nn.Sequential(nn.Embedding(20000, 50), nn.Flatten(), nn.Linear(1000, 2))  # a 4 MB dense gradient
optimizer = torch.optim.Adam(model.parameters())
tokens, labels = torch.randint(0, 20000, (64, 20)), torch.randint(0, 2, (64,))
def steps(n):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        loss = nn.functional.cross_entropy(model(tokens), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n
steps(5)
print(applied, *[steps(10) for _ in range(7)])  # seven windows of ten steps
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_stops_the_page_faults_of_every_step() -> None:
    # glibc's default hands a step's large freed tensors back to the OS (about 1,000 page faults a
    # step for this model here); kept, the next step reuses them without faulting. Faults per
    # step: the median over seven windows, as one burst (a CI run once averaged 50 a step over 20 steps
    # with it kept) is not what this is about
    faults = {}
    for mode in ("off", "on"):
        command = [sys.executable, "-c", FAULTS_PER_STEP, mode]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        assert out[0] == {"off": "None", "on": "True"}[mode]
        faults[mode] = statistics.median(float(x) for x in out[1:])
    assert faults["on"] <= 5.0 and faults["off"] >= 50.0, faults


@pytest.mark.parametrize("every", [1, 2])
def test_step_losses_reach_the_logger_every_n_steps_and_the_epoch_mean_counts_every_step(
    make_cfg, every: int
) -> None:
    import csv

    cfg = make_cfg("model=lenet", *FAST, "test=false", f"trainer.log_every_n_steps={every}")
    train(cfg)
    with open(Path(cfg.paths.output_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    steps = {int(r["step"]): float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")}
    epochs = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert sorted(steps) == list(range(every - 1, 8, every))  # 2 epochs x 4 batches of 16
    assert len(epochs) == 2
    if every == 1:  # every step seen: the epoch means are the means of the step losses
        assert epochs == pytest.approx([sum(steps[s] for s in range(e * 4, e * 4 + 4)) / 4 for e in (0, 1)])


def test_progress_bar_reads_logged_values_back_once_per_logging_interval(make_cfg, monkeypatch) -> None:
    from pytorch_lightning.callbacks import RichProgressBar

    from dlforge.callbacks import ProgressBar

    reads: list[bool] = []
    stock = RichProgressBar.get_metrics

    def counting(self, trainer, pl_module):
        reads.append(self._in_train_batch)
        return stock(self, trainer, pl_module)

    monkeypatch.setattr(RichProgressBar, "get_metrics", counting)
    # 2 epochs x 4 batches, logged every 2 steps: a read when an interval or epoch starts, not 8
    cfg = make_cfg("model=lenet", *FAST, "test=false", "trainer.log_every_n_steps=2")
    datamodule, model, trainer = build_run(cfg)
    bar = next(c for c in trainer.callbacks if isinstance(c, ProgressBar))
    trainer.fit(model, datamodule=datamodule)
    assert 4 <= reads.count(True) <= 6
    assert "train/loss_step" in bar.get_metrics(trainer, model)  # what it shows is still there


def test_epoch_mean_of_step_values_weights_each_batch_by_its_size(tmp_path: Path) -> None:
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from dlforge.models.base import DlforgeModule

    class LogsInputs(DlforgeModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            x = batch[0]
            values = {"x": x.mean(), "const": 2.0, "y": x.mean()}
            self.log_train_step(values, batch_size=len(x), epoch_only=("y",))
            return (self.w * x).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.0)

    x = torch.arange(10.0)  # batches of 4, 4, 2: batch means 1.5, 5.5, 8.5; unweighted mean 5.17
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(LogsInputs(), DataLoader(TensorDataset(x), batch_size=4))
    assert float(trainer.callback_metrics["train/x_epoch"]) == pytest.approx(4.5)  # mean of 0..9
    assert float(trainer.callback_metrics["train/const_epoch"]) == pytest.approx(2.0)
    assert float(trainer.callback_metrics["train/y"]) == pytest.approx(4.5)  # epoch_only: one name
    assert not {"train/y_step", "train/y_epoch"} & set(trainer.callback_metrics)


@pytest.mark.parametrize("through_dlforge", [False, True])
def test_no_advice_to_add_workers_to_in_memory_loaders(make_cfg, monkeypatch, through_dlforge: bool) -> None:
    import warnings

    from pytorch_lightning.trainer.connectors import data_connector

    monkeypatch.setattr(data_connector, "suggested_max_num_workers", lambda devices: 15)  # a big machine
    cfg = make_cfg("model=lenet", *FAST, "test=false", "trainer.max_epochs=1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # without pytest's filters, which drop this advice in every test
        if through_dlforge:
            train(cfg)
        else:  # the same model and data under a plain Lightning Trainer: the advice is given
            datamodule = instantiate(cfg.data)
            datamodule.setup("fit")
            options = model_options(cfg)
            model = build_model(options.pop("kind"), **options, **datamodule.model_kwargs())
            trainer = pl.Trainer(
                max_epochs=1,
                limit_train_batches=2,
                limit_val_batches=1,
                logger=False,
                enable_checkpointing=False,
                default_root_dir=cfg.paths.output_dir,
            )
            trainer.fit(model, datamodule)
    advice = [w for w in caught if "does not have many workers" in str(w.message)]
    assert bool(advice) != through_dlforge


def test_tensorboard_logger_gets_the_scalars_and_the_pictures(make_cfg) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg("model=lenet", *FAST, "logger=many")
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss_step", "train/loss_epoch", "val/acc", "test/acc"} <= set(scalars)
    assert len(events.Scalars("train/loss_step")) == 8  # log_every_n_steps=1: every one of 2 x 4 steps
    assert events.Scalars("test/acc")[-1].value == pytest.approx(summary["metrics"]["test/acc"])
    assert "test/confusion_matrix" in events.Tags()["images"]
    assert (out / "metrics.csv").is_file()  # logger=many: csv as well


def test_last_checkpoint_is_the_last_epoch_even_when_the_best_is_older(make_cfg, tmp_path: Path) -> None:
    """With a learning rate of 0 the monitored accuracy never improves after the first epoch: the best
    checkpoint stays at epoch 0, and last.ckpt must still be the end of the third epoch."""
    cfg = make_cfg("model=lenet", "data=mnist", *FAST, "trainer.max_epochs=3", "optimizer.lr=0")
    summary = train(cfg)
    best = torch.load(summary["best_checkpoint"], weights_only=True)
    last = torch.load(summary["last_checkpoint"], weights_only=True)
    assert Path(summary["last_checkpoint"]).name == "last.ckpt"
    assert (best["epoch"], last["epoch"]) == (0, 2)
    assert last["global_step"] == 3 * best["global_step"]
