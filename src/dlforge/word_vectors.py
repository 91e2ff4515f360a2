"""Word vectors as plain data: load them (GloVe text, a word2vec checkpoint), look up neighbours,
solve analogies, score the standard benchmarks, draw a 2-D map.

Shared by the word2vec callback (metrics at every validation), ``python -m dlforge.embeddings``
and the web app. Words are compared by cosine similarity (rows normalized to unit length); look-ups
and benchmarks are case-insensitive, a word meaning its most frequent spelling (the first row).

The benchmark protocol is gensim's ``evaluate_word_analogies`` / ``evaluate_word_pairs`` (as
word2vec's ``compute-accuracy``): analogies by 3CosAdd over the ``restrict`` most frequent words,
questions with a word outside them skipped, the question's words excluded from the answers;
similarity as Spearman's rank correlation of cosine against human scores over the covered pairs.
The analogies' vocabulary is restricted to the 30,000 most frequent words by default
(:data:`ANALOGY_VOCAB`, word2vec's ``compute-accuracy 30000``), while gensim's
``evaluate_word_analogies`` defaults to ``restrict_vocab=300000``: scores from gensim's own call are
over more questions and more candidate answers, and not comparable with these without
``restrict_vocab=30000``. The similarity scores use every covered pair (gensim's default of 300,000
words covers all of a vocabulary this size).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch.nn import functional as F
from torchmetrics.functional import spearman_corrcoef

from dlforge.checkpoint import load_model
from dlforge.data.glove import load_glove
from dlforge.data.word_benchmarks import Pair, Question, WordBenchmarks
from dlforge.errors import DlforgeError
from dlforge.models.word2vec import Word2Vec

#: analogy questions and answers among the 30,000 most frequent words (word2vec's compute-accuracy
#: threshold; gensim's evaluate_word_analogies defaults to 300,000)
ANALOGY_VOCAB = 30_000


@dataclass
class WordVectors:
    """Words (most frequent first) and their vectors, one row each."""

    words: list[str]
    vectors: torch.Tensor  # (N, D) float32
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.words) != len(self.vectors) or not self.words:
            raise DlforgeError(
                f"{self.source or 'word vectors'}: {len(self.words)} words for {len(self.vectors)} vectors"
            )

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @cached_property
    def unit(self) -> torch.Tensor:
        """The vectors scaled to unit length (zero vectors stay zero)."""
        return F.normalize(self.vectors.float(), dim=1)

    @cached_property
    def rows(self) -> dict[str, int]:
        """Lower-cased word -> its first (most frequent) row."""
        rows: dict[str, int] = {}
        for row, word in enumerate(self.words):
            rows.setdefault(word.lower(), row)
        return rows

    def row(self, word: str) -> int:
        """The row of ``word`` (case-insensitive), or a one-line error naming it."""
        row = self.rows.get(word.lower())
        if row is None:
            raise DlforgeError(
                f"{word!r} is not among the {len(self)} words of {self.source or 'these vectors'}"
            )
        return row

    # --- exploring ------------------------------------------------------------------------------
    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self.row(a)] @ self.unit[self.row(b)])

    def nearest(
        self,
        query: torch.Tensor,
        k: int = 10,
        exclude: list[int] = (),
        restrict: int | None = None,  # type: ignore[assignment]
    ) -> list[tuple[str, float]]:
        """The ``k`` words whose vectors are closest (cosine) to ``query``, best first."""
        candidates = self.unit[:restrict] if restrict else self.unit
        scores = candidates @ F.normalize(query.float(), dim=0)
        scores[[r for r in exclude if r < len(scores)]] = -torch.inf
        top = scores.topk(min(k, len(scores) - len(exclude)))
        return [
            (self.words[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]

    def neighbours(self, word: str, k: int = 10, restrict: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest words to ``word`` (itself excluded), with their cosine similarity."""
        row = self.row(word)
        return self.nearest(self.unit[row], k, [row], restrict)

    def analogy(
        self, positive: list[str], negative: list[str], k: int = 10, restrict: int | None = None
    ) -> list[tuple[str, float]]:
        """3CosAdd: the words closest to the sum of the ``positive`` unit vectors minus the ``negative``
        ones (``king - man + woman``: positive king, woman; negative man), the query words excluded."""
        if not positive:
            raise DlforgeError("an analogy needs at least one word to add, e.g. 'king - man + woman'")
        rows = [self.row(w) for w in positive], [self.row(w) for w in negative]
        query = self.unit[rows[0]].sum(0) - self.unit[rows[1]].sum(0)
        return self.nearest(query, k, rows[0] + rows[1], restrict)

    def explore(self, text: str, k: int = 10, restrict: int | None = None) -> dict[str, Any]:
        """One word's neighbours, or an expression's analogy answers (``"king - man + woman"``), as
        plain data: ``{"query", "positive", "negative", "results": [{"word", "cosine"}, ...]}``."""
        positive, negative = parse_expression(text)
        if len(positive) == 1 and not negative:
            found = self.neighbours(positive[0], k, restrict)
        else:
            found = self.analogy(positive, negative, k, restrict)
        results = [{"word": word, "cosine": round(cosine, 4)} for word, cosine in found]
        return {"query": text, "positive": positive, "negative": negative, "results": results}

    def frequent_words(self, n: int, min_length: int = 3) -> list[str]:
        """The ``n`` most frequent words made of ``min_length`` letters or more (no numbers, marks)."""
        return [w for w in self.words if len(w) >= min_length and w.isalpha()][:n]

    # --- benchmarks -----------------------------------------------------------------------------
    def analogy_accuracy(
        self, questions: list[Question], sections: list[str] | None = None, restrict: int = ANALOGY_VOCAB
    ) -> dict[str, Any]:
        """3CosAdd accuracy on the questions whose four words are among the ``restrict`` most frequent
        (default 30,000; gensim's ``evaluate_word_analogies`` defaults to 300,000), the answers chosen
        among the same words: ``accuracy``, ``correct``, ``questions`` (evaluated), ``total``,
        ``coverage`` and the accuracy of each ``section`` (with ``sections``)."""
        allowed = {word: row for word, row in self.rows.items() if row < restrict}
        kept = [i for i, q in enumerate(questions) if all(w.lower() in allowed for w in q)]
        result: dict[str, Any] = {
            "total": len(questions),
            "questions": len(kept),
            "coverage": len(kept) / max(len(questions), 1),
        }
        if not kept:
            return {**result, "accuracy": 0.0, "correct": 0, "sections": {}}
        ids = torch.tensor([[allowed[w.lower()] for w in questions[i]] for i in kept])
        candidates = torch.tensor(sorted(allowed.values()))  # first spellings among the top rows
        position = torch.full((int(candidates.max()) + 1,), -1, dtype=torch.long)
        position[candidates] = torch.arange(len(candidates))
        matrix = self.unit[candidates]
        hits = []
        for chunk in ids.split(512):
            a, b, c = (self.unit[chunk[:, j]] for j in range(3))
            scores = (b - a + c) @ matrix.T
            scores.scatter_(1, position[chunk[:, :3]], -torch.inf)  # the question's words are no answers
            hits.append(candidates[scores.argmax(1)] == chunk[:, 3])
        correct = torch.cat(hits)
        result.update(accuracy=float(correct.float().mean()), correct=int(correct.sum()), sections={})
        if sections is not None:
            names = [sections[i] for i in kept]
            for name in dict.fromkeys(names):
                mask = torch.tensor([n == name for n in names])
                result["sections"][name] = float(correct[mask].float().mean())
        return result

    def similarity_correlation(self, pairs: list[Pair]) -> dict[str, Any]:
        """Spearman's rank correlation between cosine similarity and the human scores, over the pairs
        whose two words have vectors: ``spearman``, ``pairs`` (covered), ``total``, ``coverage``."""
        covered = [
            (self.rows[a.lower()], self.rows[b.lower()], s)
            for a, b, s in pairs
            if a.lower() in self.rows and b.lower() in self.rows
        ]
        result: dict[str, Any] = {
            "total": len(pairs),
            "pairs": len(covered),
            "coverage": len(covered) / max(len(pairs), 1),
        }
        if len(covered) < 3:
            return {**result, "spearman": 0.0}
        left, right, human = zip(*covered, strict=True)
        cosine = (self.unit[list(left)] * self.unit[list(right)]).sum(1).double()
        return {
            **result,
            "spearman": float(spearman_corrcoef(cosine, torch.tensor(human, dtype=torch.float64))),
        }

    def evaluate(self, benchmarks: WordBenchmarks, restrict: int = ANALOGY_VOCAB) -> dict[str, float]:
        """Every benchmark as flat metrics: ``analogy_acc``, ``analogy_coverage``, ``<name>`` (Spearman)
        and ``<name>_coverage`` for each similarity benchmark."""
        metrics: dict[str, float] = {}
        if benchmarks.questions:
            analogies = self.analogy_accuracy(benchmarks.questions, restrict=restrict)
            metrics.update(analogy_acc=analogies["accuracy"], analogy_coverage=analogies["coverage"])
        for name, pairs in benchmarks.similarity.items():
            scores = self.similarity_correlation(pairs)
            metrics.update({name: scores["spearman"], f"{name}_coverage": scores["coverage"]})
        return metrics

    # --- the 2-D map ----------------------------------------------------------------------------
    def project(self, words: list[str], method: str = "pca", seed: int = 0) -> np.ndarray:
        """2-D coordinates of ``words``: their first two principal components (``pca``) or a t-SNE
        embedding of their unit vectors (``tsne``, cosine neighbourhoods)."""
        points = self.unit[[self.row(w) for w in words]].double()
        if method == "pca":
            centred = points - points.mean(0)
            _, _, v = torch.linalg.svd(centred, full_matrices=False)
            return (centred @ v[:2].T).numpy()
        if method == "tsne":
            from sklearn.manifold import TSNE

            perplexity = min(30.0, (len(words) - 1) / 3)
            return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points.numpy())
        raise DlforgeError(f"method={method}: a map is drawn by pca or tsne")


