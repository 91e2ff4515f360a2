"""Training: config -> data module -> model -> trainer -> run dir (``python train.py ...``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from torchmetrics import Metric

from dlforge.cli import hydra_entry
from dlforge.errors import DlforgeError
from dlforge.outputs import plain_metrics, write_json
from dlforge.speed import keep_freed_memory

log = logging.getLogger("dlforge")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group holding named ``_target_`` nodes (callbacks, loggers)."""
    if not group:
        return []
    return [
        instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node
    ]


def compile_networks(model: pl.LightningModule) -> None:
    """``torch.compile`` each network of the model in place (state-dict keys, so checkpoints, unchanged)."""
    for child in model.children():
        if not isinstance(child, Metric) and any(True for _ in child.parameters()):
            child.compile()


def build_run(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """Compose the pieces of a run; the model is built from what the data module hands over."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    try:
        # the data's hand-off (vocabulary, embedding matrix) goes to the class directly, not through
        # OmegaConf, which would copy it node by node
        build_model = instantiate(cfg.model, _partial_=True, _recursive_=False, _convert_="all")
        model = build_model(**datamodule.model_kwargs())
    except (InstantiationException, TypeError, ValueError) as err:
        cause = (err.__cause__ or err) if isinstance(err, InstantiationException) else err
        raise DlforgeError(f"cannot build the model from model=...: {type(cause).__name__}: {cause}") from err
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
        datamodule.channels_last = True
    if cfg.get("compile"):
        compile_networks(model)
    callbacks: list[Callback] = instantiate_group(cfg.get("callbacks"))
    loggers: list[Logger] = instantiate_group(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def checkpoint_paths(trainer: pl.Trainer) -> dict[str, str | None]:
    """Where the checkpoint callback put the best and the last checkpoint (None without one)."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint):
        return {"best_checkpoint": None, "last_checkpoint": None}
    return {
        "best_checkpoint": callback.best_model_path or None,
        "last_checkpoint": callback.last_model_path or None,
    }


def run_summary(
    cfg: DictConfig, trainer: pl.Trainer, metrics: dict[str, Any], wall_time: float
) -> dict[str, Any]:
    """The content of ``metrics.json``: every metric's last logged value plus run facts."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    return {
        "status": "ok",
        "experiment": choices.get("experiment"),
        "model": choices.get("model"),
        "data": choices.get("data"),
        "reference": OmegaConf.to_container(cfg.reference, resolve=True) if cfg.get("reference") else None,
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        "metrics": plain_metrics(metrics),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "wall_time_s": round(wall_time, 3),
        "device": f"{trainer.strategy.root_device.type} x{trainer.world_size}",
        "precision": str(trainer.precision),
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and/or test as the config says; write ``config.yaml`` and ``metrics.json`` in the run dir."""
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    if cfg.get("keep_freed_memory"):
        keep_freed_memory()
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    datamodule, model, trainer = build_run(cfg)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    checkpoints = checkpoint_paths(trainer)
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics.update(trainer.callback_metrics)
        checkpoints = checkpoint_paths(trainer)  # testing restores older callback state: read them now
    if cfg.test:
        best = checkpoints["best_checkpoint"]
        ckpt = best if cfg.train else cfg.get("ckpt_path")
        if cfg.train and not best:
            log.info("no best checkpoint recorded: testing the final weights")
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)
        metrics.update(trainer.callback_metrics)
    summary = {**run_summary(cfg, trainer, metrics, time.perf_counter() - start), **checkpoints}
    if trainer.is_global_zero:
        write_json(out / "metrics.json", summary)
        log.info("run dir: %s", out.resolve())
    return summary


@hydra_entry("train")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    if summary["metrics"].get(metric) is None:
        raise DlforgeError(
            f"optimized_metric={metric} was not logged; logged: {', '.join(summary['metrics'])}"
        )
    return summary["metrics"][metric]  # the value a Hydra sweeper (e.g. Optuna) optimizes


if __name__ == "__main__":
    main()
