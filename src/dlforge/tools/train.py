"""Train a model: ``python train.py model=lenet data=mnist trainer.max_epochs=5`` (see README.md).

The run itself is :func:`dlforge.training.train`; this command adds what belongs to a command: glibc's
malloc setting, Hydra's run dir and overrides, a search trial's pruning.
"""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from dlforge.build import model_options
from dlforge.cli import hydra_entry, task_overrides
from dlforge.speed import keep_freed_memory
from dlforge.training import train


def search_callbacks(cfg: DictConfig) -> list[Callback]:
    """Optuna's pruning callback on the model's monitored metric, when this run is a trial of a search
    with a pruner (``hparams_search=``, docs/search.md). Reads Hydra's state: for :func:`main` only."""
    if not HydraConfig.initialized() or not HydraConfig.get().sweeper.get("pruner"):
        return []
    from dlforge.pruning import trial_pruning  # Optuna's storage and Lightning integration: searches only

    options = model_options(cfg)
    pruning = trial_pruning(options.get("monitor"), options.get("monitor_mode"))
    return [pruning] if pruning else []


@hydra_entry("train")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Train; return the run record, from which a search's sweeper reads the ``optimized_metric``.

    The command's own settings, which :func:`train` leaves to its caller: glibc's malloc keeps freed
    memory (``keep_freed_memory``), and what Hydra holds (the run dir, the command line's overrides, a
    search trial's pruning) is handed over as arguments.
    """
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

        objective_values(summary, metric_names(cfg.optimized_metric))  # fail now if one is missing
    return summary


if __name__ == "__main__":
    main()
