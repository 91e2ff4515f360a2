"""Sweeps and tracking as a user runs them: multirun + report, failures, launchers, Optuna, W&B offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST
from tests.text_fixtures import text_overrides, write_text_data

ONE_EPOCH = (*FAST, "trainer.max_epochs=1", "model=cnn_seed000")


def statuses(sweep: Path) -> list[str]:
    return [json.loads(p.read_text())["status"] for p in sorted(sweep.glob("*/metrics.json"))]


def test_multirun_then_report_table_and_plot(run_cli, run_main, tmp_path: Path) -> None:
    result = run_cli("train.py", "-m", "optimizer.lr=0.1,0.001", *ONE_EPOCH, "hydra.sweep.dir=outputs/sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "sweep"
    assert "python -m dlforge.report" in result.stderr + result.stdout
    report = run_main("-m", "dlforge.report", str(sweep))
    assert report.returncode == 0, report.stderr
    table = (sweep / "report.md").read_text().splitlines()
    assert table[0].startswith("| optimizer.lr | status | test/acc")
    assert [row.split(" | ")[0] for row in table[2:]] == ["| 0.1", "| 0.001"]
    assert (sweep / "report.csv").read_text().count("\n") == 3
    assert (sweep / "report.png").stat().st_size > 5000


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(run_main, tmp_path: Path) -> None:
    result = run_main(
        "train.py", "-m", *ONE_EPOCH, "data.val_size=100000,32", "hydra.sweep.dir=outputs/sweep"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "sweep"
    assert statuses(sweep) == ["failed", "ok"]
    failed = json.loads((sweep / "0" / "metrics.json").read_text())
    assert "val_size=100000" in failed["error"]
    report = run_main("-m", "dlforge.report", str(sweep))
    assert "failed: DlforgeError" in (sweep / "report.md").read_text(), report.stderr


def test_report_on_a_folder_without_runs_is_one_line(run_main, tmp_path: Path) -> None:
    result = run_main("-m", "dlforge.report", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no metrics.json" in result.stderr


def test_results_table_compares_experiments_with_their_references(run_main, tmp_path: Path) -> None:
    study = {"source": "seed 000", "metric": "test/acc", "setting": "lr study", "by": "optimizer.lr"}
    study["values"] = {"0.1": "did not converge", "0.001": 0.8519}
    runs = {
        "lr/0": ("seed000_textcnn_lr", study, ["experiment=seed000_textcnn_lr", "optimizer.lr=0.1"], 0.5),
        "lr/1": ("seed000_textcnn_lr", study, ["experiment=seed000_textcnn_lr", "optimizer.lr=1e-3"], 0.77),
        "mnist": (
            "seed000_mnist_cnn",
            {"source": "seed 000", "metric": "test/acc", "setting": "5000 points", "value": 0.91},
            ["experiment=seed000_mnist_cnn", "trainer.max_epochs=2", "data.glove.path=/x/glove.txt"],
            0.9373,
        ),
        "plain": (None, None, [], 0.99),  # no reference: left out
    }
    for folder, (experiment, reference, overrides, acc) in runs.items():
        run_dir = tmp_path / "runs" / folder
        run_dir.mkdir(parents=True)
        record = {"status": "ok", "experiment": experiment, "reference": reference, "overrides": overrides}
        record |= {"metrics": {"test/acc": acc}, "epochs": 2, "data": "mnist", "wall_time_s": 90}
        (run_dir / "metrics.json").write_text(json.dumps(record))
    results = tmp_path / "results.md"
    result = run_main("-m", "dlforge.report", str(tmp_path / "runs"), "--results", str(results))
    assert result.returncode == 0, result.stderr
    lines = results.read_text().splitlines()
    assert lines[0] == "# Results" and lines[4].startswith("| experiment | reproduces | their figure")
    rows = [row.split(" | ") for row in lines[6:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("| seed000_textcnn_lr", "test/acc did not converge", "test/acc 0.5"),
        ("| seed000_textcnn_lr", "test/acc 0.8519", "test/acc 0.77"),
        ("| seed000_mnist_cnn", "test/acc 0.91", "test/acc 0.9373"),
    ]
    assert rows[0][8] == "optimizer.lr=0.1" and rows[2][8] == "trainer.max_epochs=2 data.glove.path=glove.txt"
    assert rows[2][7] == "1.5 min"
    records = json.loads((tmp_path / "results.json").read_text())  # the figures' source, beside the table
    assert list(records) == ["lr/0", "lr/1", "mnist"] and records["mnist"]["metrics"]["test/acc"] == 0.9373
    results.write_text(results.read_text() + "\n## Notes\n\nWritten by hand.\n")
    assert run_main("-m", "dlforge.report", str(tmp_path / "runs"), "--results", str(results)).returncode == 0
    assert results.read_text().count("## Notes\n\nWritten by hand.") == 1 and len(results.read_text()) > 500


def test_joblib_launcher_runs_jobs_in_parallel_processes(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "train.py", "-m", "hydra/launcher=parallel", "seed=1,2", *ONE_EPOCH, "hydra.sweep.dir=outputs/sweep"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel" in result.stderr + result.stdout
    assert statuses(tmp_path / "outputs" / "sweep") == ["ok", "ok"]


def test_submitit_launcher_through_its_local_executor(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=slurm_local",
        "seed=1",
        *ONE_EPOCH,
        "hydra.sweep.dir=outputs/sweep",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "sweep"
    assert statuses(sweep) == ["ok"]
    assert list(sweep.glob(".submitit/*/*_submitted.pkl"))  # went through submitit's job machinery


@pytest.mark.parametrize("search", ["lenet_mnist_optuna", "textcnn_mr_optuna"])
def test_optuna_sweep_of_two_trials(run_cli, data_dir: Path, tmp_path: Path, search: str) -> None:
    small = FAST if search.startswith("lenet") else text_overrides(write_text_data(data_dir))[1:]
    result = run_cli(
        "train.py",
        f"hparams_search={search}",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=1",
        *small,
        "trainer.max_epochs=1",
        "hydra.sweep.dir=outputs/optuna",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "optuna"
    assert statuses(sweep) == ["ok", "ok"]
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in best and "optimizer.lr" in best
    values = [json.loads(p.read_text())["metrics"]["val/acc_best"] for p in sweep.glob("*/metrics.json")]
    assert f"best_value: {max(values)}" in best


def test_wandb_offline_without_key_keeps_the_logged_metrics(run_cli, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "WANDB_API_KEY": None, "WANDB_MODE": None}
    result = run_cli("train.py", "logger=wandb", *ONE_EPOCH, "hydra.run.dir=outputs/wb", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr  # Hydra logs to stdout
    assert "W&B runs offline (no API key" in said and "wandb sync" in said
    run = tmp_path / "outputs" / "wb"
    records = list(run.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(records) == 1
    logged = records[0].read_bytes()  # protobuf records: metric names and JSON values are plain bytes
    test_acc = json.loads((run / "metrics.json").read_text())["metrics"]["test/acc"]
    assert b"test/acc" in logged and repr(test_acc).encode() in logged
    assert b"train/loss_step" in logged
    assert list(run.glob("wandb/offline-run-*/files/media/images/test/confusion_matrix_*.png"))


def test_multirun_jobs_share_one_wandb_group(monkeypatch) -> None:
    from types import SimpleNamespace

    from hydra.types import RunMode

    from dlforge import loggers

    sweep = SimpleNamespace(dir="outputs/train_multirun/2026-01-01_00-00-00")
    fake = SimpleNamespace(mode=RunMode.MULTIRUN, sweep=sweep)
    monkeypatch.setattr(loggers.HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(loggers.HydraConfig, "get", staticmethod(lambda: fake))
    assert loggers.sweep_group() == "sweep-2026-01-01_00-00-00"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.wandb_mode() == ("disabled", "as asked")
