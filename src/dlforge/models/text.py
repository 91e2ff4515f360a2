"""Text classification: token ids -> embeddings (GloVe, static or fine-tuned) -> a text network."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlforge.data.text_encoder import PAD_ID
from dlforge.models.base import ClassifierModule
from dlforge.nets import build_net
from dlforge.registry import register_model

EMBEDDING_MODES = ("static", "non_static", "multichannel")


@register_model("text_classifier")
class TextClassifier(ClassifierModule):
    """Softmax classifier over any registered text network (``dlforge.nets.text``).

    The embedding matrix comes from the data module (GloVe rows); it is not a hyper-parameter,
    so a checkpoint holds it in its weights and ``load_model`` rebuilds the model with zeros
    that the state dict then fills. The vocabulary and tokenizer settings live in ``data``, so a
    checkpoint alone encodes new text (``TextEncoder.from_spec(hparams.data)``).

    Args:
        net: ``{"name": <network in dlforge.nets.NETS>, **its options}``.
        data: the text data module's ``spec`` (vocabulary, ``max_len``, padding, tokenizer,
            classes, ``embedding_dim``).
        embedding: ``static`` (frozen), ``non_static`` (fine-tuned) or ``multichannel`` (Kim 2014:
            a frozen and a fine-tuned copy, as two input channels).
        embeddings: the initial (vocabulary x dim) matrix; None gives zeros (loading a checkpoint).
        label_smoothing: cross-entropy label smoothing.
        training: ``optimizer``, ``scheduler``, ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.DlforgeModule`).
    """

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        embedding: str = "non_static",
        embeddings: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        texts = "a text data set (data=mr, subj, movie_reviews, imdb, csv_text)"
        self.require_data(data, ("vocab", "embedding_dim", "max_len", "num_classes"), texts)
        if embedding not in EMBEDDING_MODES:
            raise ValueError(f"model.embedding must be one of {EMBEDDING_MODES}, not {embedding!r}")
        # the vocabulary stays out of the loggers (train.py logs the run config to them)
        self.save_hyperparameters(ignore=["embeddings"], logger=False)
        shape = (len(data["vocab"]), data["embedding_dim"])
        if embeddings is None:
            embeddings = torch.zeros(shape)
        if tuple(embeddings.shape) != shape:
            raise ValueError(
                f"embeddings of shape {tuple(embeddings.shape)} do not fit vocabulary x dim {shape}"
            )
        embeddings = embeddings.float()
        self.embedding = nn.Embedding.from_pretrained(
            embeddings.clone(), freeze=embedding == "static", padding_idx=PAD_ID
        )
        self.static_embedding = (
            nn.Embedding.from_pretrained(embeddings.clone(), freeze=True, padding_idx=PAD_ID)
            if embedding == "multichannel"
            else None
        )
        self.net = build_net(
            embedding_dim=shape[1],
            max_len=data["max_len"],
            num_classes=data["num_classes"],
            channels=2 if embedding == "multichannel" else 1,
            **net,
        )
        self.setup_metrics(data["num_classes"])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits for token ids (N, max_len)."""
        return self.net(*self.embed_tokens(tokens))

    def embed_tokens(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's inputs: embedded tokens (N, channels, max_len, dim) and text lengths (N,)."""
        tokens = tokens.long()
        channels = [self.embedding(tokens)]
        if self.static_embedding is not None:
            channels.append(self.static_embedding(tokens))
        lengths = (tokens != PAD_ID).sum(dim=1).clamp_min(1)
        return torch.stack(channels, dim=1), lengths

    def input_gradient_norms(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """How much training signal reaches each time step: the l2 norm of d loss_i / d x_it, the
        gradient of text i's loss with respect to its embedded token at position t, averaged over
        the texts (max_len,). Seed 001: a plain RNN's shrinks geometrically with the distance from
        the end. Call it in eval mode to leave dropout out."""
        inputs, lengths = self.embed_tokens(tokens)
        inputs = inputs.detach().requires_grad_()
        # cuDNN's RNN backward refuses eval mode; the native kernels give the same gradients
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            logits = self.net(inputs, lengths)
            loss = F.cross_entropy(
                logits, labels, reduction="sum", label_smoothing=self.hparams.label_smoothing
            )
            (gradient,) = torch.autograd.grad(loss, inputs)
        return gradient.square().sum(dim=(1, 3)).sqrt().mean(dim=0)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        constrain = getattr(self.net, "apply_constraints", None)
        if constrain is not None:
            constrain()
