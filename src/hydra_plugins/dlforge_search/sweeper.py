"""A Hydra sweeper built on Optuna's ask-and-tell API: ``python train.py -m hparams_search=<name>``.

Each sweeper process is a worker: it asks the study for a trial, runs it as an ordinary training run
through Hydra's launcher (``<sweep dir>/<trial number>/``), tells the study how it ended, and goes on
until ``n_trials`` trials have finished. The study lives in a database (by default an SQLite file in
the sweep dir), so the same command resumes a killed search, and more workers - ``n_workers`` on this
machine, or the same command on other machines and in SLURM jobs against one database URL - share it.
A worker's heartbeat marks its running trial; a trial whose worker stopped beating is marked failed
and its parameters run again. A worker killed at any point of a trial's life loses nothing: a trial
asked but never beating gets a heartbeat from the next worker that sees it (so it goes stale and runs
again), a retried trial whose run had finished takes that run's result instead of training again, and
a live worker whose trial was failed for a lapsed heartbeat records its result all the same.
"""

# No ``from __future__ import annotations``: Hydra loads plugin modules outside ``sys.modules``, where
# dataclasses cannot resolve string annotations.
import json
import logging
import os
import signal
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
from hydra.errors import InstantiationException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import (
    BaseDistribution,
    distribution_to_json,
)
from optuna.exceptions import UpdateFinishedTrialError
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

#: Trial user attribute: the number of the trial whose heartbeat is recorded (a retried trial copies its
#: predecessor's attributes, so the number tells whose it is).
HEARTBEAT = "heartbeat"
#: Trial user attribute of a result recorded late: the trial whose worker finished after it was failed.
LATE = "late_result_of"
#: Test seam: ``DLFORGE_SEARCH_KILL_AT=ask|heartbeat|tell`` SIGKILLs the worker just before it asks for a
#: trial, between the ask and the trial's first heartbeat, or between the trial's run and the tell.
KILL_AT = "DLFORGE_SEARCH_KILL_AT"


