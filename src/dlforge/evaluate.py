"""Test a checkpoint on a data set: ``python -m dlforge.evaluate ckpt_path=... data=mnist``.

Writes ``metrics.json`` (and the model's test pictures, e.g. the confusion matrix) in its run dir.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from dlforge.callbacks import ProgressBar, SampleQualityMonitor
from dlforge.checkpoint import check_data_fits, load_model
from dlforge.cli import hydra_entry
from dlforge.outputs import plain_metrics, write_json
from dlforge.train import instantiate_group

log = logging.getLogger("dlforge")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.ckpt_path`` (weights only), test it on ``cfg.data`` and write ``metrics.json``."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = load_model(cfg.ckpt_path)
    datamodule = instantiate(cfg.data)
    if hasattr(datamodule, "adopt_spec"):  # text: encode with the checkpoint's vocabulary
        datamodule.adopt_spec(model.hparams.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    choice = HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None
    check_data_fits(model, datamodule.spec, choice)
    callbacks = [ProgressBar(), SampleQualityMonitor(cfg.quality_classifier, cfg.quality_samples)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=instantiate_group(cfg.logger) or False)
    start = time.perf_counter()
    trainer.test(model, datamodule=datamodule)
    summary = {
        "status": "ok",
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "model": model.kind,
        "data": choice,
        "metrics": plain_metrics(trainer.callback_metrics),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
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
