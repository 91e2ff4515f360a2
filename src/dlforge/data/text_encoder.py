"""Text to token ids: a tokenizer that keeps punctuation, a training-split vocabulary, fixed length.

Everything a model needs to encode new text the way it was trained (vocabulary, tokenizer options,
``max_len``, padding mode) is plain data in the data spec, so :meth:`TextEncoder.from_spec`
rebuilds the encoder from a checkpoint's hyper-parameters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch

PAD, OOV = "<pad>", "<unk>"
PAD_ID, OOV_ID = 0, 1
PADDING_MODES = ("pad", "wrap")

# Penn-Treebank-like splits that match GloVe's vocabulary: clitics ("it's" -> it 's, "don't" ->
# do n't), numbers with decimals, hyphenated words, runs of dots/dashes, every other
# punctuation mark as a token of its own ("punctuations act as words").
_TOKEN = re.compile(
    r"n't\b|'(?:s|re|ve|ll|d|m)\b|\w+?(?=n't\b)|\d+(?:[.,]\d+)+|\w+(?:-\w+)*|\.{2,}|-{2,}|[^\w\s]"
)
_WORD = re.compile(r"\w")


def tokenize(text: str, lowercase: bool = True, keep_punctuation: bool = True) -> list[str]:
    """Split ``text`` into words and punctuation tokens (``"Witty, isn't it?"`` -> witty , is n't it ?)."""
    tokens = _TOKEN.findall(text.lower() if lowercase else text)
    if keep_punctuation:
        return tokens
    return [t for t in tokens if _WORD.search(t)]


def build_vocab(
    token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
) -> list[str]:
    """``[PAD, OOV, *words]``: words seen at least ``min_freq`` times, most frequent first (ties A-Z),
    at most ``max_size`` entries in all."""
    counts = Counter(token for tokens in token_lists for token in tokens)
    words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
    vocab = [PAD, OOV, *(w for w in words if w not in (PAD, OOV))]
    return vocab[:max_size] if max_size else vocab


def fix_length(ids: list[int], max_len: int, padding: str = "pad") -> list[int]:
    """Truncate to ``max_len``; pad shorter sequences with PAD at the end, or ``wrap`` (repeat) them."""
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, not {padding!r}")
    if len(ids) >= max_len:
        return ids[:max_len]
    if padding == "wrap" and ids:
        return (ids * (max_len // len(ids) + 1))[:max_len]
    return ids + [PAD_ID] * (max_len - len(ids))


class TextEncoder:
    """Texts -> (N, max_len) token ids with a fixed vocabulary and tokenizer options."""

    def __init__(
        self,
        vocab: Sequence[str],
        max_len: int = 50,
        padding: str = "pad",
        lowercase: bool = True,
        keep_punctuation: bool = True,
    ) -> None:
        if list(vocab[:2]) != [PAD, OOV]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {OOV!r}")
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, not {padding!r}")
        self.vocab = list(vocab)
        self.index = {word: i for i, word in enumerate(self.vocab)}
        self.max_len = max_len
        self.padding = padding
        self.lowercase = lowercase
        self.keep_punctuation = keep_punctuation

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TextEncoder:
        """The encoder a text data spec (a checkpoint's ``hparams.data``) describes."""
        return cls(spec["vocab"], spec["max_len"], spec["padding"], **spec["tokenizer"])

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.lowercase, self.keep_punctuation)

    def encode_tokens(self, tokens: Sequence[str]) -> list[int]:
        ids = [self.index.get(token, OOV_ID) for token in tokens]
        return fix_length(ids, self.max_len, self.padding)

    def encode(self, texts: Iterable[str]) -> torch.Tensor:
        """Token ids, int64 (N, max_len)."""
        rows = [self.encode_tokens(self.tokenize(text)) for text in texts]
        return torch.tensor(rows, dtype=torch.long).view(len(rows), self.max_len)
