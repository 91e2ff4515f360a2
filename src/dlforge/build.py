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
from pytorch_lightning.plugins.environments import LightningEnvironment
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


def prepare_data(
    datamodule: DataModule, stage: str, trainer: pl.Trainer | None = None, per_node: bool = True
) -> None:
    """Download and set up the data before the model exists: the model is built from what the data
    module hands over (``model_kwargs``).

    One process (or no ``trainer``): rank 0 downloads, then sets up. Every process of a distributed run
    started at once (by torchrun, ``srun``, or one process a node): in three turns, each closed by a
    barrier, so that no two processes write a download or a cache at once: global rank 0, then the
    first process of every other node (node-local storage), then the others. ``per_node`` (Lightning's
    ``prepare_data_per_node``, also for its own call in ``fit``): each node's first process downloads,
    else global rank 0 alone (storage every node shares). Where Lightning starts a node's other
    processes itself (``trainer.devices`` > 1 without a launcher), they start later, in ``fit``: this
    process is its node's first and goes alone, as it always did.
    """
    datamodule.prepare_data_per_node = per_node
    if trainer is None or trainer.world_size == 1:
        if rank_zero_only.rank == 0:
            datamodule.prepare_data()
        datamodule.setup(stage)
        return
    first_of_node = trainer.local_rank == 0
    preparer = first_of_node if per_node else trainer.global_rank == 0
    launched = not isinstance(trainer.strategy.cluster_environment, LightningEnvironment)
    if not launched and trainer.num_devices > 1:
        if not per_node and trainer.node_rank > 0:
            raise DlforgeError(
                "prepare_data_per_node=false (one download for all nodes) needs every process started "
                "at once: launch with torchrun or srun, or set prepare_data_per_node=true"
            )
        if first_of_node:
            datamodule.prepare_data()
        datamodule.setup(stage)
        return
    # the process group, early (Lightning's fit finds it there); a turn may take up to its timeout (30
    # minutes): a longer download is better done beforehand, by one process
    trainer.strategy.setup_environment()
    turn = 0 if trainer.global_rank == 0 else 1 if first_of_node else 2
    for current in range(3):
        if turn == current:
            if preparer:
                datamodule.prepare_data()
            datamodule.setup(stage)
        trainer.strategy.barrier(f"dlforge.prepare_data.{current}")


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
