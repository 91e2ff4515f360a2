"""Test a checkpoint on a data set: ``python -m dlforge.evaluate ckpt_path=... data=mnist``.

Writes ``metrics.json`` (and the model's test pictures, e.g. the confusion matrix) in its run dir.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from dlforge.build import build_trainer, lightning_advice_ignored, prepare_data
from dlforge.checkpoint import check_same_data, load_model
from dlforge.cli import hydra_entry
from dlforge.outputs import run_record, write_json

log = logging.getLogger("dlforge")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.ckpt_path`` (weights only), test it on ``cfg.data`` and write ``metrics.json``."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = load_model(cfg.ckpt_path)
    datamodule = instantiate(cfg.data)
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
    evaluate(cfg)


if __name__ == "__main__":
    main()
