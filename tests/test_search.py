"""Hyper-parameter searches (``python train.py -m hparams_search=...``) as users run them: resuming after
SIGKILL, two workers on SQLite and on a real PostgreSQL server, pruning, several objectives, the study
report, and one-line errors."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from dlforge import report
from dlforge.errors import DlforgeError
from dlforge.study import objective_values, open_storage
from hydra_plugins.dlforge_search.space import enqueued_params, search_space
from hydra_plugins.dlforge_search.sweeper import SearchSweeper
from tests.conftest import FAST, REPO

#: LeNet on the tiny MNIST, searching the learning rate and dropout (batch size and width pinned).
SEARCH = ("-m", "hparams_search=lenet_mnist_optuna", *FAST, "model.net.hidden=[32]")
#: Trials long enough (a second a batch) for a kill to land in one and for two workers to overlap.
SLOW = ("+callbacks.slow._target_=tests.slowdown.SlowDown", "+callbacks.slow.seconds=1.0")


def load_trials(storage: str, name: str = "lenet_mnist") -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def sqlite(sweep: Path) -> str:
    return f"sqlite:///{sweep / 'optuna.db'}"


def record(sweep: Path, trial: FrozenTrial) -> dict:
    return json.loads((sweep / trial.user_attrs["run_dir"] / "metrics.json").read_text())


def train_command(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), *args]


@pytest.fixture
def env(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a search started with Popen (``tests.slowdown`` importable)."""
    return {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DLFORGE_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }


