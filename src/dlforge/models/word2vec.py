"""Word2vec (skip-gram or CBOW with negative sampling) as a LightningModule."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from torchmetrics import MeanMetric

from dlforge.errors import DlforgeError
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.registry import register_model


def is_plain_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """SGD without momentum, weight decay or maximize: its update is ``-lr x gradient``."""
    return type(optimizer) is torch.optim.SGD and all(
        not group["momentum"] and not group["weight_decay"] and not group["maximize"]
        for group in optimizer.param_groups
    )


@register_model("word2vec")
class Word2Vec(DlforgeModule):
    """Word vectors trained by predicting words from their neighbours (``dlforge.nets.word2vec``).

    Training is word2vec's: the closed-form gradients of the summed negative-sampling loss of
    ``update_size`` centre words (:meth:`~dlforge.nets.word2vec.Word2VecNet.gradients`), one update
    after the other (word2vec updates after every word: a larger update scores worse). With plain SGD
    (word2vec's: the learning rate falls linearly over the run, alpha 0.025 -> 0.0001) the update is
    added to the tables in place (:meth:`~dlforge.nets.word2vec.Word2VecNet.sgd_step`); any other
    optimizer taking sparse gradients (SparseAdam, Adagrad, SGD with momentum) gets them as the
    touched rows' sparse ``.grad``. A training step is one batch, applied in chunks of
    ``update_size``; the learning rate steps once per batch, as gensim's alpha falls once per job of
    10,000 words, and ``trainer.global_step`` counts batches. Logged: ``train/loss`` and
    ``val/loss``, ``test/loss`` (mean loss per prediction on held-out text); the benchmark scores
    come from the family's callback.

    Args:
        net: ``{"name": skipgram | cbow, "dim": ...}``.
        data: the text corpus's ``spec`` (``vocab``: the words, most frequent first).
        optimizer: an optimizer config taking sparse gradients (``_target_: torch.optim.SGD``, ...).
        scheduler: a learning-rate scheduler config; a ``LinearLR`` whose ``total_iters`` is null
            runs over every step of the run (``trainer.estimated_stepping_batches``).
        evaluation: the callback's options (benchmarks' vocabulary limit, the map's words).
        update_size: centre words per optimizer update (null: the whole batch).
        negatives_per: skip-gram's noise words, ``"pair"``: drawn afresh for every (context, centre)
            pair, never the centre itself (word2vec.c and gensim); ``"centre"``: drawn once per
            centre word and shared by its contexts (Ji et al. 2016; about 6x fewer output rows to
            update). The data module draws them: ``data=text_corpus`` reads this option. CBOW makes
            one prediction per centre word: only ``"centre"``.
        training: ``monitor``, ``monitor_mode`` (:class:`~dlforge.models.base.DlforgeModule`; its
            ``optimizer`` and ``scheduler`` are named here, being word2vec's own, in the places
            callers give them: ``Word2Vec(net, data, optimizer)``).
    """

    default_monitor = "val/loss"

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        update_size: int | None = 1024,
        negatives_per: str = "centre",
        **training: Any,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler, **training)
        if "vocab" not in data or "max_len" in data:
            raise ValueError(f"word2vec trains on plain text (data=text_corpus), not {data.get('name')}")
        if update_size is not None and update_size < 1:
            raise ValueError(f"update_size must be 1 or more (or null: the whole batch), not {update_size}")
        if negatives_per not in ("pair", "centre") or (negatives_per == "pair" and net["name"] != "skipgram"):
            raise ValueError(
                f"negatives_per is pair or centre (pair: skip-gram only), not {negatives_per!r} "
                f"for {net['name']}"
            )
        # the vocabulary stays out of the loggers (train.py logs the run config to them)
        self.save_hyperparameters(logger=False)
        self.automatic_optimization = False  # the gradients are written in closed form
        self.net = build_net(vocab_size=len(data["vocab"]), **net)
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    @property
    def words(self) -> list[str]:
        """The vocabulary, most frequent first (row i of :meth:`vectors` is word i)."""
        return list(self.hparams.data["vocab"])

    def vectors(self) -> torch.Tensor:
        """The word vectors: the input table, (vocabulary x dim)."""
        return self.net.inputs.weight.detach()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        updates = optimizer.optimizer  # torch's own: its step costs no Lightning overhead per chunk
        in_place = is_plain_sgd(updates)
        size = self.hparams.update_size or len(batch[0])
        total = predictions = torch.zeros((), device=self.device)
        with torch.autocast(self.device.type, enabled=False):  # lookups and dot products: fp32
            for chunk in zip(*(t.split(size) for t in batch), strict=True):
                if in_place:
                    loss, count = self.net.sgd_step(*chunk, lr=updates.param_groups[0]["lr"])
                else:
                    loss, count = self.net.set_gradients(*chunk)
                    updates.step()
                    updates.zero_grad(set_to_none=True)
                total, predictions = total + loss, predictions + count
        optimizer.step()  # no gradient is left, so nothing moves: Lightning counts the batch's step
        self.step_schedulers("step")
        loss = total / predictions.clamp(min=1)
        self.log_train_step({"loss": loss}, batch_size=len(batch[0]), prog_bar=["loss"])
        return loss

    def on_fit_start(self) -> None:
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            raise DlforgeError(
                f"word2vec trains in 32 bits (its gradients are not loss-scaled), not trainer.precision="
                f"{self.trainer.precision}; add trainer.precision=32"
            )

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
