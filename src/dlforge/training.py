"""A run: config -> data module -> model -> trainer -> run dir. ``python train.py`` (``dlforge.train``) is
its command; benchmarks, cross-validation and tests call :func:`train` and :func:`build_run` here."""

from __future__ import annotations

import copy
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna import TrialPruned
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger
from torchmetrics import Metric

from dlforge.build import (
    build_trainer,
    check_optimizer_choice,
    lightning_advice_ignored,
    model_options,
    prepare_data,
)
from dlforge.checkpoint import check_resumable, checkpoint_paths, last_checkpoint_file
from dlforge.data.datamodule import DataModule
from dlforge.errors import DlforgeError, first_line
from dlforge.models import DlforgeModule, build_model, model_class
from dlforge.outputs import run_record, write_json

log = logging.getLogger("dlforge")


def compile_networks(model: pl.LightningModule) -> None:
    """``torch.compile`` each network of the model in place (state-dict keys, so checkpoints, unchanged)."""
    for child in model.children():
        if not isinstance(child, Metric) and any(True for _ in child.parameters()):
            child.compile()


def build_run(
    cfg: DictConfig, extra_callbacks: Sequence[Callback] = (), overrides: Sequence[str] = ()
) -> tuple[DataModule, DlforgeModule, pl.Trainer]:
    """Compose the pieces of a run; the model is built from what the data module hands over
    (``extra_callbacks``: the caller's, e.g. a benchmark's timed checkpoints or a search trial's pruning;
    ``overrides``: the command line's, to refuse ``optimizer=`` for a model that does not use it)."""
    options = model_options(cfg)
    kind = options.pop("kind")
    # the trainer first: in a distributed run it knows this process's ranks, which say who downloads
    trainer = build_trainer(cfg, model_class(kind), options, extra_callbacks=extra_callbacks)
    datamodule: DataModule = instantiate(cfg.data)
    prepare_data(datamodule, "fit", trainer, per_node=cfg.get("prepare_data_per_node", True))
    # the data's hand-off (vocabulary, embedding matrix) goes to the model as it is, not through OmegaConf
    model = build_model(kind, **options, **datamodule.model_kwargs())
    check_optimizer_choice(model, list(overrides))
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        compile_networks(model)
    model.data_config = OmegaConf.to_container(cfg.data, resolve=True)  # kept in its checkpoints
    return datamodule, model, trainer


def resume_path(ckpt_path: str | None, trainer: pl.Trainer) -> str | None:
    """``ckpt_path`` as Lightning takes it: ``last`` is this run dir's ``last.ckpt`` when there is one
    (None: start from the beginning), as global rank 0 sees it, so that every rank resumes alike."""
    if ckpt_path != "last":
        return ckpt_path
    last = last_checkpoint_file(trainer)
    return trainer.strategy.broadcast(str(last) if last and last.is_file() else None)


def lost_contact(err: BaseException) -> bool:
    """Whether ``err`` is a collective's failure: another process of the run stopped answering."""
    text = str(err)
    return isinstance(err, torch.distributed.DistError) or any(
        word in text for word in ("gloo", "NCCL", "Connection closed", "Connection reset")
    )


def silent_ranks(trainer: pl.Trainer, wait_s: float = 5.0) -> list[int] | None:
    """After a collective failed: the ranks that do not answer. Each process left marks itself in the
    run's rendezvous store (``MASTER_ADDR:MASTER_PORT``) and waits up to ``wait_s`` for the others;
    None when the store is gone with its host (global rank 0, without torchrun's agent to hold it)."""
    env = trainer.strategy.cluster_environment
    prefix = f"dlforge/answering/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
    try:
        timeout = timedelta(seconds=wait_s)
        store = torch.distributed.TCPStore(env.main_address, env.main_port, is_master=False, timeout=timeout)
        store.set(f"{prefix}{trainer.global_rank}", "1")
        deadline = time.monotonic() + wait_s
        while True:
            silent = [r for r in range(trainer.world_size) if not store.check([f"{prefix}{r}"])]
            if not silent or time.monotonic() > deadline:
                return silent
            time.sleep(0.1)
    except RuntimeError:  # torch's store errors (DistStoreError, DistNetworkError) are RuntimeErrors
        return None


