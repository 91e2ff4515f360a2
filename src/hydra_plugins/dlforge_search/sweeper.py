"""A Hydra sweeper built on Optuna's ask-and-tell API: ``python train.py -m hparams_search=<name>``.

Each sweeper process is a worker: it asks the study for a trial, runs it as an ordinary training run
through Hydra's launcher (``<sweep dir>/<trial number>/``), tells the study how it ended, and goes on
until ``n_trials`` trials have finished. The study lives in a database (by default an SQLite file in
the sweep dir), so the same command resumes a killed search, and more workers - ``n_workers`` on this
machine, or the same command on other machines and in SLURM jobs against one database URL - share it.
A worker's heartbeat marks its running trial; a trial whose worker stopped beating is marked failed
and its parameters run again.
"""

# No ``from __future__ import annotations``: Hydra loads plugin modules outside ``sys.modules``, where
# dataclasses cannot resolve string annotations.
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    distribution_to_json,
)
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import Trial, TrialState

from dlforge.errors import DlforgeError, first_line
from dlforge.outputs import write_json
from dlforge.study import (
    ERROR,
    RUN_DIR,
    SEARCH_FILE,
    SWEEPER,
    counts_towards_n_trials,
    metric_names,
    objective_values,
    open_storage,
    optuna_notes_ignored,
    shown,
    storage_url,
    trial_label,
)
from hydra_plugins.dlforge_search.space import (
    enqueued_params,
    override_text,
    search_space,
    some_value,
    suggest,
)

log = logging.getLogger("dlforge")


@dataclass
class SearchConf:
    """``hydra/sweeper=dlforge``: every option (see docs/search.md)."""

    _target_: str = SWEEPER
    _recursive_: bool = False  # the sampler and pruner are built by the workers (and the trials)
    study_name: str = "search"
    # a database URL (sqlite:///..., postgresql://user@host/db); null: <sweep dir>/optuna.db
    storage: str | None = None
    direction: Any = "maximize"  # or a list, one per optimized_metric (multi-objective)
    n_trials: int = 20  # trials that finish (complete, pruned or failed by an error)
    n_workers: int = 1  # worker processes on this machine
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler"})
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner}; null: no pruning
    params: dict[str, Any] = field(default_factory=dict)  # key: interval(a, b) | choice(...) | range(...)
    enqueue: list[Any] = field(
        default_factory=list
    )  # parameter sets to try first, e.g. [{optimizer.lr: 1e-3}]
    heartbeat_interval: int = 10  # seconds between a worker's heartbeats
    grace_period: int = 60  # a running trial without a heartbeat this long is failed and run again
    max_retries: int = 3  # times the parameters of such a trial run again


STORE = ConfigStore.instance()
STORE.store(group="hydra/sweeper", name="dlforge", node=SearchConf, provider="dlforge")
# hydra/sweeper/pruner=median | hyperband: a trial stops after an epoch (a step: one validation) when
# it falls behind the median of the trials finished so far at that epoch, or by successive halving
STORE.store(
    group="hydra/sweeper/pruner",
    name="median",
    provider="dlforge",
    node={
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": 4,  # trials that finish before any is pruned
        "n_warmup_steps": 1,  # epochs every trial runs
    },
)
STORE.store(
    group="hydra/sweeper/pruner",
    name="hyperband",
    provider="dlforge",
    node={
        "_target_": "optuna.pruners.HyperbandPruner",
        "min_resource": 1,  # epochs of the shortest bracket
        "max_resource": "auto",  # the epochs of the first trial that finishes
        "reduction_factor": 3,
    },
)


