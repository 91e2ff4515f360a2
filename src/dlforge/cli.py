"""Shared wiring for the Hydra command-line entry points (``train.py`` and ``python -m dlforge.<tool>``)."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from dlforge import CONF_DIR
from dlforge.errors import DlforgeError, first_line
from dlforge.outputs import run_record, write_json

log = logging.getLogger("dlforge")


def quiet_library_chatter() -> None:
    """Drop Lightning's advertising tips and the CSV logger's note about Hydra's files in the run dir."""
    # Lightning logs through whichever of its packages was imported last: `lightning` comes with
    # optuna-integration's pruning callback (searches)
    for package in ("pytorch_lightning", "lightning.pytorch"):
        logging.getLogger(f"{package}.utilities.rank_zero").addFilter(
            lambda record: not str(record.msg).startswith("💡 Tip")
        )
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Optuna's storage layer, loaded by the sweeper


def record_failure(err: BaseException) -> dict[str, Any]:
    """In a multirun: log the error, mark the job's ``metrics.json`` as failed, let the sweep go on.

    Returns that record, from which a search's sweeper records a failed trial.
    """
    hydra_cfg = HydraConfig.get()
    message = f"{type(err).__name__}: {first_line(err)}"
    log.error("job %s failed: %s", hydra_cfg.job.num, message, exc_info=not isinstance(err, DlforgeError))
    record = run_record(hydra_cfg.job.name, {}, status="failed", error=message)
    write_json(Path(hydra_cfg.runtime.output_dir) / "metrics.json", record)
    return record


def hydra_entry(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Turn ``task(cfg)`` into a Hydra main over ``conf/<config_name>.yaml``.

    A :class:`DlforgeError` becomes one line on stderr and exit status 2, instead of a traceback.
    In a multirun, a failing job (any error) is recorded as failed and the sweep goes on.
    """

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def guarded(cfg: DictConfig) -> Any:
            quiet_library_chatter()
            multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
            try:
                return task(cfg)
            except DlforgeError as err:
                if multirun:
                    return record_failure(err)
                print(f"error: {err}", file=sys.stderr, flush=True)
                sys.exit(2)
            except Exception as err:
                if multirun:
                    return record_failure(err)
                raise

        main = hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(guarded)

        @functools.wraps(task)
        def entry() -> Any:
            os.environ.setdefault("MPLBACKEND", "Agg")  # pictures go to files: no window system needed
            quiet_library_chatter()  # before Hydra loads its plugins
            return main()

        return entry

    return decorate


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, say how many jobs failed and how to tabulate them."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = [json.loads(p.read_text()).get("status") for p in sweep_dir.glob("*/metrics.json")]
        failed = statuses.count("failed")
        log.info(
            "sweep done: %d job(s), %d failed; table and plot: python -m dlforge.report %s",
            len(statuses),
            failed,
            sweep_dir,
        )
