"""English -> pig latin: the rule, the character encoding, and word pairs made from English text.

The rule, word by word (a word is a run of the letters a-z and A-Z):

- a word starting with consonants moves its leading consonant cluster to the end and adds "ay":
  ``string`` -> ``ingstray``; "qu" moves together (``queen`` -> ``eenquay``, ``squeal`` -> ``ealsquay``);
  "y" after a consonant counts as a vowel (``rhythm`` -> ``ythmrhay``, ``my`` -> ``ymay``); a word
  without vowels moves nothing (``hmm`` -> ``hmmay``);
- a word starting with a vowel adds "way": ``apple`` -> ``appleway``;
- capitals keep their place (``Hello`` -> ``Ellohay``); a word in capitals stays in capitals
  (``NASA`` -> ``ASANAY``);
- everything else keeps its place: spaces, punctuation (an apostrophe splits a word: ``don't`` ->
  ``onday'tay``), numbers, and runs of letters and digits that are not words of a-z (``21st``,
  ``café``, ``naïve`` are kept as they are).

``Hello, world!`` -> ``Ellohay, orldway!``. A model translates words; :func:`translate_text` puts
them back among the rest, so a sentence is right exactly when each of its words is.

Words become token ids over a fixed alphabet (:data:`ALPHABET`, after PAD, BOS and EOS), built
with tensor operations. :class:`PigLatinDataModule` makes the pairs from English text and splits
them by word type (a word and its capitalized forms are one type): the validation and test words
never occur in training, and words longer than ``max_train_len`` letters are test-only; a
sentence-level test set holds sentences with at least one unseen word.
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from dlforge.data.files import read_text
from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.data.text_classifier_corpora import MRDataModule
from dlforge.errors import DataNotFoundError, DlforgeError

log = logging.getLogger(__name__)

PAD, BOS, EOS = 0, 1, 2
#: the letters, token ids 3, 4, ... in this order
ALPHABET = string.ascii_lowercase + string.ascii_uppercase
VOCAB_SIZE = 3 + len(ALPHABET)
VOWELS = frozenset("aeiou")
TOKEN = re.compile(r"[^\W_]+")  # a run of letters and digits (of any script)
WORD = re.compile(r"[A-Za-z]+")  # the runs that are words: letters a-z only
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: the ``sentence`` tag of test rows that are no sentence's words: real unseen words, made-up long
#: words, and words with a run of one letter (a sentence's words have its index, 0, 1, ...)
UNSEEN, SYNTHETIC, REPEATED = -1, -2, -3

_ID_OF_BYTE = torch.full((256,), -1, dtype=torch.long)
_ID_OF_BYTE[torch.tensor(list(ALPHABET.encode("ascii")))] = torch.arange(3, VOCAB_SIZE)
_BYTE_OF_ID = torch.zeros(VOCAB_SIZE, dtype=torch.uint8)
_BYTE_OF_ID[3:] = torch.tensor(list(ALPHABET.encode("ascii")), dtype=torch.uint8)


# --- the rule ----------------------------------------------------------------------------------
def cluster_end(word: str) -> int:
    """Where the leading consonant cluster of a lower-case word ends (0: it starts with a vowel)."""
    i = 0
    while i < len(word):
        letter = word[i]
        if letter in VOWELS and not (letter == "u" and i > 0 and word[i - 1] == "q"):
            break
        if letter == "y" and i > 0:  # after a consonant, y is a vowel
            break
        i += 1
    return i


def pig_latin_word(word: str) -> str:
    """One word of a-z/A-Z in pig latin, its capitals in their places (``Hello`` -> ``Ellohay``)."""
    lower = word.lower()
    cut = cluster_end(lower)
    out = lower + "way" if cut == 0 else lower[cut:] + lower[:cut] + "ay"
    if word.islower():
        return out
    if len(word) > 1 and word.isupper():
        return out.upper()
    letters = list(out)
    for i, letter in enumerate(word):
        if letter.isupper():
            letters[i] = letters[i].upper()
    return "".join(letters)


def is_word(token: str) -> bool:
    return WORD.fullmatch(token) is not None


def translate_text(texts: Sequence[str], translate_words: Callable[[list[str]], list[str]]) -> list[str]:
    """Translate every word of ``texts`` with ``translate_words`` (all distinct words in one call) and
    keep everything else in its place."""
    words = sorted({t for text in texts for t in TOKEN.findall(text) if is_word(t)})
    translation = dict(zip(words, translate_words(words) if words else [], strict=True))
    return [TOKEN.sub(lambda m: translation.get(m.group(), m.group()), text) for text in texts]


def to_pig_latin(text: str) -> str:
    """``text`` in pig latin by the rule (``Hello, world!`` -> ``Ellohay, orldway!``)."""
    return translate_text([text], lambda words: [pig_latin_word(w) for w in words])[0]


def foreign_words(texts: Sequence[str]) -> list[str]:
    """The distinct runs of letters outside a-z in ``texts`` (``café``, ``naïve``): kept as written."""
    return sorted({t for text in texts for t in TOKEN.findall(text) if not t.isascii()})


# --- words as token ids ------------------------------------------------------------------------
def encode_words(words: Sequence[str], width: int | None = None, eos: bool = False) -> torch.Tensor:
    """Words of a-z/A-Z -> token ids (N, width): the letters, then (with ``eos``) EOS, then PAD."""
    lengths = torch.tensor([len(w) for w in words], dtype=torch.long)
    longest = int(lengths.max()) if len(words) else 0
    width = longest + eos if width is None else width
    if longest + eos > width:
        raise ValueError(f"a word of {longest} letters does not fit {width} tokens")
    ids = torch.full((len(words), width), PAD, dtype=torch.long)
    if not len(words):
        return ids
    codes = torch.frombuffer(bytearray("".join(words).encode("ascii", errors="replace")), dtype=torch.uint8)
    letters = _ID_OF_BYTE[codes.long()]
    if (letters < 0).any():
        bad = next(w for w in words if not is_word(w))
        raise ValueError(f"{bad!r} is not a word of the letters a-z/A-Z")
    starts = lengths.cumsum(0) - lengths
    rows = torch.repeat_interleave(torch.arange(len(words)), lengths)
    cols = torch.arange(len(codes)) - torch.repeat_interleave(starts, lengths)
    ids[rows, cols] = letters
    if eos:
        ids[torch.arange(len(words)), lengths] = EOS
    return ids


def decode_tokens(tokens: torch.Tensor) -> list[str]:
    """Token ids (N, T) -> words: the letters before each row's first EOS (BOS, PAD dropped)."""
    tokens = tokens.detach().cpu().long()
    ended = (tokens == EOS).long().cumsum(1) > 0
    codes = _BYTE_OF_ID[tokens.clamp(0, VOCAB_SIZE - 1).masked_fill(ended, PAD)]
    return [bytes(row).replace(b"\0", b"").decode("ascii") for row in codes.tolist()]


