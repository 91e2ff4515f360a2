"""Word2vec (skip-gram or CBOW with negative sampling) as a LightningModule."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from hydra.utils import instantiate
from torchmetrics import MeanMetric

from dlforge.errors import DlforgeError
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.registry import register_model


@register_model("word2vec")
class Word2Vec(DlforgeModule):
    """Word vectors trained by predicting words from their neighbours (``dlforge.nets.word2vec``).

    Training is word2vec's: the closed-form gradients of the summed negative-sampling loss of
    ``update_size`` centre words (:meth:`~dlforge.nets.word2vec.Word2VecNet.set_gradients`) go, as
    sparse gradients of the rows they touched, to the optimizer: plain SGD whose learning rate falls
    linearly over the run (word2vec's alpha 0.025 -> 0.0001), or any optimizer taking sparse
    gradients (SparseAdam, Adagrad). A training step's batch is applied in chunks of ``update_size``,
    one update after the other (word2vec updates after every word: a larger update scores worse), so
    the loop's per-step cost is paid once per batch; the learning rate steps once per batch, as
    gensim's alpha falls once per job of 10,000 words. With ``workers`` > 1 (word2vec's ``-threads``,
    gensim's ``workers``) that many threads train the chunks of a batch at once on a CPU, each
    applying plain SGD to the shared tables in place without locks, as word2vec.c does ("Hogwild",
    Recht et al. 2011): faster than one thread using several cores per operation, but the order of
    the updates, and so the exact result, varies from run to run. Logged: ``train/loss`` and ``val/loss``,
    ``test/loss`` (mean loss per prediction on held-out text); the benchmark scores come from the
    family's callback.

    Args:
        net: ``{"name": skipgram | cbow, "dim": ...}``.
        data: the text corpus's ``spec`` (``vocab``: the words, most frequent first).
        optimizer: an optimizer config taking sparse gradients (``_target_: torch.optim.SGD``, ...).
        scheduler: a learning-rate scheduler config; a ``LinearLR`` whose ``total_iters`` is null
            runs over every step of the run (``trainer.estimated_stepping_batches``).
        evaluation: the callback's options (benchmarks' vocabulary limit, the map's words).
        update_size: centre words per optimizer update (null: the whole batch).
        workers: threads training chunks at once on a CPU (needs plain SGD); 1: one chunk after
            the other, reproducible.
        monitor, monitor_mode: the metric that picks the best checkpoint.
    """

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        update_size: int | None = 1024,
        workers: int = 1,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
    ) -> None:
        super().__init__()
        if "vocab" not in data or "max_len" in data:
            raise ValueError(f"word2vec trains on plain text (data=text_corpus), not {data.get('name')}")
        if update_size is not None and update_size < 1:
            raise ValueError(f"update_size must be 1 or more (or null: the whole batch), not {update_size}")
        if workers < 1:
            raise ValueError(f"workers must be 1 or more, not {workers}")
        # the vocabulary stays out of the loggers (train.py logs the run config to them)
        self.save_hyperparameters(logger=False)
        self.automatic_optimization = False  # the gradients are written in closed form
        self.net = build_net(vocab_size=len(data["vocab"]), **net)
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.pool: ThreadPoolExecutor | None = None  # the Hogwild threads while fitting (workers > 1)

    @property
    def words(self) -> list[str]:
        """The vocabulary, most frequent first (row i of :meth:`vectors` is word i)."""
        return list(self.hparams.data["vocab"])

    def vectors(self) -> torch.Tensor:
        """The word vectors: the input table, (vocabulary x dim)."""
        return self.net.inputs.weight.detach()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        size = self.hparams.update_size or len(batch[0])
        chunks = list(zip(*(t.split(size) for t in batch), strict=True))
        with torch.autocast(self.device.type, enabled=False):  # lookups and dot products: fp32
            if self.pool is not None:
                results = self.hogwild(chunks, optimizer.param_groups[0]["lr"])
                for _ in chunks:  # Lightning counts optimizer steps: one per update the threads made
                    optimizer.step()  # (no .grad is set, so this changes no weight)
            else:
                results = []
                for chunk in chunks:
                    results.append(self.net.set_gradients(*chunk))
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
        total = torch.stack([loss for loss, _ in results]).sum()
        predictions = torch.stack([count for _, count in results]).sum()
        self.step_schedulers("step")
        loss = total / predictions.clamp(min=1)
        self.log_train_step({"loss": loss}, batch_size=len(batch[0]), prog_bar=["loss"])
        return loss

    def hogwild(self, chunks: list[tuple[torch.Tensor, ...]], lr: float) -> list[tuple[torch.Tensor, ...]]:
        """The chunks trained by the pool's threads at once, each thread one core (no nested threads)."""
        assert self.pool is not None
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return list(self.pool.map(lambda chunk: self.net.sgd_step(*chunk, lr=lr), chunks))
        finally:
            torch.set_num_threads(threads)

    def on_fit_start(self) -> None:
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            raise DlforgeError(
                f"word2vec trains in 32 bits (its gradients are not loss-scaled), not trainer.precision="
                f"{self.trainer.precision}; add trainer.precision=32"
            )
        self.pool = None
        if self.hparams.workers > 1 and self.device.type == "cpu":
            optimizer = self.optimizers().optimizer
            plain = type(optimizer) is torch.optim.SGD and all(
                not group["momentum"] and not group["weight_decay"] and not group["maximize"]
                for group in optimizer.param_groups
            )
            if not plain:
                raise DlforgeError(
                    f"model.workers={self.hparams.workers} trains with word2vec's plain SGD in place, not "
                    f"{type(optimizer).__name__} (or SGD with momentum or weight decay); use model.workers=1 "
                    "with this optimizer"
                )
            self.pool = ThreadPoolExecutor(self.hparams.workers, thread_name_prefix="word2vec")

    def on_fit_end(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.step_schedulers("epoch")

    def evaluation_step(self, batch: tuple[torch.Tensor, ...], metric: MeanMetric, key: str) -> None:
        with torch.autocast(self.device.type, enabled=False):
            loss, predictions = self.net(*batch)
        if predictions:
            metric.update(loss / predictions, weight=predictions)
        self.log(key, metric, on_epoch=True, prog_bar=key == "val/loss")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.evaluation_step(batch, self.val_loss, "val/loss")

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.evaluation_step(batch, self.test_loss, "test/loss")

    def configure_optimizers(self) -> Any:
        """The optimizer of ``hparams.optimizer`` (unfused: the gradients are sparse) and the scheduler."""
        optimizer = instantiate(self.hparams.optimizer, params=list(self.parameters()))
        config = dict(self.hparams.get("scheduler") or {})
        if config.get("total_iters", 0) is None:
            config["total_iters"] = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = self.build_scheduler(config, optimizer)
        if not scheduler:
            return optimizer
        # Lightning ignores a monitor under manual optimization: step_schedulers reads it from here
        self.scheduler_monitor = scheduler.pop("monitor", None)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
