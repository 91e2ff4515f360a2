"""Classical baselines (random forest, decision tree, gradient boosting, logistic regression) as
LightningModules: the same data modules, splits, trainer, metrics, run dir and checkpoints as the
networks, so a report can say what a network buys over them on the same split."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from dlforge.data.text_encoder import PAD_ID
from dlforge.models.base import WeightedClassifierModule
from dlforge.nets import build_net
from dlforge.registry import register_model

TEXT_FEATURES = ("tfidf", "mean_vectors")


@register_model("classical")
class ClassicalClassifier(WeightedClassifierModule):
    """A scikit-learn classifier fitted once on the whole training split, then tested like a network.

    Training is one pass over the training loader: every batch's features are gathered, and after
    the last batch the estimator is fitted and the run stops (there are no weights to step). The
    validation and test steps are the classifiers' own: ``val/acc``, ``test/acc``, losses (the log
    loss of the predicted probabilities), the confusion matrix, and ROC-AUC / PR-AUC for two
    classes. Also logged: ``train/acc`` (of the fitted estimator on its training split) and
    ``train/fit_time_s`` (the fit alone, in seconds).

    Features: images are their pixels in [0, 1] (``features.pca``: projected onto that many
    principal components of the training split); tables their encoded rows; texts ``tfidf`` (the
    training split's vocabulary counts, TF-IDF weighted, sublinear term frequency) or
    ``mean_vectors`` (the mean word vector of the text: the data's GloVe matrix, kept in the weights).

    Args:
        net: ``{"name": random_forest | decision_tree | gradient_boosting | logistic_regression,
            **the estimator's scikit-learn options}``.
        data: the data module's ``spec``; ``class_weights`` in it (tables) go to the estimator.
        features: ``{"text": "tfidf" | "mean_vectors", "pca": null | components}``.
        embeddings: the text data's word vectors (``mean_vectors``); None gives zeros (loading).
        training: ``monitor``, ``monitor_mode`` (:class:`~dlforge.models.base.DlforgeModule`; an
            estimator has no optimizer or scheduler).
    """

    optimizer_keys = ()  # fitted once: no optimizer (configure_optimizers makes the run's one empty step)

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        features: dict[str, Any] | None = None,
        embeddings: torch.Tensor | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.save_hyperparameters(ignore=["embeddings"], logger=False)
        self.automatic_optimization = False
        self.options = {"text": "tfidf", "pca": None, **(features or {})}
        self.text = "vocab" in data
        if self.options["text"] not in TEXT_FEATURES:
            choice = self.options["text"]
            raise ValueError(f"model.features.text must be one of {TEXT_FEATURES}, not {choice!r}")
        mean_vectors = self.text and self.options["text"] == "mean_vectors"
        weights = data.get("class_weights")
        self.net = build_net(
            tfidf=self.text and not mean_vectors,
            pca=self.options["pca"],
            class_weight=dict(enumerate(weights)) if weights else None,
            **net,
        )
        if mean_vectors:
            shape = (len(data["vocab"]), data["embedding_dim"])
            vectors = torch.zeros(shape) if embeddings is None else embeddings.float()
            if tuple(vectors.shape) != shape:
                raise ValueError(f"embeddings of shape {tuple(vectors.shape)} do not fit {shape}")
            self.register_buffer("embeddings", vectors.clone())
        self.setup_metrics(data["num_classes"])  # the estimator weighs the classes, not the loss
        self.gathered: list[tuple[Any, np.ndarray]] = []
        # the fit is the run's one optimization step: Lightning counts it through this empty step, so
        # the checkpoint callback saves (it skips runs without steps) and metrics.json says 1 step
        self.fit_step = torch.nn.Parameter(torch.zeros(0), requires_grad=False)

    # --- features ------------------------------------------------------------------------------
    def featurize(self, inputs: torch.Tensor) -> Any:
        """The estimator's input for a batch: a float32 array, or sparse word counts (``tfidf``)."""
        if not self.text:
            return inputs.float().flatten(1).cpu().numpy()
        tokens = inputs.long()
        present = tokens != PAD_ID
        if self.options["text"] == "mean_vectors":
            summed = (self.embeddings[tokens] * present.unsqueeze(-1)).sum(dim=1)
            return (summed / present.sum(dim=1, keepdim=True).clamp_min(1)).cpu().numpy()
        from scipy import sparse

        rows = torch.arange(len(tokens), device=tokens.device).unsqueeze(1).expand_as(tokens)[present]
        counts = np.ones(len(rows), dtype=np.float32)
        shape = (len(tokens), len(self.hparams.data["vocab"]))
        # repeated (row, word) pairs add up: the word counts of every text
        return sparse.csr_matrix((counts, (rows.cpu().numpy(), tokens[present].cpu().numpy())), shape=shape)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, classes): the softmax of these "logits" is the estimator's probabilities."""
        return self.net(self.featurize(inputs)).to(inputs.device)

    # --- training: gather the split, fit once -----------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self.fit_step], lr=0.0)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, labels = batch
        self.gathered.append((self.featurize(inputs), labels.cpu().numpy()))
        if batch_idx + 1 == self.trainer.num_training_batches:
            self.fit_gathered()

    def fit_gathered(self) -> None:
        """Fit the estimator on the gathered training split, log its training accuracy and fit time,
        and stop the run: validation, checkpoints and testing follow as for any model."""
        parts, labels = zip(*self.gathered, strict=True)
        self.gathered = []
        if isinstance(parts[0], np.ndarray):
            features = np.concatenate(parts)
        else:
            from scipy import sparse

            features = sparse.vstack(parts, format="csr")
        targets = np.concatenate(labels)
        seed = int(torch.randint(2**31 - 1, ()))  # from the run's seeded stream
        start = time.perf_counter()
        self.net.fit(features, targets, seed)
        fit_time = time.perf_counter() - start
        accuracy = float((self.net(features).argmax(dim=1).numpy() == targets).mean())
        self.log("train/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/fit_time_s", fit_time, on_step=False, on_epoch=True)
        self.optimizers().step()  # the run's one step (see fit_step)
        self.trainer.should_stop = True

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        if self.net.fitted:  # Lightning's sanity check validates before the fit
            super().validation_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        if self.net.fitted:
            super().on_validation_epoch_end()
