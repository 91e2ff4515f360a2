"""Plain text for word2vec: read, tokenize, count, encode once (cached); batches of (centre, context,
negatives) made on the fly with tensor operations.

Word2vec's sampling (Mikolov et al. 2013; as word2vec.c and gensim), every epoch afresh:

- words seen fewer than ``min_count`` times leave the text before anything else;
- subsampling: a word of corpus frequency f stays with probability (sqrt(f / sample) + 1) * sample / f
  (at most 1), so frequent words are seen less often and windows reach further;
- dynamic window: each centre word takes its contexts up to b words either side, b uniform in
  1..``window`` (near words weigh more), never across a line (a line is a paragraph or definition);
- ``negatives`` noise words from the unigram distribution to the power 3/4, either afresh for every
  (context, centre) pair (``negatives_per="pair"``, word2vec.c and gensim) or once per centre word
  and shared by its context words (``"centre"``: Ji et al. 2016's batching of negative sampling,
  about 6x fewer output rows to update in skip-gram).

A batch is ``(centres (B,), contexts (B, 2 * window), mask (B, 2 * window), negatives)``: contexts in
the positions ``-window..-1, 1..window``, ``mask`` telling which are in the window; ``negatives``
``(B, K)`` per centre or ``(B, 2 * window, K)`` per pair (drawn for every position, used where
``mask`` is set).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.data.text_encoder import tokenize
from dlforge.data.word_benchmarks import WordBenchmarks, read_benchmarks
from dlforge.errors import DataNotFoundError, DlforgeError

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class Corpus:
    """A text encoded to token ids: the vocabulary (most frequent first), its counts, and the ids
    of every kept token, line after line (``lengths``: tokens per line)."""

    words: list[str]
    counts: torch.Tensor  # (V,) int64
    ids: torch.Tensor  # (N,) int32
    lengths: torch.Tensor  # (lines,) int64

    @property
    def line_ids(self) -> torch.Tensor:
        """The line of every token (N,)."""
        return torch.repeat_interleave(torch.arange(len(self.lengths)), self.lengths)


def read_corpus(
    files: list[Path], min_count: int, max_vocab: int | None, tokenizer: dict[str, bool]
) -> tuple[Corpus, int]:
    """Tokenize ``files`` a line at a time, keep words seen ``min_count`` times (at most ``max_vocab``,
    most frequent first, ties A-Z) and encode the text; returns the corpus and its raw token count."""
    lines: list[list[str]] = []
    counts: Counter[str] = Counter()
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    tokens = tokenize(line, **tokenizer)
                    if tokens:
                        counts.update(tokens)
                        lines.append(tokens)
        except UnicodeDecodeError as err:
            raise DlforgeError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    words = words[:max_vocab] if max_vocab else words
    if len(words) < 2:
        raise DlforgeError(
            f"{', '.join(map(str, files))}: {sum(counts.values())} words, {len(words)} of them seen "
            f"{min_count} times or more; word2vec needs text with repeated words (lower data.min_count)"
        )
    index = {word: i for i, word in enumerate(words)}
    ids, lengths = array("i"), array("q")
    for tokens in lines:
        line = [index[t] for t in tokens if t in index]
        ids.extend(line)
        lengths.append(len(line))
    corpus = Corpus(
        words,
        torch.tensor([counts[w] for w in words], dtype=torch.long),
        torch.frombuffer(ids, dtype=torch.int32).clone(),
        torch.frombuffer(lengths, dtype=torch.int64).clone(),
    )
    return corpus, sum(counts.values())


def keep_probabilities(counts: torch.Tensor, sample: float) -> torch.Tensor:
    """Word2vec's subsampling: the chance that each occurrence of a word stays (1 without ``sample``)."""
    if not sample:
        return torch.ones(len(counts))
    threshold = sample * counts.sum().double()
    return ((counts / threshold).sqrt() + 1).mul(threshold / counts).clamp(max=1).float()


def noise_table(weights: torch.Tensor) -> torch.Tensor:
    """Word2vec's table for drawing noise words: word i fills a share of the entries proportional to
    its weight, so a uniformly drawn entry is a draw from the weights (to 1 / size; 40x faster than
    ``searchsorted`` on the cumulative weights)."""
    size = max(1 << 22, 100 * len(weights))
    ends = (weights.double().cumsum(0) / weights.sum() * size).round().long()
    return torch.repeat_interleave(
        torch.arange(len(weights), dtype=torch.int32), ends.diff(prepend=ends[:1] * 0)
    )


