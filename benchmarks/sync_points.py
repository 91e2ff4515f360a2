"""Host-device synchronizations per training step, and where they come from (GPU only).

    DATA_DIR=../shared/data python -m benchmarks.sync_points [--cases lenet textcnn dcgan] [--steps 5]

A synchronization (``.item()``, ``float(tensor)``, a blocking host-to-device copy, ``nonzero``)
makes the CPU wait for the GPU's queue to drain, so the next kernels cannot be queued behind the
running ones; on small models, where the CPU's launching is the bottleneck, each one costs a
visible part of a step. The run is ``train.py``'s (its callbacks, logger and progress bar,
``trainer=gpu``); after a few warm-up steps ``torch.cuda.set_sync_debug_mode`` reports every
synchronization for ``--steps`` steps, counted by the first frame outside torch.
"""

from __future__ import annotations

import argparse
import tempfile
import traceback
import warnings
from collections import Counter
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from pytorch_lightning.callbacks import Callback

from benchmarks.common import table, write
from benchmarks.overhead import CASES
from dlforge import CONF_DIR
from dlforge.build import lightning_advice_ignored
from dlforge.training import build_run


def call_site(stack: list[traceback.FrameSummary], depth: int = 7) -> str:
    """The innermost ``depth`` frames outside torch: the code that asked for the sync."""
    sites = []
    for frame in reversed(stack):
        name = frame.filename
        if "site-packages/torch/" in name or name.endswith("warnings.py"):
            continue
        short = name.split("site-packages/")[-1].split("/src/")[-1]
        sites.append(f"{short}:{frame.lineno} ({frame.name})")
        if len(sites) == depth:
            break
    return " < ".join(sites) or "torch"


class SyncCounter(Callback):
    """Count the synchronizations of training batches ``warmup`` .. ``warmup + steps - 1``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.sites: Counter[str] = Counter()
        self.batches = 0
        self._show = warnings.showwarning

    def _record(self, message: Any, *args: Any) -> None:
        if "synchroniz" in str(message):
            self.sites[call_site(traceback.extract_stack()[:-1])] += 1
        else:
            self._show(message, *args)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.batches == self.warmup:
            warnings.simplefilter("always")
            warnings.showwarning = self._record
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.batches += 1
        if self.batches == self.warmup + self.steps:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = self._show
            trainer.should_stop = True


def count(case: str, warmup: int, steps: int) -> Counter[str]:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["trainer=gpu", "data.val_size=0.05", *CASES[case]])
    cfg.paths.output_dir = tempfile.mkdtemp(prefix="sync_")
    cfg.trainer.limit_val_batches = 0
    cfg.trainer.num_sanity_val_steps = 0
    datamodule, model, trainer = build_run(cfg)
    counter = SyncCounter(warmup, steps)
    trainer.callbacks.append(counter)
    with lightning_advice_ignored():
        trainer.fit(model, datamodule=datamodule)
    return counter.sites


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--warmup", type=int, default=10, help="batches before counting")
    parser.add_argument("--steps", type=int, default=5, help="batches counted")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("sync_points needs a CUDA GPU: there is nothing to synchronize with on a CPU")
    rows, results = [], []
    for case in args.cases:
        sites = count(case, args.warmup, args.steps)
        results.append({"case": case, "steps": args.steps, "sites": dict(sites)})
        rows += [[case, site, n / args.steps] for site, n in sites.most_common()] or [[case, "none", 0.0]]
        print(rows[-1], flush=True)
    print(table(["case", "synchronizing call", "per batch"], rows))
    print("wrote", write("sync_points", {"results": results}))


if __name__ == "__main__":
    main()
