"""Word2vec's side outputs: benchmark scores at every validation and at test, and a 2-D map of words."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from dlforge.models.word2vec import Word2Vec
from dlforge.registry import register_callbacks
from dlforge.viz import log_image, save_figure
from dlforge.word_vectors import ANALOGY_VOCAB, WordVectors, from_model, map_figure

log = logging.getLogger(__name__)


class WordVectorScores(Callback):
    """Score the model's word vectors on the data module's benchmarks (``datamodule.benchmarks``)
    after every validation and at test: ``<stage>/analogy_acc`` (3CosAdd over the ``analogy_vocab``
    most frequent words), ``<stage>/<similarity benchmark>`` (Spearman) and the coverage of each.

    At test end it also draws ``word_map.png`` in the run dir: the ``map_words`` most frequent words
    of three letters or more, placed by the first two principal components of their unit vectors.
    """

    def __init__(self, analogy_vocab: int = ANALOGY_VOCAB, map_words: int = 150) -> None:
        self.analogy_vocab = analogy_vocab
        self.map_words = map_words

    def score(self, trainer: pl.Trainer, model: Word2Vec, stage: str) -> WordVectors:
        vectors = from_model(model)
        benchmarks = getattr(trainer.datamodule, "benchmarks", None)
        if benchmarks is not None:
            for name, value in vectors.evaluate(benchmarks, self.analogy_vocab).items():
                model.log(f"{stage}/{name}", value, prog_bar=name == "analogy_acc")
        return vectors

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.score(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        vectors = self.score(trainer, pl_module, "test")
        words = vectors.frequent_words(self.map_words)
        if trainer.is_global_zero and len(words) >= 3:
            title = f"the {len(words)} most frequent words (PCA of unit vectors)"
            figure = map_figure(words, vectors.project(words, "pca"), title)
            log_image(trainer, "test/word_map", save_figure(figure, pl_module.run_dir / "word_map.png"))


@register_callbacks(Word2Vec)
def word2vec_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    return [WordVectorScores(**(hparams.get("evaluation") or {}))]