class Windows:
    """Makes word2vec batches from a token stream: subsampling, dynamic windows, negatives.

    Indexing is ``index_select`` throughout (10x faster than advanced indexing for these sizes).
    """

    def __init__(
        self,
        ids: torch.Tensor,
        line_ids: torch.Tensor,
        keep: torch.Tensor,
        noise: torch.Tensor,
        window: int,
        negatives: int,
        negatives_per: str = "centre",
    ) -> None:
        self.ids = ids.long()
        self.line_ids = line_ids
        self.keep = keep
        self.noise = noise_table(noise)
        self.negatives = negatives
        self.per_pair = negatives_per == "pair"
        self.offsets = torch.cat([torch.arange(-window, 0), torch.arange(1, window + 1)])

    def to(self, device: torch.device) -> Windows:
        for name in ("ids", "line_ids", "keep", "noise", "offsets"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def subsample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's tokens and their lines, frequent words thinned out."""
        draws = torch.rand(len(self.ids), generator=generator, device=self.ids.device)
        kept = draws < self.keep.index_select(0, self.ids)
        return self.ids[kept], self.line_ids[kept]

    def batch(
        self, ids: torch.Tensor, lines: torch.Tensor, centres: torch.Tensor, generator: torch.Generator
    ) -> Batch:
        """The batch of the centre positions ``centres`` in the stream ``ids`` (lines ``lines``)."""
        device, size = ids.device, (len(centres), len(self.offsets))
        window = len(self.offsets) // 2
        reach = torch.randint(1, window + 1, (len(centres), 1), generator=generator, device=device)
        positions = centres[:, None] + self.offsets
        inside = positions.clamp(0, len(ids) - 1).view(-1)
        same_line = lines.index_select(0, inside).view(size) == lines.index_select(0, centres)[:, None]
        mask = (self.offsets.abs() <= reach) & (positions == inside.view(size)) & same_line
        shape = (*size, self.negatives) if self.per_pair else (len(centres), self.negatives)
        draws = torch.randint(len(self.noise), (math.prod(shape),), generator=generator, device=device)
        negatives = self.noise.index_select(0, draws).view(shape).long()
        return ids.index_select(0, centres), ids.index_select(0, inside).view(size), mask, negatives

    def expected_tokens(self) -> float:
        """Tokens an epoch keeps on average."""
        return float(self.keep.index_select(0, self.ids).double().sum())


class EpochBatches(IterableDataset):
    """One epoch of word2vec batches per iteration, drawn afresh (seeded by ``seed`` and the epoch).

    Every epoch has ``len(self)`` batches: the expected number of tokens left by subsampling over
    ``batch_size``, so the learning-rate schedule knows the run's length in advance.
    """

    def __init__(self, windows: Windows, batch_size: int, seed: int) -> None:
        self.windows = windows
        self.seed = seed
        self.epoch = 0
        self.batches = max(1, math.ceil(windows.expected_tokens() / batch_size))

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[Batch]:
        device = self.windows.ids.device
        generator = torch.Generator(device).manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        ids, lines = self.windows.subsample(generator)
        for centres in torch.arange(len(ids), device=device).tensor_split(self.batches):
            yield self.windows.batch(ids, lines, centres, generator)


def fixed_batches(windows: Windows, seed: int) -> TensorBatches:
    """Every (subsampled) token of a held-out text as a centre, drawn once: the same batches at every
    validation, so the loss compares across epochs."""
    generator = torch.Generator().manual_seed(seed)
    ids, lines = windows.subsample(generator)
    if len(ids) == 0:
        ids, lines = windows.ids, windows.line_ids
    return TensorBatches(*windows.batch(ids, lines, torch.arange(len(ids)), generator))


def cache_key(files: list[Path], options: dict[str, Any]) -> str:
    """Changes whenever a file does (path, size, modification time) or an option of the encoding."""
    parts = [f"{p.resolve()}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in files]
    return hashlib.sha1("\n".join([*parts, repr(sorted(options.items()))]).encode()).hexdigest()[:16]


class TextCorpusDataModule(TensorDataModule):
    """Plain-text files for word2vec (``data=text_corpus``), and the word benchmarks to score it on.

    Args:
        data_dir: data root (``paths.data_dir``).
        paths: the text files (UTF-8; a paragraph, sentence or definition a line).
        cache_dir: where the encoded corpus is cached (``paths.cache_dir``), keyed by the files' paths,
            sizes and times and the encoding options; None: encode every time.
        lowercase, keep_punctuation: the text classifiers' tokenizer options.
        min_count: words seen fewer times are dropped; max_vocab: at most this many words.
        window: the largest reach of a context, in words either side of the centre.
        negatives: noise words per prediction; noise_power: the unigram distribution's power.
        negatives_per: ``"pair"``: drawn afresh for every (context, centre) pair, as word2vec.c and
            gensim; ``"centre"``: once per centre word, shared by its contexts (skip-gram's
            ``model.negatives_per`` sets it; CBOW makes one prediction per centre either way).
        sample: subsampling threshold (0: keep every word).
        val_size, test_size: fractions of the lines held out (seeded) for a validation and test loss.
        batch_size: centre words per training step; eval_batch_size: per held-out batch.
        benchmarks: ``{folder, analogies, similarity: [...]}`` (``folder: null``: none), scored by the
            word2vec callback at every validation and at test.
        on_device: make the batches on the training device (GPU) from a copy of the corpus there.
        seed: seed of the held-out lines and of every epoch's sampling.
    """

    name = "text_corpus"

    def __init__(
        self,
        data_dir: str = "data",
        paths: list[str] | None = None,
        cache_dir: str | None = None,
        lowercase: bool = True,
        keep_punctuation: bool = False,
        min_count: int = 5,
        max_vocab: int | None = None,
        window: int = 5,
        negatives: int = 5,
        negatives_per: str = "centre",
        noise_power: float = 0.75,
        sample: float = 1e-3,
        val_size: float = 0.002,
        test_size: float = 0.002,
        batch_size: int = 8192,
        eval_batch_size: int | None = 4096,
        benchmarks: dict[str, Any] | None = None,
        on_device: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, 0, False, on_device)
        if window < 1 or negatives < 1:
            raise DlforgeError(f"data.window ({window}) and data.negatives ({negatives}) must be 1 or more")
        if negatives_per not in ("pair", "centre"):
            raise DlforgeError(
                f"negatives_per is pair or centre, not {negatives_per!r} (model.negatives_per=pair|centre)"
            )
        if not 0 <= val_size < 0.5 or not 0 <= test_size < 0.5:
            raise DlforgeError("data.val_size and data.test_size are fractions of the lines, below 0.5")
        self.data_dir = Path(data_dir).expanduser()
        default = [
            self.data_dir / "english-corpus" / f"{n}.txt"
            for n in ("gcide", "wordnet-glosses", "enwiki-excerpt")
        ]
        self.paths = [Path(p).expanduser() for p in paths] if paths else default
        self.cache_dir = cache_dir
        self.tokenizer = {"lowercase": lowercase, "keep_punctuation": keep_punctuation}
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.window = window
        self.negatives = negatives
        self.negatives_per = negatives_per
        self.noise_power = noise_power
        self.sample = sample
        self.val_size = val_size
        self.test_size = test_size
        self.benchmark_config = benchmarks
        self.seed = seed
        self.corpus: Corpus | None = None
        self.raw_tokens = 0
        self.train_windows: Windows | None = None
        self.line_splits = torch.zeros(0, dtype=torch.long)
        self.benchmarks: WordBenchmarks | None = None
        self._trained_spec: dict[str, Any] | None = None

    # --- reading -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise DataNotFoundError(
                f"no text file {', '.join(map(str, missing))}; set data.paths=[<your .txt files>] or point "
                "DATA_DIR at a folder holding english-corpus/"
            )

    def load_corpus(self) -> Corpus:
        """The encoded corpus, from the cache when it holds this text with these options."""
        self.prepare_data()
        options = {**self.tokenizer, "min_count": self.min_count, "max_vocab": self.max_vocab}
        folder = None
        if self.cache_dir:
            folder = Path(self.cache_dir).expanduser() / "text_corpus" / cache_key(self.paths, options)
            if (folder / "corpus.pt").is_file():
                cached = torch.load(folder / "corpus.pt", weights_only=True)
                self.raw_tokens = cached.pop("raw_tokens")
                return Corpus(**cached)
        start = time.perf_counter()
        corpus, self.raw_tokens = read_corpus(self.paths, self.min_count, self.max_vocab, self.tokenizer)
        log.info(
            "%s: %d words (%d kept), vocabulary %d, encoded in %.1f s",
            self.name,
            self.raw_tokens,
            len(corpus.ids),
            len(corpus.words),
            time.perf_counter() - start,
        )
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "corpus.pt.tmp"
            torch.save({**vars(corpus), "raw_tokens": self.raw_tokens}, tmp)
            tmp.rename(folder / "corpus.pt")
        return corpus

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """Evaluating a checkpoint: check that this text encodes to the vocabulary it was trained with."""
        self._trained_spec = spec
        self.splits = {}

    def setup(self, stage: str | None = None) -> None:
        """Encode the corpus, hold out lines for the val/test losses, read the benchmarks (once)."""
        if self.splits:
            return
        corpus = self.corpus = self.load_corpus()
        if self._trained_spec is not None and self._trained_spec.get("vocab") != corpus.words:
            raise DlforgeError(
                f"this text's vocabulary ({len(corpus.words)} words) is not the checkpoint's "
                f"({len(self._trained_spec.get('vocab', []))}); evaluate on the text and options it "
                "was trained on"
            )
        lines = len(corpus.lengths)
        order = torch.randperm(lines, generator=torch.Generator().manual_seed(self.seed))
        n_val, n_test = round(self.val_size * lines), round(self.test_size * lines)
        self.line_splits = torch.zeros(lines, dtype=torch.long)  # 0: train, 1: val, 2: test
        self.line_splits[order[:n_val]] = 1
        self.line_splits[order[n_val : n_val + n_test]] = 2
        token_split = torch.repeat_interleave(self.line_splits, corpus.lengths)
        line_ids = corpus.line_ids
        keep = keep_probabilities(corpus.counts, self.sample)
        noise = corpus.counts.double() ** self.noise_power

        def windows(split: int) -> Windows:
            chosen = token_split == split
            ids, lines = corpus.ids[chosen], line_ids[chosen]
            return Windows(ids, lines, keep, noise, self.window, self.negatives, self.negatives_per)

        self.train_windows = windows(0)
        if len(self.train_windows.ids) < 2:
            raise DlforgeError(f"{self.name}: no training text left; lower data.val_size and data.test_size")
        for number, name in ((1, "val"), (2, "test")):
            held_out = windows(number)
            if len(held_out.ids) == 0:  # tiny corpora: score the loss on training text
                held_out = self.train_windows
            self.splits[name] = fixed_batches(held_out, self.seed + number)
        self.benchmarks = read_benchmarks(self.benchmark_config)
        log.info(
            "%s: %d training tokens, %d val / %d test centre words, vocabulary %d, %d batches an epoch",
            self.name,
            len(self.train_windows.ids),
            len(self.splits["val"]),
            len(self.splits["test"]),
            len(corpus.words),
            len(self.train_epochs()),
        )

    def train_epochs(self) -> EpochBatches:
        assert self.train_windows is not None
        return EpochBatches(self.train_windows, self.batch_size, self.seed)

    def train_dataloader(self) -> DataLoader:
        """Batches made afresh every epoch (on the training device with ``on_device``)."""
        self.setup("fit")
        assert self.train_windows is not None
        device = self._device()
        if self.on_device and device is not None:
            self.train_windows.to(device)
        # an epoch's length is known in advance; Lightning warns about __len__ for any IterableDataset
        # when it reads the loader (dlforge.build.lightning_advice_ignored around the fit drops that)
        return DataLoader(self.train_epochs(), batch_size=None)

    # --- the hand-off to the model ---------------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        """The vocabulary (most frequent first), the tokenizer and the text's size: plain data."""
        self.setup()
        assert self.corpus is not None
        return {
            "name": self.name,
            "vocab": list(self.corpus.words),
            "tokenizer": dict(self.tokenizer),
            "tokens": self.raw_tokens,
        }
