"""Test a checkpoint on a data set: ``python -m dlforge.evaluate ckpt_path=... data=mnist``.

Writes ``metrics.json`` (and the model's test pictures, e.g. the confusion matrix) in its run dir. The
data options come from the checkpoint (the split it trained on: seed, sizes, held-out speakers or
words); only where the data lives and how it is batched come from the command.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dlforge.build import build_trainer, lightning_advice_ignored, prepare_data
from dlforge.checkpoint import check_same_data, load_model, read_checkpoint
from dlforge.cli import hydra_entry, task_overrides
from dlforge.data.datamodule import LoaderOptions
from dlforge.errors import DlforgeError
from dlforge.outputs import run_record, write_json

log = logging.getLogger("dlforge")

#: Data options of this machine (where the data lives, how it is loaded): the command's. Every other data
#: option (the split: seed, sizes, held-out speakers or words; the batch sizes, which round the figures)
#: is the checkpoint's, unless the command names it and it does not change the split (:data:`FREE`).
LOCAL = {
    "data_dir",
    "cache_dir",
    "root",
    "path",
    "test_path",
    "paths",
    "folder",
    "download",
    "channels_last",
    *(field.name for field in dataclasses.fields(LoaderOptions)),
} - {"batch_size", "eval_batch_size"}
#: Options a ``data.<option>=`` override may change: they do not change the split.
FREE = {"batch_size", "eval_batch_size"}


def trained_data(cfg: DictConfig, trained: dict[str, Any] | None, overrides: Sequence[str]) -> DictConfig:
    """The data config to test on: the checkpoint's (``trained``), with the command's :data:`LOCAL`
    options and its :data:`FREE` overrides. A ``data.<option>=`` override that would change the split
    is refused; another difference (``seed=``, a default) is announced."""
    if trained is None:
        log.warning(
            "%s does not record the data it trained on (an older checkpoint): testing on data=%s as "
            "configured here (data.seed=%s)",
            cfg.ckpt_path,
            cfg.data.get("_target_", "?").rsplit(".", 1)[-1],
            cfg.data.get("seed"),
        )
        return cfg.data
    command = OmegaConf.to_container(cfg.data, resolve=True)
    if command.get("_target_") != trained.get("_target_"):
        log.warning(
            "testing on other data (%s) than the checkpoint trained on (%s): with its own split",
            command.get("_target_"),
            trained.get("_target_"),
        )
        return cfg.data
    given = {arg.lstrip("+~").split("=", 1)[0] for arg in overrides}
    changed: list[str] = []
    merged = merge_data(trained, command, "data", given, changed)
    if changed:
        log.info("testing on the split the checkpoint trained on: %s", ", ".join(changed))
    return OmegaConf.create(merged)


def merge_data(
    trained: dict[str, Any], command: dict[str, Any], prefix: str, given: set[str], changed: list[str]
) -> dict[str, Any]:
    """``trained`` with the command's :data:`LOCAL` options, :data:`FREE` overrides and new options,
    recursively; the keys the checkpoint overrules go into ``changed`` (``data.seed=7 (not 42)``)."""
    merged = dict(trained)
    for key, value in command.items():
        name = f"{prefix}.{key}"
        if key in LOCAL or key not in trained or (key in FREE and name in given):
            merged[key] = value
        elif isinstance(value, dict) and isinstance(trained[key], dict):
            merged[key] = merge_data(trained[key], value, name, given, changed)
        elif value != trained[key]:
            if name in given:
                raise DlforgeError(
                    f"{name}={value} would test on another split than the checkpoint trained on "
                    f"({name}={trained[key]}); leave it out: evaluate takes the data options from the "
                    "checkpoint"
                )
            changed.append(f"{name}={trained[key]} (not {value})")
    return merged


def evaluate(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load ``cfg.ckpt_path`` (weights only), test it on the data it trained on (see
    :func:`trained_data`; ``overrides``: the command line's) and write ``metrics.json``."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = load_model(cfg.ckpt_path)
    trained = read_checkpoint(cfg.ckpt_path)["dlforge"].get("data")
    datamodule = instantiate(trained_data(cfg, trained, overrides))
    datamodule.adopt_spec(model.hparams.data)  # text: encode with the checkpoint's vocabulary
    prepare_data(datamodule, "test")
    check_same_data(model, datamodule.spec, f"data={datamodule.name}")
    trainer = build_trainer(cfg, type(model), dict(model.hparams))
    start = time.perf_counter()
    with lightning_advice_ignored():
        trainer.test(model, datamodule=datamodule)
    summary = run_record(
        "evaluate",
        trainer.callback_metrics,
        time.perf_counter() - start,
        kind=model.kind,
        checkpoint=str(Path(cfg.ckpt_path).resolve()),
    )
    out = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        write_json(out / "metrics.json", summary)
        log.info("run dir: %s", out.resolve())
    return summary


@hydra_entry("evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg, task_overrides())


if __name__ == "__main__":
    main()