def parse_expression(text: str) -> tuple[list[str], list[str]]:
    """``"king - man + woman"`` (or ``"king -man +woman"``) -> (``["king", "woman"]``, ``["man"]``):
    the words to add and to subtract. Signs stand apart or lead a word (hyphenated words stay whole)."""
    tokens: list[str] = []
    for part in text.split():
        if part[0] in "+-":
            tokens.append(part[0])
            part = part[1:]
        if part:
            tokens += [part] if tokens and tokens[-1] in ("+", "-") else ["+", part]  # a word alone adds
    # sign word sign word ...: no sign without its word ("king -"), no two in a row ("king - - man")
    formed = len(tokens) % 2 == 0 and all((t in ("+", "-")) == (i % 2 == 0) for i, t in enumerate(tokens))
    signed = list(zip(tokens[::2], tokens[1::2], strict=True)) if formed else []
    positive = [word for sign, word in signed if sign == "+"]
    negative = [word for sign, word in signed if sign == "-"]
    if not positive or any(word[0] in "+-" for _, word in signed):
        raise DlforgeError(
            f"analogy {text!r}: write words joined by + and -, one word after each sign, "
            "e.g. 'king - man + woman'"
        )
    return positive, negative


def map_figure(words: list[str], points: np.ndarray, title: str) -> Figure:
    """A scatter of 2-D word coordinates with each word written beside its point."""
    fig = Figure(figsize=(11, 9))
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], s=6, color="tab:blue", alpha=0.6)
    for word, (x, y) in zip(words, points, strict=True):
        ax.annotate(word, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def from_glove(path: str | Path, cache_dir: str | Path | None = None) -> WordVectors:
    """Vectors from a GloVe-format text file (cached like the text classifiers' GloVe)."""
    glove = load_glove(path, cache_dir)
    return WordVectors(glove.words, torch.from_numpy(np.array(glove.vectors, dtype=np.float32)), glove.source)


def from_model(model: Word2Vec) -> WordVectors:
    """The input vectors of a trained word2vec model (:class:`dlforge.models.word2vec.Word2Vec`)."""
    return WordVectors(model.words, model.vectors().float().cpu(), f"{model.kind} model")


def load_vectors(path: str | Path, cache_dir: str | Path | None = None) -> WordVectors:
    """Word vectors from a word2vec checkpoint (``.ckpt``) or a GloVe-format text file."""
    if Path(path).suffix == ".ckpt":
        vectors = from_model(load_model(path, Word2Vec, what="a word2vec model (model=skipgram or cbow)"))
        vectors.source = str(path)
        return vectors
    if not Path(path).is_file():
        raise DlforgeError(
            f"no word vectors at {path}; pass a GloVe-format .txt or a word2vec checkpoint (.ckpt)"
        )
    try:
        return from_glove(path, cache_dir)
    except DlforgeError as err:  # the GloVe reader's hint names the classifiers' option
        what = str(err).rsplit("; ", 1)[0]
        raise DlforgeError(
            f"{what}; word vectors are GloVe's text format (a word and its numbers a line)"
        ) from None