def lost_node(trainer: pl.Trainer, err: BaseException) -> DlforgeError | None:
    """The one-line error for a distributed run that lost a process (its node, or a killed process):
    which rank, and how to resume; None when every rank still answers (some other failure)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun's agents restart the job (while restarts are left)
        who = "another rank"
    elif (silent := silent_ranks(trainer)) == []:
        return None
    else:
        who = f"rank {', '.join(map(str, silent))}" if silent else "rank 0 (the main node: its store is gone)"
    last = checkpoint_paths(trainer)["last_checkpoint"]
    resume = f"ckpt_path={last}" if last else "no ckpt_path (no checkpoint was written yet)"
    why = re.sub(r"\[\S+:\d+\] ", "", first_line(err))  # gloo's source line
    return DlforgeError(
        f"{who} of {trainer.world_size} stopped answering at step {trainer.global_step} "
        f"(epoch {trainer.current_epoch}; {why[:100]}): a node lost or a process killed; "
        f"resume with the same command on every node and {resume}, or launch with torchrun "
        "--max-restarts=1 and ckpt_path=last to restart by itself"
    )


def train(
    cfg: DictConfig,
    extra_callbacks: Sequence[Callback] = (),
    *,
    output_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    choices: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit and/or test as the config says; write ``config.yaml`` and ``metrics.json`` in the run dir
    (``fit_seconds``: the time ``trainer.fit`` took, validation included).

    ``output_dir``: the run dir (None: ``cfg.paths.output_dir``, which must then be a path, as outside a
    Hydra run ``${hydra:...}`` has nothing to resolve); it replaces ``paths.output_dir`` in a copy of
    ``cfg``, so the checkpoints and logs go there too (where the config says ``${paths.output_dir}``, as
    conf/ does; a saved, resolved ``config.yaml`` names its own run dir). ``overrides``: the command
    line's, if any (``optimizer=`` is refused for a model with one optimizer per network); with
    ``choices`` (the config's group choices: ``model``, ``data``, ``experiment``) they go into
    ``metrics.json``. Nothing here
    reads Hydra's global state or changes the process's malloc: :func:`main` does both for the command.
    """
    reference = cfg.get("reference")
    if reference is not None and not isinstance(reference, DictConfig):
        raise DlforgeError(
            f"reference={reference}: takes a mapping, e.g. reference={{source:'the paper',metric:test/acc,"
            "value:0.99,setting:'10 epochs'}, or null"
        )
    if output_dir is not None:
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    datamodule, model, trainer = build_run(cfg, extra_callbacks, overrides)
    ckpt_path = resume_path(cfg.get("ckpt_path"), trainer)
    if cfg.get("ckpt_path") == "last" and not ckpt_path and not cfg.train:
        raise DlforgeError(f"ckpt_path=last: no last.ckpt in {out} to test; pass ckpt_path=<a checkpoint>")
    if ckpt_path:
        check_resumable(model, ckpt_path)
    if trainer.is_global_zero:
        for folder in {out, Path(trainer.default_root_dir)}:  # callbacks write pictures to the latter
            folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    checkpoints = checkpoint_paths(trainer)
    status = "ok"
    fit_seconds = None
    if cfg.train:
        try:
            with lightning_advice_ignored():
                trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        except TrialPruned as pruned:  # a search's pruner stopped this trial: not an error
            log.info("%s", pruned)
            status = "pruned"
        except RuntimeError as err:
            lost = lost_node(trainer, err) if trainer.world_size > 1 and lost_contact(err) else None
            if lost is None:
                raise
            raise lost from err
        fit_seconds = round(time.perf_counter() - start, 3)
        metrics.update(trainer.callback_metrics)
        checkpoints = checkpoint_paths(trainer)  # testing restores older callback state: read them now
    if cfg.test and status == "ok":
        best = checkpoints["best_checkpoint"]
        ckpt = best if cfg.train else ckpt_path
        if cfg.train and not best:
            log.info("no best checkpoint recorded: testing the final weights")
        with lightning_advice_ignored():
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)
        metrics.update(trainer.callback_metrics)
    summary = run_record(
        "train",
        metrics,
        time.perf_counter() - start,
        status=status,
        choices=choices or {},
        overrides=overrides,
        kind=model.kind,
        reference=OmegaConf.to_container(cfg.reference, resolve=True) if cfg.get("reference") else None,
        # epochs trained: a trial is pruned after its epoch's validation, before the epoch count moves on
        epochs=trainer.current_epoch + (status == "pruned"),
        global_step=trainer.global_step,
        fit_seconds=fit_seconds,
        device=f"{trainer.strategy.root_device.type} x{trainer.world_size}",
        precision=str(trainer.precision),
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        **checkpoints,
    )
    if trainer.is_global_zero:
        write_json(out / "metrics.json", summary)
        log.info("run dir: %s", out.resolve())
        for logger in trainer.loggers:  # a W&B run ends with its run, flushed (a sweep trial: a new one)
            if isinstance(logger, WandbLogger):
                logger.experiment.finish()
    return summary
