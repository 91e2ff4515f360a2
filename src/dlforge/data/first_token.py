"""A long-range memory task for sequence models: the class is the first token, then noise.

Every sequence is ``length`` tokens: one of ``num_classes`` class tokens (``c0``, ``c1``, ...),
then ``length - 1`` noise tokens (``n0``, ``n1``, ...) drawn uniformly and independently of the
class. A model that reads the sequence left to right and answers from its final state must carry
the first token across ``length - 1`` steps; chance is ``1 / num_classes``. So accuracy against
``length`` measures how far back a network can learn to remember (seed 001: a plain RNN's
gradients vanish over long sequences, an LSTM's or GRU's gates let them through).

The data are text as far as the text classifiers are concerned (a vocabulary, token ids, an
embedding matrix in ``model_kwargs``), generated in memory from ``seed``: ``python -m
dlforge.predict ckpt_path=... text="c2 n5 n0 n7"`` answers ``c2``.
"""

from __future__ import annotations

from typing import Any

import torch

from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.data.text_encoder import OOV, PAD
from dlforge.errors import DlforgeError

FIRST_CLASS_ID = 2  # c0 comes after <pad> and <unk>


class FirstTokenDataModule(TensorDataModule):
    """Seeded in-memory sequences whose label is their first token (see the module docstring).

    Args:
        length: tokens per sequence (the class token and ``length - 1`` noise tokens).
        num_classes: class tokens, one per class.
        noise_tokens: the size of the noise alphabet.
        train_size, val_size, test_size: sequences in each split.
        embedding_dim: size of the token vectors handed to the model (seeded normal vectors).
        seed: seed of the sequences and the vectors (each split has its own stream).
        loader: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``on_device``
            (:class:`~dlforge.data.datamodule.LoaderOptions`).
    """

    name = "first_token"

    def __init__(
        self,
        length: int = 100,
        num_classes: int = 4,
        noise_tokens: int = 16,
        train_size: int = 20000,
        val_size: int = 500,
        test_size: int = 1000,
        embedding_dim: int = 16,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.length = length
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.class_names = [f"c{k}" for k in range(num_classes)]
        self.vocab = [PAD, OOV, *self.class_names, *(f"n{k}" for k in range(noise_tokens))]
        self.embedding_dim = embedding_dim
        self.seed = seed

    @property
    def first_noise_id(self) -> int:
        """The id of ``n0``."""
        return FIRST_CLASS_ID + len(self.class_names)

    def sequences(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` token-id sequences (n, length) and their labels (n,), from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        labels = torch.randint(len(self.class_names), (n,), generator=generator)
        noise = torch.randint(self.first_noise_id, len(self.vocab), (n, self.length - 1), generator=generator)
        return torch.cat([FIRST_CLASS_ID + labels[:, None], noise], dim=1), labels

    def setup(self, stage: str | None = None) -> None:
        """Generate the splits (once). Options are checked here, where an error is one line for the CLI."""
        noise_tokens = len(self.vocab) - self.first_noise_id
        if self.length < 1 or len(self.class_names) < 2 or noise_tokens < 1:
            raise DlforgeError(
                f"first_token needs length >= 1, num_classes >= 2 and noise_tokens >= 1, not {self.length}, "
                f"{len(self.class_names)}, {noise_tokens}; change data.length, num_classes or noise_tokens"
            )
        if not self.splits:
            for offset, (split, size) in enumerate(self.sizes.items()):  # a stream per (seed, split)
                self.splits[split] = TensorBatches(*self.sequences(size, 3 * self.seed + offset))

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """A checkpoint's data must be this task with the same tokens (its embeddings are in its weights)."""
        if spec.get("vocab") != self.vocab:
            raise DlforgeError(
                f"the checkpoint was trained on {spec.get('name')} with other tokens; pass its "
                "data options (data=first_token data.num_classes=... data.noise_tokens=...)"
            )
        self.embedding_dim = int(spec["embedding_dim"])

    @property
    def spec(self) -> dict[str, Any]:
        """The text data spec the text classifiers read (vocabulary, length, classes)."""
        return {
            "name": self.name,
            "vocab": list(self.vocab),
            "max_len": self.length,
            "padding": "pad",
            "tokenizer": {"lowercase": True, "keep_punctuation": True},
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "embedding_dim": self.embedding_dim,
        }

    @property
    def embeddings(self) -> torch.Tensor:
        """Seeded standard-normal token vectors (vocabulary x ``embedding_dim``); ``<pad>`` is zero."""
        generator = torch.Generator().manual_seed(self.seed + 12345)  # apart from the splits' streams
        vectors = torch.randn(len(self.vocab), self.embedding_dim, generator=generator)
        vectors[0] = 0.0
        return vectors

    def model_kwargs(self) -> dict[str, Any]:
        return {"data": self.spec, "embeddings": self.embeddings}