def test_two_workers_share_one_sqlite_study_without_duplicates(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "train.py",
        *SEARCH,
        *SLOW,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_workers=2",
        "hydra.sweep.dir=outputs/search",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "search"
    trials = load_trials(sqlite(sweep))
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2, (sweep / "worker_1.log").read_text()[-3000:]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # the workers' samplers differ
    assert sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == ["0", "1", "2", "3"]


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (``initdb``, ``pg_ctl``), if installed."""
    folders = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    folders += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((f for f in folders if (f / "initdb").is_file() and (f / "pg_ctl").is_file()), None)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on a unix socket (no TCP), run as the postgres user when root."""
    programs = postgres_bin()
    if programs is None:
        pytest.skip("no initdb/pg_ctl: install Debian's postgresql package (.ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # short: a socket path has at most 107 bytes
    as_user: dict = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        account = pwd.getpwnam("postgres" if "postgres" in {p.pw_name for p in pwd.getpwall()} else "nobody")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=120, **as_user)

    data = str(root / "data")
    run(str(programs / "initdb"), "-D", data, "-U", "dlforge", "--auth=trust", "--no-sync")
    options = f"-k {root} -c listen_addresses='' -c fsync=off"
    run(str(programs / "pg_ctl"), "-D", data, "-l", str(root / "server.log"), "-o", options, "-w", "start")
    try:
        yield f"postgresql://dlforge@/postgres?host={root}"
    finally:
        run(str(programs / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_machines_share_one_postgresql_study(
    postgres_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """The same command twice at once, each with its own sweep dir as on two machines, one database."""
    processes = [
        subprocess.Popen(
            train_command(
                *SEARCH,
                *SLOW,
                "hydra.sweeper.n_trials=4",
                f"hydra.sweeper.storage='{postgres_url}'",  # quoted: Hydra reads '=' and '?' otherwise
                f"hydra.sweep.dir=outputs/{machine}",
            ),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for machine in ("a", "b")
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    trials = load_trials(postgres_url)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    run_dirs = [p.parent for p in (tmp_path / "outputs").glob("*/*/metrics.json")]
    assert sorted(d.name for d in run_dirs) == ["0", "1", "2", "3"]  # each trial ran once, on one machine
    assert {d.parent.name for d in run_dirs} == {"a", "b"}


@pytest.mark.parametrize(
    ("pruner", "epochs"),
    [
        # the median of one finished trial, from the first epoch on
        (["hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0"], 1),
        # successive halving: the first rung ends after min_resource = 1 epoch, checked at the next
        (["hydra/sweeper/pruner=hyperband", "hydra.sweeper.pruner.max_resource=2"], 2),
    ],
    ids=["median", "hyperband"],
)
def test_a_trial_that_cannot_learn_is_pruned(
    run_main, tmp_path: Path, pruner: list[str], epochs: int
) -> None:
    result = run_main(
        "train.py",
        *SEARCH,
        "optimizer.lr=choice(0.01,0.0)",  # a learning rate of 0 cannot learn
        "model.net.dropout=0.0",
        "hydra.sweeper.enqueue=[{optimizer.lr:0.01},{optimizer.lr:0.0}]",  # in this order
        "hydra.sweeper.n_trials=2",
        *pruner,
        "hydra.sweep.dir=outputs/search",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "search"
    learns, stuck = load_trials(sqlite(sweep))
    assert (learns.state, learns.params) == (TrialState.COMPLETE, {"optimizer.lr": 0.01})
    assert (stuck.state, stuck.params, stuck.last_step) == (
        TrialState.PRUNED,
        {"optimizer.lr": 0.0},
        epochs - 1,
    )
    pruned, complete = record(sweep, stuck), record(sweep, learns)
    assert pruned["status"] == "pruned" and pruned["epochs"] == epochs and pruned["tool"] == "train"
    assert pruned.keys() == complete.keys()  # the one metrics.json schema
    assert pruned["metrics"]["val/acc"] < complete["metrics"]["val/acc"]

    shown = run_main("-m", "dlforge.report", str(sweep))
    assert shown.returncode == 0, shown.stderr[-3000:]
    text = (sweep / "report.md").read_text()
    assert "2 trials finished: 1 complete, 1 pruned (50%)" in text
    assert f"| 1 | pruned after {epochs} epoch(s) |" in text
    assert "Trial 0: val/acc_best = " in text
    for plot in ("optimization_history", "parallel_coordinate"):
        assert (sweep / f"{plot}.png").stat().st_size > 5000 and f"]({plot}.png)" in text
    assert (sweep / "report.csv").read_text().count("\n") == 3


def test_multi_objective_search_reports_the_pareto_front(run_main, tmp_path: Path) -> None:
    result = run_main(
        "train.py",
        *SEARCH,
        "model.net.hidden=choice([8],[64])",
        "trainer.max_epochs=1",
        "optimized_metric=[val/acc_best,parameters]",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra.sweeper.pruner=null",
        "hydra.sweeper.n_trials=3",
        "hydra.sweep.dir=outputs/search",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "search"
    trials = load_trials(sqlite(sweep))
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in trials)
    assert all(t.values[1] == record(sweep, t)["parameters"] for t in trials)
    assert report.main([str(sweep)]) == 0
    text = (sweep / "report.md").read_text()
    assert "trials on the Pareto front" in text and "val/acc_best (maximize), parameters (minimize)" in text
    assert (sweep / "pareto_front.png").stat().st_size > 5000


def test_search_space_from_config_and_command_line() -> None:
    params = {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))", "data.batch_size": "choice(32, 64)"}
    args = [
        "model.net.hidden=choice([64],[128])",
        "data.batch_size=16",
        "trainer.max_epochs=3",
        "n=range(1,8,3)",
    ]
    space, fixed = search_space(params, args)
    assert space == {
        "optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "model.net.hidden": optuna.distributions.CategoricalDistribution(["[64]", "[128]"]),
        "n": optuna.distributions.IntDistribution(1, 7, step=3),
    }
    assert fixed == ["data.batch_size=16", "trainer.max_epochs=3"]  # a plain value pins a searched key
    assert enqueued_params({"model.net.hidden": [128]}, space) == {"model.net.hidden": "[128]"}
    with pytest.raises(DlforgeError, match="outside the search space"):
        enqueued_params({"optimizer.lr": 0.5}, space)
    with pytest.raises(DlforgeError, match=r"search space: x=interval\(1\)"):
        search_space({"x": "interval(1)"}, [])
    with pytest.raises(DlforgeError, match="the search space is empty"):
        search_space({}, ["a=1"])


def test_objective_values_come_from_the_run_record() -> None:
    run = {"metrics": {"val/acc_best": 0.8, "val/loss": None}, "parameters": 1200, "wall_time_s": 3.5}
    assert objective_values(run, ["val/acc_best", "parameters", "wall_time_s"]) == [0.8, 1200.0, 3.5]
    with pytest.raises(DlforgeError, match=r"optimized_metric=val/loss has no finite value"):
        objective_values(run, ["val/loss"])


def test_a_study_resumed_with_another_search_space_is_refused(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'search.db'}")
    sweeper = SearchSweeper(study_name="s")
    sweeper.config = OmegaConf.create({"optimized_metric": "val/acc_best"})
    space, _ = search_space({"optimizer.lr": "interval(0.001, 0.1)"}, [])
    sweeper.open_study(storage, space)
    assert sweeper.open_study(storage, space).study_name == "s"  # the same search: resumed
    wider, _ = search_space({"optimizer.lr": "interval(0.001, 0.2)"}, [])
    with pytest.raises(DlforgeError, match="study s in this storage searches other params"):
        sweeper.open_study(storage, wider)
