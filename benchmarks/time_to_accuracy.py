"""Time to accuracy: wall time until a model first reaches a test accuracy, across batch sizes and threads.

    DATA_DIR=../shared/data python -m benchmarks.time_to_accuracy [--cases lenet fashion textcnn]
        [--batch-sizes 64 128 256] [--threads 1 2] [--overrides data.on_device=true ...]

Each run trains as ``train.py`` would (same config, Lightning path, no validation split) and, after
every epoch, measures accuracy on the test set; the clock (training time only, test passes excluded)
stops when the target is reached, or the run ends at ``--max-epochs``. On a GPU it trains with
``trainer=gpu`` (16-mixed); ``--overrides`` adds config overrides to every run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from pytorch_lightning.callbacks import Callback

from benchmarks.common import table, write
from dlforge import CONF_DIR
from dlforge.build import lightning_advice_ignored
from dlforge.speed import keep_freed_memory
from dlforge.training import build_run

GLOVE = "${paths.data_dir}/glove/glove.6B.50d.top50k.txt"
CASES: dict[str, tuple[list[str], float]] = {
    "lenet": (["model=lenet", "data=mnist"], 0.990),
    "fashion": (["experiment=fashion_mnist_cnn"], 0.910),
    "textcnn": (["model=textcnn_seed000", "data=mr", f"data.glove.path={GLOVE}"], 0.750),
}


class TestAccuracyClock(Callback):
    """Measure test accuracy after each epoch; stop the clock and the run at the target."""

    def __init__(self, datamodule: Any, target: float) -> None:
        self.datamodule, self.target = datamodule, target
        self.train_seconds = 0.0
        self.epoch_start = 0.0
        self.history: list[tuple[int, float, float]] = []  # epoch, seconds, accuracy
        self.reached: tuple[int, float, float] | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.train_seconds += time.perf_counter() - self.epoch_start
        accuracy = test_accuracy(pl_module, self.datamodule)
        self.history.append((trainer.current_epoch + 1, self.train_seconds, accuracy))
        if accuracy >= self.target and self.reached is None:
            self.reached = self.history[-1]
            trainer.should_stop = True


@torch.no_grad()
def test_accuracy(model: pl.LightningModule, datamodule: Any) -> float:
    was_training = model.training
    model.eval()
    correct = total = 0
    for inputs, labels in datamodule.test_dataloader():
        inputs, labels = inputs.to(model.device), labels.to(model.device)
        if hasattr(datamodule, "preprocess"):
            inputs = datamodule.preprocess(inputs)
        correct += int((model(inputs).argmax(dim=1) == labels).sum())
        total += len(labels)
    model.train(was_training)
    return correct / total


def run(
    case: str, batch_size: int, threads: int, max_epochs: int, extra: Sequence[str] = ()
) -> dict[str, Any]:
    overrides, target = CASES[case]
    torch.set_num_threads(threads)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                f"data.batch_size={batch_size}",
                "data.val_size=0",
                "trainer=cpu" if not torch.cuda.is_available() else "trainer=gpu",
                *extra,
            ],
        )
    cfg.paths.output_dir = tempfile.mkdtemp(prefix="tta_")
    if cfg.keep_freed_memory:  # as train.py does
        keep_freed_memory()
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule, model, _ = build_run(cfg)
    clock = TestAccuracyClock(datamodule, target)
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_epochs=max_epochs,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    with lightning_advice_ignored():
        trainer.fit(model, datamodule=datamodule)
    epoch, seconds, accuracy = clock.reached or clock.history[-1]
    return {
        "case": case,
        "target": target,
        "batch_size": batch_size,
        "threads": threads,
        "overrides": list(extra),
        "reached": clock.reached is not None,
        "epochs": epoch,
        "train_seconds": seconds,
        "test_acc": accuracy,
        "history": clock.history,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides for every run")
    args = parser.parse_args()
    results, rows = [], []
    for case in args.cases:
        for threads in args.threads:
            for batch_size in args.batch_sizes:
                r = run(case, batch_size, threads, args.max_epochs, args.overrides)
                results.append(r)
                rows.append(
                    [
                        case,
                        f"{r['target']:.1%}",
                        batch_size,
                        threads,
                        f"{r['train_seconds']:.0f} s"
                        if r["reached"]
                        else f"not in {r['train_seconds']:.0f} s",
                        r["epochs"],
                        f"{r['test_acc']:.2%}",
                    ]
                )
                print(rows[-1], flush=True)
    print(table(["case", "target", "batch", "threads", "time to target", "epochs", "test acc"], rows))
    print("wrote", write("time_to_accuracy_" + "_".join(args.cases), {"results": results}))


if __name__ == "__main__":
    main()