def output_width(letters: int) -> int:
    """Output tokens for words of up to ``letters`` letters: the word, "way", and EOS."""
    return letters + 4


def word_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Letters per row of encoded words (N,)."""
    return (tokens != PAD).sum(dim=1)


# --- made-up test words -------------------------------------------------------------------------
def with_case(words: list[str], generator: torch.Generator) -> list[str]:
    """Lower-case words, a seeded tenth of them capitalized and one in twenty in capitals."""
    draws = torch.rand(len(words), generator=generator).tolist()
    return [
        w.upper() if d < 0.05 else w.capitalize() if d < 0.15 else w
        for w, d in zip(words, draws, strict=True)
    ]


def long_words(
    pieces: Sequence[str], lengths: range, per_length: int, generator: torch.Generator
) -> list[str]:
    """``per_length`` made-up words of each length: seeded-random ``pieces`` (held-out word types)
    joined until long enough, then cut to the length (``inter`` + ``national`` + ``ism``...)."""
    words = []
    for length in lengths:
        for _ in range(per_length):
            word = ""
            while len(word) < length:
                word += pieces[int(torch.randint(len(pieces), (1,), generator=generator))]
            words.append(word[:length])
    return with_case(words, generator)


def repeated_letter_words(
    pieces: Sequence[str], n: int, max_len: int, generator: torch.Generator
) -> list[str]:
    """``n`` words with a run of 3 to 6 of one letter: a seeded letter of a seeded ``pieces`` word
    (a held-out type) repeated (``hello`` -> ``hellllo``, ``shh`` -> ``shhhhh``), of up to ``max_len``
    letters."""
    pieces = [w for w in pieces if len(w) + 5 <= max_len]
    words = []
    for _ in range(n if pieces else 0):
        word = pieces[int(torch.randint(len(pieces), (1,), generator=generator))]
        at = int(torch.randint(len(word), (1,), generator=generator))
        run = int(torch.randint(3, 7, (1,), generator=generator))
        words.append(word[:at] + word[at] * run + word[at + 1 :])
    return with_case(words, generator)


# --- the data module ---------------------------------------------------------------------------
def sentences_of(text: str) -> list[str]:
    """The sentences of a line of text: split after . ! ? and a space."""
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def word_pairs(words: Sequence[str], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """English word ids (N, width) and their pig-latin ids ending in EOS (N, output_width(width))."""
    targets = [pig_latin_word(w) for w in words]
    return encode_words(words, width), encode_words(targets, output_width(width), eos=True)


class PigLatinDataModule(TensorDataModule):
    """English -> pig-latin word pairs from English text, split by word type.

    Batches are ``(words, targets, sentence)``: letter ids (N, S), pig-latin ids ending in EOS
    (N, S + 4: the longest output is the word, "way" and EOS), and the index of the sentence a
    test word belongs to (:data:`UNSEEN` -1: a word of the unseen-word test set, or a training or
    validation word; :data:`SYNTHETIC` -2: a made-up long word; :data:`REPEATED` -3: a word with a
    run of one letter).

    The test split also holds made-up words, deterministic (seeded) and made only of held-out (test)
    word types, so that no part of them was trained on: ``synthetic_per_length`` words of each
    length from ``max_train_len + 1`` to ``max_word_len`` letters (the text has few words of 25 letters
    or more), and ``repeated_words`` words with a run of 3 to 6 of one letter.

    Args:
        data_dir: data root (``paths.data_dir``).
        cache_dir: where the encoded splits are cached (``paths.cache_dir``; null: no cache).
        paths: text files to read (default: ``english-corpus/*.txt`` and MR's
            ``rt-polaritydata/rt-polarity.{pos,neg}`` under ``data_dir``, MR downloaded when missing).
        max_train_len: longest training word (letters); longer words are tested as words longer
            than any in training.
        max_word_len: longest word a trained model accepts (longer ones are refused in one line).
        val_words, test_words: word types held out for validation and testing (counts).
        test_sentences: sentences of the sentence-level test set (each holds an unseen word).
        sentence_words: ``[min, max]`` words of a test sentence.
        min_count: a word form must occur this often in the text.
        train_words: train on this many seeded-random word forms (null: all).
        synthetic_per_length: made-up test words of each length longer than ``max_train_len``.
        repeated_words: made-up test words with a run of one letter.
        capitals_share: this share of rows more: training forms of 2+ letters written in capitals
            (``NASA`` -> ``ASANAY``): the text's words in capitals are mostly short acronyms, and a
            word in capitals follows the rule as it does in small letters.
        text_share: besides one row per training form, this share of rows more, dealt to the forms
            in proportion to their frequency in the text: the words of running text ("the", "A",
            "I") are then learned exactly, not only the rule on rare words.
        seed: seed of the splits.
        loader: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``on_device``
            (:class:`~dlforge.data.datamodule.LoaderOptions`).
    """

    name = "piglatin"
    loader_defaults: ClassVar[dict[str, Any]] = {"batch_size": 256, "eval_batch_size": 1024}

    def __init__(
        self,
        data_dir: str = "data",
        cache_dir: str | None = None,
        paths: list[str] | None = None,
        max_train_len: int = 14,
        max_word_len: int = 40,
        val_words: int = 1000,
        test_words: int = 5000,
        test_sentences: int = 1000,
        sentence_words: tuple[int, int] | list[int] = (3, 40),
        min_count: int = 1,
        train_words: int | None = None,
        text_share: float = 0.25,
        capitals_share: float = 0.05,
        synthetic_per_length: int = 100,
        repeated_words: int = 1000,
        encoding: str = "auto",
        download: bool = True,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.data_dir = Path(data_dir).expanduser()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.paths = [Path(p).expanduser() for p in paths] if paths else None
        if not 1 <= max_train_len <= max_word_len:
            raise DlforgeError(f"need 1 <= data.max_train_len <= data.max_word_len, got {max_train_len}")
        self.max_train_len = max_train_len
        self.max_word_len = max_word_len
        self.val_words, self.test_words, self.test_sentences = val_words, test_words, test_sentences
        self.sentence_words = tuple(sentence_words)
        self.min_count = min_count
        self.train_words = train_words
        self.text_share = text_share
        self.synthetic_per_length, self.repeated_words = synthetic_per_length, repeated_words
        self.capitals_share = capitals_share
        self.encoding = encoding
        self.download = download
        self.seed = seed
        self.counts: dict[str, int] = {}  # split -> word forms (and sentences), for the log and docs

    def source_files(self) -> list[Path]:
        """The text files to read: ``paths``, or the English corpus and MR found under ``data_dir``."""
        if self.paths:
            missing = [str(p) for p in self.paths if not p.is_file()]
            if missing:
                raise DataNotFoundError(f"no text file at {', '.join(missing)}; fix data.paths")
            return self.paths
        files = sorted((self.data_dir / "english-corpus").glob("*.txt"))
        mr = MRDataModule(data_dir=str(self.data_dir), download=self.download)
        try:
            mr.prepare_data()
            files += [mr.data_dir / mr.folder / name for name in mr.files.values()]
        except DataNotFoundError as err:
            if not files:
                raise DataNotFoundError(
                    f"no English text under {self.data_dir} (english-corpus/*.txt, and {err}); "
                    "pass data.paths=[file.txt,...] or point DATA_DIR at the data"
                ) from None
            log.warning("piglatin: without MR (%s)", err)
        return files

    def prepare_data(self) -> None:
        self.source_files()

    def setup(self, stage: str | None = None) -> None:
        """Read the text, split the word types, encode every split (once; cached under ``cache_dir``)."""
        if self.splits:
            return
        files = self.source_files()
        cache = self.cache_file(files)
        if cache is not None and cache.is_file():
            stored = torch.load(cache, weights_only=True)
        else:
            stored = self.make_splits(files)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                torch.save(stored, cache.with_suffix(".tmp"))
                cache.with_suffix(".tmp").replace(cache)
        # ids are stored as uint8 (the alphabet has 55 tokens) and served as int64
        self.splits = {
            name: TensorBatches(*(t.long() for t in tensors)) for name, tensors in stored["splits"].items()
        }
        self.counts = stored["counts"]
        log.info(
            "piglatin: %d training (%d rows) / %d validation / %d test word forms (up to %d letters), "
            "%d longer test words, %d test sentences, %d made-up long words, %d with a run of a letter",
            *(self.counts[key] for key in ("train", "train_rows", "val", "test")),
            self.max_train_len,
            *(
                self.counts.get(k, 0)
                for k in ("test_longer", "test_sentences", "test_synthetic", "test_repeated")
            ),
        )

    def cache_file(self, files: list[Path]) -> Path | None:
        """Where the encoded splits of these files (by path, size, modification time) and options go."""
        if self.cache_dir is None:
            return None
        options = (
            self.max_train_len, self.max_word_len, self.val_words, self.test_words, self.test_sentences,
            self.sentence_words, self.min_count, self.train_words, self.text_share, self.seed,
            self.synthetic_per_length, self.repeated_words, self.capitals_share,
        )  # fmt: skip
        key = repr(([(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files], options))
        return self.cache_dir / "piglatin" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"

    def make_splits(self, files: list[Path]) -> dict[str, Any]:
        """The encoded splits (uint8 ids) and their sizes."""
        texts = [read_text(path, self.encoding) for path in files]
        tokens: Counter[str] = Counter()
        for text in texts:
            tokens.update(TOKEN.findall(text))
        forms = {w for w, n in tokens.items() if n >= self.min_count and len(w) <= self.max_word_len}
        forms = {w for w in forms if is_word(w)}
        if not forms:
            raise DlforgeError("the text holds no words of the letters a-z; pass data.paths=[English text]")
        split_of = self.split_types(forms)
        by_split: dict[str, list[str]] = {"train": [], "val": [], "test": [], "longer": []}
        for form in sorted(forms):
            by_split[split_of[form.lower()]].append(form)
        generator = torch.Generator().manual_seed(self.seed)
        for name, words in by_split.items():  # a seeded order: pictures and checks take the first rows
            by_split[name] = [words[i] for i in torch.randperm(len(words), generator=generator).tolist()]
        train = by_split["train"][: self.train_words] if self.train_words else by_split["train"]
        if not train or not by_split["val"] or not by_split["test"]:
            raise DlforgeError(
                f"{len(forms)} word forms are too few for {self.val_words} validation and {self.test_words} "
                "test words; lower data.val_words / data.test_words or give more text (data.paths)"
            )
        sentences = self.pick_sentences(texts, split_of, generator)
        test = by_split["test"] + by_split["longer"]
        in_sentences = [w for words in sentences for w in words]
        held_out = sorted({w.lower() for w in test})
        lengths = range(self.max_train_len + 1, self.max_word_len + 1)
        synthetic = long_words(held_out, lengths, self.synthetic_per_length, generator)
        repeated = repeated_letter_words(held_out, self.repeated_words, self.max_word_len, generator)
        seen = {w.lower() for w in train + by_split["val"]}
        repeated = [w for w in repeated if w.lower() not in seen]
        made_up = synthetic + repeated
        frequency = torch.tensor([tokens[w] for w in train], dtype=torch.float64)
        repeats = 1 + (self.text_share * len(train) * frequency / frequency.sum()).floor().long()
        train_pairs = [t.repeat_interleave(repeats, dim=0) for t in word_pairs(train, self.max_train_len)]
        capitals = self.in_capitals(train)
        if capitals:
            train_pairs = [
                torch.cat(pair)
                for pair in zip(train_pairs, word_pairs(capitals, self.max_train_len), strict=True)
            ]
        splits = {
            "train": (*train_pairs, torch.full((len(train_pairs[0]),), -1)),
            "val": (
                *word_pairs(by_split["val"], self.max_train_len),
                torch.full((len(by_split["val"]),), -1),
            ),
            "test": (  # the unseen words, every word of every test sentence, then the made-up words
                *word_pairs(test + in_sentences + made_up, max(map(len, test + in_sentences + made_up))),
                torch.tensor(
                    [UNSEEN] * len(test)
                    + [i for i, words in enumerate(sentences) for _ in words]
                    + [SYNTHETIC] * len(synthetic)
                    + [REPEATED] * len(repeated)
                ),
            ),
        }
        counts = {
            "train": len(train),
            "train_rows": len(train_pairs[0]),
            "train_capitals": len(capitals),
            "val": len(by_split["val"]),
            "test": len(by_split["test"]),
            "test_longer": len(by_split["longer"]),
            "test_sentences": len(sentences),
            "test_synthetic": len(synthetic),
            "test_repeated": len(repeated),
        }
        return {
            "splits": {name: (src.byte(), tgt.byte(), sid) for name, (src, tgt, sid) in splits.items()},
            "counts": counts,
        }

    def in_capitals(self, train: list[str]) -> list[str]:
        """``capitals_share`` of the training forms (seeded, of 2+ letters) written in capitals, those
        not already a training form."""
        generator = torch.Generator().manual_seed(self.seed + 1)  # the other splits' draws stay as they are
        picked = torch.randperm(len(train), generator=generator)[: round(self.capitals_share * len(train))]
        capitals = dict.fromkeys(train[i].upper() for i in picked.tolist() if len(train[i]) > 1)
        forms = set(train)
        return [w for w in capitals if w not in forms]

    def split_types(self, forms: set[str]) -> dict[str, str]:
        """Word type (lower case) -> ``train``, ``val``, ``test`` or ``longer`` (seeded)."""
        types = sorted({w.lower() for w in forms})
        short = [t for t in types if len(t) <= self.max_train_len]
        order = torch.randperm(len(short), generator=torch.Generator().manual_seed(self.seed)).tolist()
        split_of = {t: "longer" for t in types if len(t) > self.max_train_len}
        for rank, i in enumerate(order):
            held = rank < self.test_words + self.val_words
            split_of[short[i]] = ("test" if rank < self.test_words else "val") if held else "train"
        return split_of

    def pick_sentences(
        self, texts: list[str], split_of: dict[str, str], generator: torch.Generator
    ) -> list[list[str]]:
        """The words of up to ``test_sentences`` sentences of ``sentence_words`` words (from lines in a
        seeded-random order), none longer than ``max_train_len`` letters, at least one of an unseen
        (test) type, none of a validation type."""
        if not self.test_sentences:
            return []
        lines = [line for text in texts for line in text.splitlines()]
        low, high = self.sentence_words
        picked: list[list[str]] = []
        for i in torch.randperm(len(lines), generator=generator).tolist():
            for sentence in sentences_of(lines[i]):
                words = [t for t in TOKEN.findall(sentence) if is_word(t)]
                types = {split_of.get(w.lower()) for w in words}
                if low <= len(words) <= high and "test" in types and types <= {"train", "test"}:
                    picked.append(words)
                    if len(picked) == self.test_sentences:
                        return picked
        return picked

    @property
    def spec(self) -> dict[str, Any]:
        """What a model needs: the alphabet (token ids), the longest training and accepted words."""
        return {
            "name": self.name,
            "alphabet": ALPHABET,
            "max_train_len": self.max_train_len,
            "max_word_len": self.max_word_len,
        }

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """Test as a checkpoint was trained: its longest training word decides what counts as longer."""
        if spec.get("alphabet") not in (None, ALPHABET):
            raise DlforgeError("the checkpoint's alphabet differs from data=piglatin's; retrain it")
        if spec.get("max_train_len"):
            self.max_train_len = int(spec["max_train_len"])
            self.max_word_len = max(self.max_word_len, self.max_train_len)
            self.splits = {}
