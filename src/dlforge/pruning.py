"""Pruning a search's trial: Optuna's Lightning callback on the model's monitored metric."""

from __future__ import annotations

import optuna
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from optuna_integration import PyTorchLightningPruningCallback

from dlforge.errors import DlforgeError
from dlforge.study import SWEEPER, open_storage, storage_url


class TrialPruning(PyTorchLightningPruningCallback, pl.Callback):
    """Optuna's Lightning pruning callback (optuna-integration) as a callback of ``pytorch_lightning``:
    after each validation it reports the monitored metric to the trial and raises
    :class:`optuna.TrialPruned` when the study's pruner says so."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check_pruned()  # under DDP the callback only stops the training: raise TrialPruned now


def trial_pruning(monitor: str | None, mode: str | None) -> TrialPruning | None:
    """The pruning callback of this run when it is a trial of a search with a pruner, else None."""
    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    sweeper = hydra.sweeper
    if sweeper.get("_target_") != SWEEPER or not sweeper.get("pruner"):
        return None
    if not monitor:
        raise DlforgeError("pruning needs the model's monitored metric (model.monitor); this model has none")
    storage = open_storage(storage_url(sweeper.storage, hydra.sweep.dir))
    study = optuna.load_study(
        study_name=sweeper.study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),  # this process only reports; the workers sample
        pruner=instantiate(sweeper.pruner),
    )
    direction = {"max": optuna.study.StudyDirection.MAXIMIZE, "min": optuna.study.StudyDirection.MINIMIZE}
    if len(study.directions) == 1 and direction.get(mode or "max") != study.direction:
        raise DlforgeError(
            f"pruning compares model.monitor={monitor} (mode {mode}) with a study that does the opposite "
            f"({study.direction.name.lower()}); set model.monitor_mode or hydra.sweeper.direction to agree"
        )
    study_id = storage.get_study_id_from_name(sweeper.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, hydra.job.num)
    return TrialPruning(optuna.trial.Trial(study, trial_id), monitor)
