"""The text data module: read, split, tokenize, build the vocabulary, encode, hand over GloVe.

A data module reads its corpus (:meth:`TextDataModule.load_corpus`), splits it (the corpus's own
test split, a seeded stratified hold-out, or fold ``fold`` of ``folds`` for k-fold
cross-validation), builds the vocabulary, encodes every split to fixed-length token ids, and hands
the model its data spec plus the GloVe embedding matrix (:meth:`TextDataModule.model_kwargs`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import torch

from dlforge.data.glove import embedding_matrix, load_glove
from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.data.text_encoder import TextEncoder, build_vocab, tokenize
from dlforge.errors import DataNotFoundError, DlforgeError, first_line

log = logging.getLogger(__name__)

Texts = tuple[list[str], list[int]]  # texts and their class indices


def stratified_holdout(labels: torch.Tensor, size: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out, rest) indices: ``size`` (a count, or a fraction < 1) drawn per class in proportion."""
    n = len(labels)
    count = round(size * n) if 0 < size < 1 else int(size)
    if not 0 <= count < n:
        raise DlforgeError(
            f"cannot hold out {size} of {n} texts; use a smaller count or a fraction such as 0.1"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    # rank every text within its class in the random order, then take the lowest relative ranks
    ranks = torch.empty(n)
    for label in labels.unique():
        members = order[labels[order] == label]
        ranks[members] = (torch.arange(len(members)) + 0.5) / len(members)
    by_rank = order[torch.argsort(ranks[order], stable=True)]
    return by_rank[:count].sort().values, by_rank[count:].sort().values


def stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """The fold (0..folds-1) of every text: each class dealt round-robin in a seeded random order."""
    generator = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(labels), dtype=torch.long)
    for label in labels.unique():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold_of[members] = torch.arange(len(members)) % folds
    return fold_of