def killed_at(point: str) -> None:
    """Die here, as ``kill -9`` would kill the worker, when the test seam names this point."""
    if os.environ.get(KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)


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
        self.sampler(0)  # a value Optuna refuses fails here, before the study's database is written
        if self.options.pruner:
            built("pruner", self.options.pruner)

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
                sampler=built("sampler", self.options.sampler),
                pruner=built("pruner", self.options.pruner)
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
            give_heartbeats(storage, study_id, trials)
            if sum(map(counts_towards_n_trials, trials)) >= n_trials:
                return
            queued = any(t.state == TrialState.WAITING for t in trials)
            if sum(map(taken, trials)) >= n_trials and not queued:
                time.sleep(self.options.heartbeat_interval)  # others run the last trials; one may die
                continue
            killed_at("ask")
            with optuna_notes_ignored():  # "heartbeats are meant for Study.optimize": we ask and tell
                trial = study.ask()
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            killed_at("heartbeat")
            storage.record_heartbeat(trial_id)  # then the mark: a trial without it never had a heartbeat
            trial.set_user_attr(HEARTBEAT, trial.number)
            if first and trial.number:  # workers sample with different seeds: seed + their first trial
                study.sampler = self.sampler(seed_offset=trial.number)
            first = False
            before = study.get_trials(deepcopy=False)[: trial.number]
            if sum(map(taken, before)) >= n_trials:  # another worker took the last trial meanwhile
                trial.set_user_attr("skipped", "not run: n_trials were taken by other workers")
                study.tell(trial, state=TrialState.FAIL)
                continue
            params = {name: suggest(trial, name, dist) for name, dist in space.items()}
            with heartbeat(storage, trial_id, self.options.heartbeat_interval):
                self.run_trial(study, storage, trial, params, fixed)

    def sampler(self, seed_offset: int) -> optuna.samplers.BaseSampler:
        config = self.options.sampler
        if config.get("seed") is None:
            return built("sampler", config)
        return built("sampler", config, seed=config.seed + seed_offset)

    def run_trial(
        self, study: optuna.Study, storage: RDBStorage, trial: Trial, params: dict[str, Any], fixed: list[str]
    ) -> None:
        """Run the trial as a job of Hydra's launcher (or take the finished run of the trial it retries),
        then tell the study how it ended."""
        overrides = [*fixed, *(f"{name}={override_text(value)}" for name, value in params.items())]
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        finished = self.finished_run(storage, study, trial)
        if finished is not None:
            run_dir, record = finished
            state, values, error = self.record_outcome(record)
        else:
            run_dir = self.run_dir(overrides, trial.number)
            if run_dir is not None:  # before the run: a retry finds it if this worker dies before the tell
                trial.set_user_attr(RUN_DIR, run_dir)
            try:
                [job] = self.launcher.launch([overrides], initial_job_idx=trial.number)
            except (KeyboardInterrupt, SystemExit):
                # Ctrl-C (which Lightning turns into an exit) stops the search; the trial runs again on resume
                frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                with optuna_notes_ignored():
                    RetryHeartbeatStaleTrialCallback(max_retry=self.options.max_retries)(study, frozen)
                raise
            killed_at("tell")
            state, values, error = self.outcome(job)
            if job.hydra_cfg is not None:
                run_dir = self.relative(Path(job.hydra_cfg.hydra.runtime.output_dir))
        frozen = self.tell(study, storage, trial, state, values, {RUN_DIR: run_dir, ERROR: error})
        done = sum(map(counts_towards_n_trials, study.get_trials(deepcopy=False)))
        shown_values = ", ".join(f"{m}={v:.4g}" for m, v in zip(self.metrics(), values or [], strict=False))
        log.info(
            "trial %d %s%s; %d of %d trials done",
            frozen.number,
            trial_label(frozen),
            f": {shown_values}" if shown_values else "",
            done,
            self.options.n_trials,
        )

    def run_dir(self, overrides: list[str], number: int) -> str | None:
        """Where Hydra's launcher will run trial ``number`` (as :meth:`relative` writes it), if known."""
        try:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(config):
                config.hydra.job.id = config.hydra.job.num = number
            return self.relative(Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir))
        except Exception:  # e.g. a subdir that only resolves inside the run: the retry runs it again
            return None

    def finished_run(
        self, storage: RDBStorage, study: optuna.Study, trial: Trial
    ) -> tuple[str, Mapping[str, Any]] | None:
        """The run dir and record of the trial this one retries, when that run finished and only its
        worker's tell was lost (killed in between): its result is this trial's, not run again."""
        study_id = storage.get_study_id_from_name(study.study_name)
        frozen = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        with optuna_notes_ignored():
            history = RetryHeartbeatStaleTrialCallback.retry_history(frozen)
        run_dir = frozen.user_attrs.get(RUN_DIR)  # a retry copies the attributes of the trial it retries
        if not history or not run_dir:
            return None
        path = Path(self.config.hydra.sweep.dir) / run_dir / "metrics.json"
        try:
            written, record = path.stat().st_mtime, json.loads(path.read_text())
        except (OSError, ValueError):  # not finished, or run on another machine: run it again
            return None
        retried = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, history[-1]))
        started = retried.datetime_start  # the asking worker's clock: this machine's, as the run dir is
        if started is not None and written < started.timestamp():  # another study's run in that dir
            return None
        if not isinstance(record, Mapping) or "status" not in record:
            return None
        log.info(
            "trial %d retries trial %d, whose run in %s finished before its worker died: its result, "
            "not run again",
            trial.number,
            history[-1],
            run_dir,
        )
        return run_dir, record

    def tell(
        self,
        study: optuna.Study,
        storage: RDBStorage,
        trial: Trial,
        state: TrialState,
        values: list[float] | None,
        attrs: dict[str, Any],
    ) -> optuna.trial.FrozenTrial:
        """Tell the study how the trial ended, with ``attrs`` (None: left out). When the trial was
        failed meanwhile (this worker stalled past the grace period, and another one took it for dead),
        the result is recorded all the same, see :meth:`record_late`."""
        attrs = {key: value for key, value in attrs.items() if value is not None}
        try:
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            frozen = study.tell(trial, values, state=state, skip_if_finished=True)
            if frozen.state == state and frozen.user_attrs.get(ERROR) == attrs.get(ERROR):
                return frozen
        except UpdateFinishedTrialError:
            pass
        return self.record_late(study, storage, trial.number, state, values, attrs)

    def record_late(
        self,
        study: optuna.Study,
        storage: RDBStorage,
        number: int,
        state: TrialState,
        values: list[float] | None,
        attrs: dict[str, Any],
    ) -> optuna.trial.FrozenTrial:
        """Record the result of trial ``number``, failed for a lapsed heartbeat while its run went on:
        in the trial queued to run its parameters again, if no worker has taken that one yet (then it
        does not run), else in a new trial."""
        study_id = storage.get_study_id_from_name(study.study_name)
        attrs = {**attrs, LATE: number}
        for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            with optuna_notes_ignored():
                retried = RetryHeartbeatStaleTrialCallback.retry_history(waiting)[-1:] == [number]
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, waiting.number)
            if retried and storage.set_trial_state_values(trial_id, TrialState.RUNNING):  # taken: by us
                for key, value in attrs.items():
                    storage.set_trial_user_attr(trial_id, key, value)
                frozen = study.tell(waiting.number, values, state=state)
                break
        else:
            original = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number))
            study.add_trial(
                optuna.trial.create_trial(
                    state=state,
                    values=values,
                    params=original.params,
                    distributions=original.distributions,
                    user_attrs={**original.user_attrs, **attrs},
                )
            )
            frozen = max(
                (t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(LATE) == number),
                key=lambda t: t.number,
            )
        log.warning(
            "trial %d was failed while it ran (no heartbeat for %d s: this worker stalled); its result "
            "is recorded as trial %d",
            number,
            self.options.grace_period,
            frozen.number,
        )
        return frozen

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
        return self.record_outcome(record)

    def record_outcome(self, record: Any) -> tuple[TrialState, list[float] | None, str | None]:
        """How a run ended, from its run record (``metrics.json``)."""
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