@contextmanager
def heartbeat(storage: RDBStorage, trial_id: int, interval: int) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception as err:  # a database hiccup: try again at the next beat
                log.warning("heartbeat of trial id %d not recorded: %s", trial_id, first_line(err))
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="search-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class SearchSweeper(Sweeper):
    """One worker of an Optuna search (with ``n_workers`` > 1, it also starts the others)."""

    def __init__(self, **options: Any) -> None:
        self.options = SearchConf(**options)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # --- one worker --------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            space, fixed = search_space(self.options.params, arguments)
            self.check_config(space, fixed)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            url = storage_url(self.options.storage, sweep_dir)
            storage = open_storage(
                url, self.options.heartbeat_interval, self.options.grace_period, self.options.max_retries
            )
            study = self.open_study(storage, space)
        except DlforgeError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
        write_json(sweep_dir / SEARCH_FILE, self.description(url, space))
        log.info(
            "search %s (%s): %d trials, %d worker(s), %s",
            study.study_name,
            shown(url),
            self.options.n_trials,
            self.options.n_workers,
            "pruner " + self.options.pruner._target_.rsplit(".", 1)[-1]
            if self.options.pruner
            else "no pruning",
        )
        workers = self.start_workers(sweep_dir)
        try:
            self.run_trials(study, storage, space, fixed)
        finally:
            self.wait_for(workers)
        self.write_results(study, sweep_dir)

    def check_config(self, space: Mapping[str, BaseDistribution], fixed: list[str]) -> None:
        """Fail at once (not in every trial) when the searched keys or the objectives do not fit."""
        names = metric_names(self.config.get("optimized_metric"))
        directions = self.directions()
        if not names:
            raise DlforgeError("a search needs optimized_metric=<a logged metric>, e.g. val/acc_best")
        if len(names) != len(directions):
            raise DlforgeError(
                f"optimized_metric has {len(names)} name(s) and hydra.sweeper.direction {len(directions)}: "
                "give one direction (maximize | minimize) per metric"
            )
        if len(names) > 1 and self.options.pruner:
            raise DlforgeError("Optuna prunes single-objective studies only: set hydra.sweeper.pruner=null")
        overrides = [*fixed, *(f"{name}={override_text(some_value(d))}" for name, d in space.items())]
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        except Exception as err:
            reason = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
            raise DlforgeError(f"the search space does not fit the config: {reason}") from None

    def directions(self) -> list[str]:
        direction = self.options.direction
        return [direction] if isinstance(direction, str) else [str(d) for d in direction]

    def description(self, url: str, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        """What the study searches: stored with it, so that a resumed or joined search must agree."""
        return {
            "storage": url,
            "study_name": self.options.study_name,
            "objectives": metric_names(self.config.get("optimized_metric")),
            "directions": self.directions(),
            "params": {name: json.loads(distribution_to_json(d)) for name, d in space.items()},
        }

    def open_study(self, storage: RDBStorage, space: Mapping[str, BaseDistribution]) -> optuna.Study:
        """Create the study, or load it and check it searches the same space for the same objectives."""
        name = self.options.study_name
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                directions=self.directions(),
                sampler=instantiate(self.options.sampler),
                pruner=instantiate(self.options.pruner)
                if self.options.pruner
                else optuna.pruners.NopPruner(),
                load_if_exists=True,
            )
        except ValueError as err:  # an unknown direction
            raise DlforgeError(f"hydra.sweeper.direction: {first_line(err)}") from None
        mine = {k: v for k, v in self.description("", space).items() if k not in ("storage", "study_name")}
        stored = study.user_attrs.get("search")
        if stored is None:
            study.set_user_attr("search", mine)
            for entry in self.options.enqueue:
                study.enqueue_trial(enqueued_params(entry, space), skip_if_exists=True)
        elif stored != mine:
            changed = [k for k in mine if mine[k] != stored.get(k)]
            raise DlforgeError(
                f"study {name} in this storage searches other {' and '.join(changed)} "
                f"({stored[changed[0]]}); start a new study with hydra.sweeper.study_name=<new name> "
                "(and a new hydra.sweep.dir)"
            )
        return study

    def run_trials(
        self,
        study: optuna.Study,
        storage: RDBStorage,
        space: Mapping[str, BaseDistribution],
        fixed: list[str],
    ) -> None:
        """Ask, run, tell until ``n_trials`` trials have finished (counting every worker's)."""
        n_trials = self.options.n_trials
        study_id = storage.get_study_id_from_name(study.study_name)
        first = True
        while True:
            with optuna_notes_ignored():  # heartbeats and stale-trial retries: "experimental"
                fail_stale_trials(study)  # trials of dead workers: failed, their parameters queued again
            trials = study.get_trials(deepcopy=False)
            if sum(map(counts_towards_n_trials, trials)) >= n_trials:
                return
            queued = any(t.state == TrialState.WAITING for t in trials)
            if sum(map(taken, trials)) >= n_trials and not queued:
                time.sleep(self.options.heartbeat_interval)  # others run the last trials; one may die
                continue
            with optuna_notes_ignored():  # "heartbeats are meant for Study.optimize": we ask and tell
                trial = study.ask()
            if first and trial.number:  # workers sample with different seeds: seed + their first trial
                study.sampler = self.sampler(seed_offset=trial.number)
            first = False
            before = study.get_trials(deepcopy=False)[: trial.number]
            if sum(map(taken, before)) >= n_trials:  # another worker took the last trial meanwhile
                trial.set_user_attr("skipped", "not run: n_trials were taken by other workers")
                study.tell(trial, state=TrialState.FAIL)
                continue
            params = {name: suggest(trial, name, dist) for name, dist in space.items()}
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            with heartbeat(storage, trial_id, self.options.heartbeat_interval):
                self.run_trial(study, trial, params, fixed)

    def sampler(self, seed_offset: int) -> optuna.samplers.BaseSampler:
        config = self.options.sampler
        if config.get("seed") is None:
            return instantiate(config)
        return instantiate(config, seed=config.seed + seed_offset)

    def run_trial(self, study: optuna.Study, trial: Trial, params: dict[str, Any], fixed: list[str]) -> None:
        """Run the trial as a job of Hydra's launcher, then tell the study how it ended."""
        overrides = [*fixed, *(f"{name}={override_text(value)}" for name, value in params.items())]
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            [job] = self.launcher.launch([overrides], initial_job_idx=trial.number)
        except (KeyboardInterrupt, SystemExit):
            # Ctrl-C (which Lightning turns into an exit) stops the search; the trial runs again on resume
            frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            with optuna_notes_ignored():
                RetryHeartbeatStaleTrialCallback(max_retry=self.options.max_retries)(study, frozen)
            raise
        state, values, error = self.outcome(job)
        if job.hydra_cfg is not None:
            trial.set_user_attr(RUN_DIR, self.relative(Path(job.hydra_cfg.hydra.runtime.output_dir)))
        if error:
            trial.set_user_attr(ERROR, error)
        frozen = study.tell(trial, values, state=state, skip_if_finished=True)
        done = sum(map(counts_towards_n_trials, study.get_trials(deepcopy=False)))
        shown_values = ", ".join(f"{m}={v:.4g}" for m, v in zip(self.metrics(), values or [], strict=False))
        log.info(
            "trial %d %s%s; %d of %d trials done",
            trial.number,
            trial_label(frozen),
            f": {shown_values}" if shown_values else "",
            done,
            self.options.n_trials,
        )

    def relative(self, run_dir: Path) -> str:
        """A run dir as the report finds it: relative to the sweep dir when inside it."""
        sweep_dir = Path(self.config.hydra.sweep.dir).resolve()
        run_dir = run_dir.resolve()
        return str(run_dir.relative_to(sweep_dir) if run_dir.is_relative_to(sweep_dir) else run_dir)

    def metrics(self) -> list[str]:
        return metric_names(self.config.get("optimized_metric"))

    def outcome(self, job: JobReturn) -> tuple[TrialState, list[float] | None, str | None]:
        """How a trial's run ended, from the run record its task returned."""
        try:
            record = job.return_value
        except Exception as err:  # an error past the task's own handling
            return TrialState.FAIL, None, f"{type(err).__name__}: {first_line(err)}"
        if not isinstance(record, Mapping) or "status" not in record:
            return TrialState.FAIL, None, "the task returned no run record (search train.py's runs)"
        if record["status"] == "pruned":
            return TrialState.PRUNED, None, None
        if record["status"] != "ok":
            return TrialState.FAIL, None, record.get("error") or str(record["status"])
        try:
            return TrialState.COMPLETE, objective_values(record, self.metrics()), None
        except DlforgeError as err:
            return TrialState.FAIL, None, str(err)

    # --- more workers and the results ---------------------------------------------------------
    def start_workers(self, sweep_dir: Path) -> list[tuple[subprocess.Popen, Path]]:
        """``n_workers - 1`` more processes of this very command on the same sweep dir and study."""
        workers = []
        for k in range(1, self.options.n_workers):
            log_path = sweep_dir / f"worker_{k}.log"
            command = [
                sys.executable,
                *sys.orig_argv[1:],
                f"hydra.sweep.dir={hydra_quoted(str(sweep_dir))}",
                "hydra.sweeper.n_workers=1",
            ]
            with open(log_path, "w") as out:
                workers.append((subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), log_path))
            log.info("worker %d started (pid %d), its log: %s", k, workers[-1][0].pid, log_path)
        return workers

    @staticmethod
    def wait_for(workers: list[tuple[subprocess.Popen, Path]]) -> None:
        for process, log_path in workers:
            if process.wait() != 0:
                log.warning("worker pid %d exited with %d; see %s", process.pid, process.returncode, log_path)

    def write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        """``optimization_results.yaml``: the best parameters and value(s), and the trials by state."""
        trials = study.get_trials(deepcopy=False)
        states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState if s.is_finished()}
        results: dict[str, Any] = {"name": study.study_name, "trials": states}
        if len(study.directions) == 1:
            if states["complete"]:
                results |= {"best_params": study.best_params, "best_value": study.best_value}
                results["best_trial"] = study.best_trial.number
        else:
            results["best_trials"] = [
                {"number": t.number, "values": t.values, "params": t.params} for t in study.best_trials
            ]
        path = sweep_dir / "optimization_results.yaml"
        OmegaConf.save(OmegaConf.create(results), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        log.info(
            "search %s: %s; report: python -m dlforge.report %s",
            study.study_name,
            ", ".join(f"{n} {s}" for s, n in states.items() if n),
            sweep_dir,
        )


def taken(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that finished and counts, or runs, or waits to run."""
    return counts_towards_n_trials(trial) or trial.state in (TrialState.RUNNING, TrialState.WAITING)


def hydra_quoted(text: str) -> str:
    """``text`` as a quoted value of a Hydra override."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