class TextDataModule(TensorDataModule):
    """Base for labelled text corpora; subclasses implement :meth:`load_corpus`.

    Args:
        data_dir: data root (``paths.data_dir``).
        glove: ``{path, dim, missing}``: a GloVe text file (or ``glove.6B.zip``, member by ``dim``;
            ``path: null`` gives random vectors of size ``dim``), and ``zero`` or ``random``
            vectors for words GloVe lacks.
        cache_dir: where GloVe's memory-mapped cache goes (``paths.cache_dir``).
        max_len: tokens per text (longer texts are cut; null: the longest training text).
        padding: ``pad`` (PAD ids at the end) or ``wrap`` (repeat the text to ``max_len``).
        lowercase, keep_punctuation: tokenizer options.
        min_freq, max_vocab: the vocabulary: training words seen ``min_freq`` times, at most
            ``max_vocab`` entries with PAD and OOV.
        vocab_from: ``train`` (the training split's words) or ``all`` (every split's words, as
            Kim 2014's code: no labels are used, and test words keep their GloVe vectors).
        val_size: held out of the training split for validation (count or fraction).
        test_size: held out for testing when the corpus has no test split.
        folds, fold: with ``folds`` >= 2, fold ``fold`` (stratified, seeded) is the test split
            (k-fold cross-validation: ``python -m dlforge.crossval``).
        encoding: ``auto`` (UTF-8, else Latin-1), or a codec name.
        download: fetch the corpus (and glove.6B.zip) from upstream when missing.
        seed: seed of the splits and of random vectors.
        loader: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``on_device``
            (:class:`~dlforge.data.datamodule.LoaderOptions`).
    """

    name = "text"
    loader_defaults: ClassVar[dict[str, Any]] = {"batch_size": 50}
    url: str | None = None  # the upstream archive
    md5: str | None = None  # its checksum, where known
    folder = ""  # the corpus's folder under the data root

    def __init__(
        self,
        data_dir: str = "data",
        glove: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        max_len: int | None = 50,
        padding: str = "pad",
        lowercase: bool = True,
        keep_punctuation: bool = True,
        min_freq: int = 1,
        max_vocab: int | None = None,
        vocab_from: str = "train",
        val_size: float = 0.1,
        test_size: float = 0.1,
        folds: int = 0,
        fold: int = 0,
        encoding: str = "auto",
        download: bool = True,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.data_dir = Path(data_dir).expanduser()
        self.glove = {"path": None, "dim": 300, "missing": "random", **(glove or {})}
        self.cache_dir = cache_dir
        self.max_len = max_len
        self.padding = padding
        self.tokenizer = {"lowercase": lowercase, "keep_punctuation": keep_punctuation}
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        if vocab_from not in ("train", "all"):
            raise DlforgeError(f"data.vocab_from must be train or all, not {vocab_from!r}")
        self.vocab_from = vocab_from
        self.val_size = val_size
        self.test_size = test_size
        self.folds = folds
        self.fold = fold
        self.encoding = encoding
        self.download = download
        self.seed = seed
        self.class_names: list[str] = []
        self.encoder: TextEncoder | None = None
        self.train_counts: Counter[str] = Counter()
        self._trained_spec: dict[str, Any] | None = None
        self._embeddings: torch.Tensor | None = None

    # --- what subclasses provide -------------------------------------------------------------
    def load_corpus(self) -> dict[str, Texts]:
        """``{"train": (texts, labels)}`` (+ ``"test"`` when the corpus has one); sets ``class_names``."""
        raise NotImplementedError

    def is_present(self) -> bool:
        raise NotImplementedError

    # --- Lightning hooks ---------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download and extract the upstream archive when the corpus is missing (and allowed)."""
        if self.is_present():
            return
        where = f"{self.data_dir / self.folder}{self.missing()}"
        if not (self.download and self.url):
            how = "download is off (data.download=false)" if self.url else "it has no download"
            raise DataNotFoundError(
                f"{self.name} not found in {where} and {how}; put the files there or point DATA_DIR "
                f"(now {os.environ.get('DATA_DIR', 'unset')}) at a folder that holds them"
            )
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(
                self.url, self.data_dir, self.extract_root(), md5=self.md5, remove_finished=True
            )
        except Exception as err:  # network and archive errors come in many types
            reason = first_line(err)
            raise DataNotFoundError(
                f"{self.name} not found in {where} and downloading {self.url} failed ({reason}); "
                f"put the files there or point DATA_DIR at a folder that holds them"
            ) from None

    def extract_root(self) -> Path:
        return self.data_dir

    def missing(self) -> str:
        """What of the corpus is missing, for the not-found message (e.g. one of its files)."""
        return ""

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """Encode with a trained model's vocabulary and settings (evaluating a checkpoint)."""
        self._trained_spec = spec
        self.splits = {}

    def setup(self, stage: str | None = None) -> None:
        """Read, split and encode the corpus (once; every stage needs the training vocabulary)."""
        if self.splits:
            return
        if not self.is_present():
            self.prepare_data()
        splits = self.split_corpus(self.load_corpus())
        tokens = {name: [tokenize(t, **self.tokenizer) for t in texts] for name, (texts, _) in splits.items()}
        self.train_counts = Counter(token for text in tokens["train"] for token in text)
        vocab_texts = (
            tokens["train"] if self.vocab_from == "train" else [t for p in tokens.values() for t in p]
        )
        self.encoder = self._make_encoder(vocab_texts, longest=max(map(len, tokens["train"]), default=1))
        for name, (_, labels) in splits.items():
            ids = torch.tensor([self.encoder.encode_tokens(t) for t in tokens[name]], dtype=torch.long)
            self.splits[name] = TensorBatches(ids.view(-1, self.encoder.max_len), labels)
        log.info(
            "%s: %d train / %d val / %d test texts, vocabulary %d, max_len %d (%s)%s",
            self.name,
            *(len(self.splits[name]) for name in ("train", "val", "test")),
            len(self.encoder.vocab),
            self.encoder.max_len,
            self.encoder.padding,
            f", fold {self.fold} of {self.folds}" if self.folds >= 2 else "",
        )

    def split_corpus(self, corpus: dict[str, Texts]) -> dict[str, tuple[list[str], torch.Tensor]]:
        """Train / val / test texts and labels: the corpus's own test split, fold ``fold`` of
        ``folds``, or a stratified seeded hold-out; validation is held out of the rest."""
        texts, labels = corpus["train"][0], torch.tensor(corpus["train"][1], dtype=torch.long)
        if not texts:
            raise DlforgeError(
                f"{self.name} holds no texts (its files under {self.data_dir / self.folder} are empty); "
                "put the corpus there or point DATA_DIR at a folder that holds it"
            )
        if self.folds >= 2:
            if "test" in corpus:
                raise DlforgeError(
                    f"{self.name} has its own test split; k-fold cross-validation (data.folds) "
                    "is for corpora without one"
                )
            if not 0 <= self.fold < self.folds:
                raise DlforgeError(
                    f"data.fold={self.fold} is not one of the {self.folds} folds (0..{self.folds - 1})"
                )
            fold_of = stratified_folds(labels, self.folds, self.seed)
            test_idx, pool = (
                torch.nonzero(fold_of == self.fold)[:, 0],
                torch.nonzero(fold_of != self.fold)[:, 0],
            )
        elif "test" in corpus:
            test_idx, pool = None, torch.arange(len(texts))
        else:
            test_idx, pool = stratified_holdout(labels, self.test_size, self.seed + 1)
        val_idx, train_idx = (pool[i] for i in stratified_holdout(labels[pool], self.val_size, self.seed))

        def take(idx: torch.Tensor) -> tuple[list[str], torch.Tensor]:
            return [texts[i] for i in idx.tolist()], labels[idx]

        if test_idx is None:
            test = (corpus["test"][0], torch.tensor(corpus["test"][1], dtype=torch.long))
        else:
            test = take(test_idx)
        return {"train": take(train_idx), "val": take(val_idx), "test": test}

    def _make_encoder(self, vocab_texts: list[list[str]], longest: int) -> TextEncoder:
        trained = self._trained_spec
        if trained is not None:
            if trained["class_names"] != self.class_names:
                raise DlforgeError(
                    f"the checkpoint's classes {trained['class_names']} differ from {self.name}'s "
                    f"{self.class_names}; pass the data set it was trained on (data={trained['name']})"
                )
            return TextEncoder.from_spec(trained)
        vocab = build_vocab(vocab_texts, self.min_freq, self.max_vocab)
        return TextEncoder(vocab, self.max_len or longest, self.padding, **self.tokenizer)

    # --- the hand-off to the model -----------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        """What a model needs to encode text like this data module, as plain (checkpoint-safe) values."""
        self.setup()
        assert self.encoder is not None
        return {
            "name": self.name,
            "vocab": list(self.encoder.vocab),
            "max_len": self.encoder.max_len,
            "padding": self.encoder.padding,
            "tokenizer": dict(self.tokenizer),
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "embedding_dim": self._embedding_dim(),
        }

    def _embedding_dim(self) -> int:
        if self._trained_spec is not None:  # evaluating a checkpoint: its embeddings are in its weights
            return int(self._trained_spec["embedding_dim"])
        return int(self.embeddings.shape[1])

    @property
    def embeddings(self) -> torch.Tensor:
        """The (vocabulary x dim) initial embedding matrix: GloVe rows, zero or random for the rest."""
        if self._embeddings is None:
            self.setup()
            assert self.encoder is not None
            path = self.glove.get("path")
            glove = None
            if path:
                glove = load_glove(path, self.cache_dir, self.glove.get("dim"), self.download)
            self._embeddings = embedding_matrix(
                self.encoder.vocab,
                glove,
                dim=int(self.glove.get("dim") or 300),
                missing=self.glove.get("missing", "random"),
                seed=self.seed,
                counts=self.train_counts,
            )
        return self._embeddings

    def model_kwargs(self) -> dict[str, Any]:
        """The one hand-off from data to model: the data spec and the initial embedding matrix."""
        return {"data": self.spec, "embeddings": self.embeddings}