def give_heartbeats(storage: RDBStorage, study_id: int, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Record one heartbeat for each running trial that never had one (its worker died between the ask
    and the first beat): Optuna then fails it after the grace period and its parameters run again, like
    every trial whose worker died. A live worker beats on; this only starts the clock."""
    for trial in trials:
        if trial.state != TrialState.RUNNING or trial.user_attrs.get(HEARTBEAT) == trial.number:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.record_heartbeat(trial_id)
            storage.set_trial_user_attr(trial_id, HEARTBEAT, trial.number)
        except UpdateFinishedTrialError:  # it finished meanwhile
            continue
        log.info("trial %d had no heartbeat (its worker died before the first, or is starting)", trial.number)


def taken(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that finished and counts, or runs, or waits to run."""
    return counts_towards_n_trials(trial) or trial.state in (TrialState.RUNNING, TrialState.WAITING)


def hydra_quoted(text: str) -> str:
    """``text`` as a quoted value of a Hydra override."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def built(option: str, config: Any, **kwargs: Any) -> Any:
    """``hydra.sweeper.<option>`` (the sampler or the pruner) instantiated; a value Optuna refuses ends
    in one line naming the option and its values."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as err:
        values = " ".join(f"{k}={v}" for k, v in config.items() if k != "_target_")
        raise DlforgeError(
            f"hydra.sweeper.{option} ({values}): {first_line(err.__cause__ or err)}; "
            f"check those options of {config._target_}"
        ) from None
