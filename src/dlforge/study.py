"""Optuna studies of hyper-parameter searches (``python train.py -m hparams_search=<name>``).

The shared layer of the search's workers (the ``dlforge`` Hydra sweeper in
``hydra_plugins/dlforge_search``), the training runs that are its trials (:mod:`dlforge.pruning`) and
the report: where a study is stored, which trials count, and how a run's ``metrics.json`` record
becomes the objective values.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from dlforge.errors import DlforgeError, first_line

#: The sweeper's Hydra ``_target_``: a run whose ``hydra.sweeper`` is this one is a trial of a search.
SWEEPER = "hydra_plugins.dlforge_search.sweeper.SearchSweeper"
#: The default storage: an SQLite file in the sweep dir.
DB_FILE = "optuna.db"
#: In the sweep dir: where the study is stored and what it optimizes (read by the report).
SEARCH_FILE = "search.json"
#: Trial user attributes: why a trial failed, and its run dir.
ERROR, RUN_DIR = "error", "run_dir"


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """The configured storage URL, or an SQLite file in the sweep dir."""
    return storage or f"sqlite:///{(Path(sweep_dir) / DB_FILE).resolve()}"


def shown(url: str) -> str:
    """A storage URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


@contextlib.contextmanager
def optuna_notes_ignored() -> Iterator[None]:
    """Drop, while the block runs, Optuna's notes that the heartbeat and stale-trial machinery (what
    resuming a search relies on) is experimental, and that heartbeats are meant for ``Study.optimize``
    (the sweeper asks and tells); the process's warning filters are as they were afterwards."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings(
            "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize"
        )
        yield


def open_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None, max_retries: int = 3
) -> RDBStorage:
    """Open (creating its tables if new) the database of ``url``: any SQLAlchemy URL Optuna supports.

    With a heartbeat, a trial whose worker stopped beating for ``grace_period`` seconds (killed,
    machine lost) is marked failed and its parameters queued again, up to ``max_retries`` times.
    """
    try:
        backend = make_url(url).get_backend_name()
    except sqlalchemy.exc.ArgumentError as err:
        raise DlforgeError(
            f"hydra.sweeper.storage={url} is not a database URL ({first_line(err)}); {_HINT}"
        ) from None
    # SQLite: wait for a busy database instead of failing; servers: fail fast when unreachable
    connect = {"timeout": 60} if backend == "sqlite" else {"connect_timeout": 10}
    if backend == "sqlite":
        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise DlforgeError(f"hydra.sweeper.storage={url}: no folder {Path(path).parent}; {_HINT}")
    with optuna_notes_ignored():
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retries) if heartbeat_interval else None
    attempts = 0
    while True:
        try:
            with optuna_notes_ignored():
                return RDBStorage(
                    url,
                    engine_kwargs={"connect_args": connect},
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=retry,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            # workers that start at once race to create the tables: the loser finds them next time
            attempts += 1
            if attempts == 3:
                raise DlforgeError(f"cannot open the study storage {shown(url)}: {first_line(err)}") from None
            time.sleep(attempts)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, TypeError) as err:
            message = f"cannot open the study storage {shown(url)}: {first_line(err)}; {_HINT}"
            raise DlforgeError(message) from None


_HINT = (
    "set hydra.sweeper.storage to a database URL such as sqlite:///search.db or "
    "postgresql://user@host/dbname (or leave it null: an SQLite file in the sweep dir)"
)


def metric_names(optimized_metric: str | Sequence[str] | None) -> list[str]:
    """``optimized_metric`` as a list of names (several for a multi-objective search)."""
    if not optimized_metric:
        return []
    return [optimized_metric] if isinstance(optimized_metric, str) else [str(m) for m in optimized_metric]


def objective_values(record: Mapping[str, Any], names: Sequence[str]) -> list[float]:
    """The values of ``names`` in a run's ``metrics.json`` record: logged metrics (``val/acc_best``),
    else the record's own numbers (``wall_time_s``, ``parameters``)."""
    values = []
    for name in names:
        value = record.get("metrics", {}).get(name, record.get(name))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            logged = ", ".join(record.get("metrics", {}))
            raise DlforgeError(
                f"optimized_metric={name} has no finite value in this run (logged: {logged}); "
                "name a logged metric or one of wall_time_s, parameters"
            )
        values.append(float(value))
    return values


def counts_towards_n_trials(trial: FrozenTrial) -> bool:
    """A trial that ended by itself: complete, pruned, or failed with an error of its own.

    Trials failed because their worker died (no heartbeat) or was interrupted are not counted: their
    parameters run again as a new trial."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and ERROR in trial.user_attrs
    )


def trial_label(trial: FrozenTrial) -> str:
    """A trial's state in words: complete, pruned after k epoch(s), failed: <error>, interrupted, ..."""
    if trial.state == TrialState.PRUNED:  # steps are epochs, from 0
        return f"pruned after {trial.last_step + 1} epoch(s)" if trial.last_step is not None else "pruned"
    if trial.state != TrialState.FAIL:
        return trial.state.name.lower()
    if ERROR in trial.user_attrs:
        return f"failed: {trial.user_attrs[ERROR]}"
    return trial.user_attrs.get("skipped") or "interrupted (parameters run again)"


def read_search(folder: Path) -> dict[str, Any]:
    """The ``search.json`` of a sweep dir (storage, study name, objectives), or an error saying why not."""
    path = folder / SEARCH_FILE
    if not path.is_file():
        raise DlforgeError(
            f"no {SEARCH_FILE} in {folder}: is it the sweep dir of a search (hparams_search=)?"
        )
    search = json.loads(path.read_text())
    url = make_url(search["storage"])
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        here = folder / DB_FILE  # a sweep dir moved with its database
        if not here.is_file():
            raise DlforgeError(f"the study's database {url.database} is missing (nor is there {here})")
        search["storage"] = storage_url(None, folder)
    return search
