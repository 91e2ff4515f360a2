"""A search survives ``kill -9`` of its worker at every point of a trial's life, on SQLite and on a real
PostgreSQL server: the study ends with ``n_trials`` finished trials and no run trained twice. And a
live worker whose trial was failed for a lapsed heartbeat still records its result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState
from pytorch_lightning.callbacks import Callback

from dlforge.study import ERROR, RUN_DIR, open_storage, optuna_notes_ignored
from hydra_plugins.dlforge_search.sweeper import HEARTBEAT, KILL_AT, LATE, SearchSweeper, give_heartbeats
from tests import test_search
from tests.test_search import SEARCH, load_trials, sqlite, train_command

#: test_search's fixtures: the environment of a search started as a process, a throwaway PostgreSQL.
env, postgres_url = test_search.env, test_search.postgres_url


class KillMidTraining(Callback):
    """``DLFORGE_SEARCH_KILL_AT=training``: SIGKILL the worker after its trial's second training step."""

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if os.environ.get(KILL_AT) == "training" and trainer.global_step == 2:
            os.kill(os.getpid(), signal.SIGKILL)


#: Two one-epoch trials, heartbeats every second, a worker silent for 1 s is dead; the kill seam.
KILLABLE = (
    *SEARCH,
    "trainer.max_epochs=1",
    "hydra.sweeper.n_trials=2",
    "hydra.sweeper.heartbeat_interval=1",
    "hydra.sweeper.grace_period=1",
    "+callbacks.kill._target_=tests.test_search_kills.KillMidTraining",
    "hydra.sweep.dir=outputs/search",
)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_search_survives_a_kill_at_every_point_of_a_trial(
    database: str, env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sweep = tmp_path / "outputs" / "search"
    storage = sqlite(sweep)
    command = train_command(*KILLABLE)
    if database == "postgresql":
        storage = request.getfixturevalue("postgres_url")
        command.append(f"hydra.sweeper.storage='{storage}'")

    def worker(kill_at: str | None) -> list[tuple[TrialState, dict]]:
        """The search command, killed at ``kill_at``; the trials' states and parameters afterwards."""
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env={**env, KILL_AT: kill_at or ""},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == (-signal.SIGKILL if kill_at else 0), result.stderr[-3000:]
        return [(t.state, t.params) for t in load_trials(storage)]

    assert worker("ask") == []  # before its first ask: the study exists, no trial
    # asked for trial 0, died before its first heartbeat (and before sampling its parameters)
    assert worker("heartbeat") == [(TrialState.RUNNING, {})]
    # the next worker gives trial 0 a heartbeat (so it can go stale), then dies training trial 1
    [zero, (state, second)] = worker("training")
    assert zero == (TrialState.RUNNING, {}) and state == TrialState.RUNNING and second
    assert (sweep / "1" / ".hydra").is_dir() and not (sweep / "1" / "metrics.json").exists()
    # trials 0 and 1 are stale: failed, queued again as 2 and 3; trial 2 trains, then its worker dies
    # before telling the study
    after = worker("tell")
    assert after[:2] == [(TrialState.FAIL, {}), (TrialState.FAIL, second)]
    (state, third), queued = after[2:]
    assert state == TrialState.RUNNING and third and queued == (TrialState.WAITING, second)
    assert json.loads((sweep / "2" / "metrics.json").read_text())["status"] == "ok"

    assert worker(None)[3:] == [(TrialState.COMPLETE, second), (TrialState.COMPLETE, third)]
    trials = load_trials(storage)
    assert [t.state for t in trials[:3]] == [TrialState.FAIL] * 3
    assert all(t.user_attrs[HEARTBEAT] == t.number for t in trials)
    complete = trials[3:]
    # trial 3 trained the parameters of trial 1, killed mid-training; trial 4 took the finished run of
    # trial 2 (killed before its tell) instead of training again
    assert [t.user_attrs[RUN_DIR] for t in complete] == ["3", "2"]
    assert sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == ["2", "3"]  # no run twice
    for trial in complete:
        record = json.loads((sweep / trial.user_attrs[RUN_DIR] / "metrics.json").read_text())
        assert trial.value == record["metrics"]["val/acc_best"]
    assert OmegaConf.load(sweep / "optimization_results.yaml").trials.complete == 2


def test_a_live_worker_whose_heartbeat_lapsed_records_its_result(tmp_path: Path) -> None:
    """A worker stalled past the grace period: another one fails its trial and queues its parameters;
    the late result goes into the queued trial (which then does not run), or, once that is taken, into
    a new trial."""
    storage = open_storage(f"sqlite:///{tmp_path / 'search.db'}", heartbeat_interval=1, grace_period=1)
    sweeper = SearchSweeper(study_name="s", grace_period=1)
    sweeper.config = OmegaConf.create({"optimized_metric": "val/acc_best"})
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study_id = storage.get_study_id_from_name("s")
    distribution = optuna.distributions.FloatDistribution(0.0, 1.0)
    with optuna_notes_ignored():
        stalled = [study.ask({"x": distribution}) for _ in range(2)]
    give_heartbeats(storage, study_id, study.get_trials())  # one beat each, then silence
    assert [t.user_attrs[HEARTBEAT] for t in study.get_trials()] == [0, 1]
    for _ in range(60):  # stale after 1 s of the database's clock
        with optuna_notes_ignored():
            optuna.storages.fail_stale_trials(study)
        if len(study.get_trials()) == 4:
            break
        time.sleep(0.1)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL] * 2 + [TrialState.WAITING] * 2
    with optuna_notes_ignored():
        taken = study.ask()  # another worker takes the retry of trial 0, trial 2
    assert taken.number == 2 and taken.params == stalled[0].params

    # the retry of trial 0 runs elsewhere: the late result of trial 0 becomes a new trial
    late = sweeper.tell(study, storage, stalled[0], TrialState.COMPLETE, [0.5], {RUN_DIR: "0", ERROR: None})
    assert (late.number, late.state, late.value, late.params) == (
        4,
        TrialState.COMPLETE,
        0.5,
        stalled[0].params,
    )
    assert late.user_attrs[LATE] == 0 and late.user_attrs[RUN_DIR] == "0"
    # the retry of trial 1, trial 3, still waits: it takes the late result and never runs
    late = sweeper.tell(study, storage, stalled[1], TrialState.COMPLETE, [0.7], {RUN_DIR: "1", ERROR: None})
    assert (late.number, late.state, late.value, late.params) == (
        3,
        TrialState.COMPLETE,
        0.7,
        stalled[1].params,
    )
    assert late.user_attrs[LATE] == 1
    assert not any(t.state == TrialState.WAITING for t in study.get_trials())
