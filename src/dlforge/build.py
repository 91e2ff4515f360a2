"""From config to the pieces of a run: trainer, data module, model and its callbacks (train and evaluate)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.warnings import PossibleUserWarning

from dlforge.callbacks import model_callbacks
from dlforge.data.datamodule import DataModule
from dlforge.errors import DlforgeError
from dlforge.models import DlforgeModule


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group holding named ``_target_`` nodes (callbacks, loggers)."""
    if not group:
        return []
    return [
        instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node
    ]


def build_trainer(
    cfg: DictConfig,
    model_cls: type[DlforgeModule],
    hparams: dict[str, Any],
    extra_callbacks: Sequence[Callback] = (),
) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with the config's callbacks and loggers, the pictures and side
    outputs of the model's family (:func:`~dlforge.callbacks.model_callbacks`, from its hyper-parameters)
    and the caller's ``extra_callbacks`` (a search trial's pruning)."""
    options = {
        key: cfg.get(key) for key in ("quality_classifier", "quality_samples", "quality_every_n_epochs")
    }
    family: list[Callback] = model_callbacks(model_cls, hparams, options)
    callbacks = [*instantiate_group(cfg.get("callbacks")), *family, *extra_callbacks]
    loggers = instantiate_group(cfg.get("logger"))
    extra: dict[str, Any] = {}
    if cfg.trainer.get("strategy") == "ddp" and model_cls.unused_parameters_in_backward:
        extra["strategy"] = "ddp_find_unused_parameters_true"  # e.g. a GAN: one network per backward
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)


#: Lightning's advice that does not apply to dlforge's loaders: in-memory tensor loaders gain nothing
#: from workers (docs/performance.md), and word2vec's epochs (an ``IterableDataset``) know their length.
LIGHTNING_ADVICE = (
    (r"The '\w+' does not have many workers", PossibleUserWarning),
    (r"Your `IterableDataset` has `__len__` defined", UserWarning),
)


@contextlib.contextmanager
def lightning_advice_ignored() -> Iterator[None]:
    """Drop :data:`LIGHTNING_ADVICE` while the block runs (around ``trainer.fit`` and ``trainer.test``);
    the process's warning filters are as they were afterwards."""
    with warnings.catch_warnings():
        for message, category in LIGHTNING_ADVICE:
            warnings.filterwarnings("ignore", message, category)
        yield


def prepare_data(datamodule: DataModule, stage: str) -> None:
    """Download (in the first process only: rank 0 of a distributed run) and set up the data before the
    model exists: the model is built from what the data module hands over (``model_kwargs``)."""
    if rank_zero_only.rank == 0:
        datamodule.prepare_data()
    datamodule.setup(stage)


def model_options(cfg: DictConfig) -> dict[str, Any]:
    """The model config as plain data (``kind`` and the options of that kind)."""
    options = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(options, dict)
    return options


def check_optimizer_choice(model: DlforgeModule, overrides: list[str]) -> None:
    """A model without a single ``optimizer`` (GANs, pix2pix: one per network) refuses ``optimizer=``
    on the command line instead of silently ignoring it."""
    if "optimizer" in model.hparams:
        return
    chosen = [o for o in overrides if o.lstrip("+~").split("=")[0].split(".")[0] == "optimizer"]
    if chosen:
        names = " / ".join(f"model.{k}" for k in model.hparams if str(k).startswith("optimizer_"))
        raise DlforgeError(
            f"{chosen[0]}: this model has one optimizer per network and does not use the optimizer= group; "
            f"set {names} instead (e.g. model.optimizer_g.lr=1e-4)"
        )
