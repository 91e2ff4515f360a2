"""Train a model: ``python train.py model=lenet data=mnist trainer.max_epochs=5`` (see README.md).

The run itself is :func:`dlforge.training.train`; this command adds what belongs to a command: glibc's
malloc setting, Hydra's run dir and overrides, a search trial's pruning.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from dlforge.build import model_options
from dlforge.cli import hydra_entry, task_overrides
from dlforge.errors import DlforgeError
from dlforge.speed import keep_freed_memory
from dlforge.training import train

log = logging.getLogger(__name__)


def search_callbacks(cfg: DictConfig) -> list[Callback]:
    """Optuna's pruning callback on the model's monitored metric, when this run is a trial of a search
    with a pruner (``hparams_search=``, docs/search.md). Reads Hydra's state: for :func:`main` only."""
    if not HydraConfig.initialized() or not HydraConfig.get().sweeper.get("pruner"):
        return []
    from dlforge.pruning import trial_pruning  # Optuna's storage and Lightning integration: searches only

    options = model_options(cfg)
    pruning = trial_pruning(options.get("monitor"), options.get("monitor_mode"))
    return [pruning] if pruning else []


def unshared_run_dir(cfg: DictConfig) -> str | None:
    """What is wrong when the processes of one run were started apart (on several nodes, by torchrun or
    ``srun``) and each would name its run dir by its own clock; None when that cannot happen (one
    process, a multirun's launcher, Lightning's own processes, or ``hydra.run.dir`` given). Reads
    Hydra's state: for :func:`main` only."""
    hydra_cfg = HydraConfig.get()
    given = any(o.startswith("hydra.run.dir=") for o in hydra_cfg.overrides.hydra)
    if hydra_cfg.mode != RunMode.RUN or given:
        return None
    nodes = int(cfg.trainer.get("num_nodes") or 1)
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "TORCHELASTIC_RUN_ID" in os.environ
    srun = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1
    if nodes == 1 and not torchrun and not srun:
        return None
    started = f"trainer.num_nodes={nodes}" if nodes > 1 else "torchrun" if torchrun else "srun"
    return (
        f"{started}: each process would name the run dir by its own clock; give them one, the same on "
        "every node and on storage they all see: hydra.run.dir=outputs/train/<name> (e.g. the job's id)"
    )


@hydra_entry("train")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Train; return the run record, from which a search's sweeper reads the ``optimized_metric``.

    The command's own settings, which :func:`train` leaves to its caller: glibc's malloc keeps freed
    memory (``keep_freed_memory``), and what Hydra holds (the run dir, the command line's overrides, a
    search trial's pruning) is handed over as arguments.
    """
    problem = unshared_run_dir(cfg)
    if problem:
        raise DlforgeError(problem)
    if cfg.get("keep_freed_memory"):
        keep_freed_memory()
    summary = train(
        cfg,
        search_callbacks(cfg),
        output_dir=cfg.paths.output_dir,  # Hydra's run dir unless the command line set another
        overrides=task_overrides(),
        choices=dict(HydraConfig.get().runtime.choices),
    )
    if cfg.get("optimized_metric") and summary["status"] == "ok":
        from dlforge.study import metric_names, objective_values

        try:
            objective_values(summary, metric_names(cfg.optimized_metric))
        except DlforgeError as err:  # a search fails now; a single run is complete and only says so
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise
            log.warning("%s", err)
    return summary


if __name__ == "__main__":
    main()
