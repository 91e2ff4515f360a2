"""Word2vec's two networks (Mikolov et al. 2013): two embedding tables and a dot product.

``inputs`` holds the word vectors, ``outputs`` each word as a prediction target. A batch is the data
module's ``(centres (B,), contexts (B, C), mask (B, C), negatives (B, K))``; each prediction scores the
true word against ``K`` noise words with the negative-sampling loss
``-log sigmoid(x . v_true) - sum_k log sigmoid(-x . v_noise_k)``.

- skip-gram: each context word's input vector predicts the centre word (the direction word2vec.c and
  gensim train; the same pairs as the centre predicting each context), against noise words drawn
  for each pair (``negatives`` ``(B, C, K)``, as word2vec.c and gensim) or once per centre and shared
  by its contexts (``(B, K)``);
- CBOW: the mean of the context words' input vectors predicts the centre word.

``forward`` computes the loss (autograd gives the gradients). :meth:`Word2VecNet.gradients` computes
the same loss and its gradients in closed form, as rows of the two tables (1.4-2.2x faster than
autograd on a CPU, ``benchmarks/word2vec_options.py``; the tests check that both agree). They are
applied either as sparse ``.grad`` tensors (:meth:`~Word2VecNet.set_gradients`), for any optimizer
that takes sparse gradients (SGD, SparseAdam, Adagrad), or, for plain SGD, added to the tables in
place (:meth:`~Word2VecNet.sgd_step`: one ``scatter_add_`` a table, where ``torch.optim.SGD`` adds
a sparse gradient one row at a time; CBOW's update 1.3-1.6x faster on a CPU).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from dlforge.registry import register_net


def negative_sampling_loss(logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per prediction: logits ``(..., 1 + K)``, the true word first, then the noise words (each
    term times ``weights`` of the same shape: 0 leaves a noise word out)."""
    signs = torch.ones(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    signs[1:] = -1
    terms = F.logsigmoid(logits * signs)  # (4x faster than softplus on a CPU)
    return -(terms if weights is None else terms * weights).sum(-1)


def pairs(
    centres: torch.Tensor, contexts: torch.Tensor, mask: torch.Tensor, negatives: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Skip-gram's predictions with noise words of their own: ``negatives`` ``(B, C, K)`` as the
    window's ``(B, C)`` positions. Returns the context word of every pair in the windows ``(P,)``,
    its targets ``(P, 1 + K)`` (the centre, then the noise words) and their weights: 0 for a noise
    word that is the centre itself (word2vec.c and gensim skip it), else 1 (bools)."""
    where = mask.reshape(-1).nonzero().squeeze(1)
    inputs = contexts.reshape(-1).index_select(0, where)
    noise = negatives.reshape(-1, negatives.shape[-1]).index_select(0, where)
    true = centres.repeat_interleave(mask.shape[1]).index_select(0, where)
    targets = torch.cat([true[:, None], noise], dim=1)
    weights = torch.cat([torch.ones_like(true[:, None]), noise != true[:, None]], dim=1)
    return inputs, targets, weights


def logit_gradients(logits: torch.Tensor) -> torch.Tensor:
    """d loss / d logits: sigmoid(x) - 1 for the true word, sigmoid(x) for the noise words."""
    grad = torch.sigmoid(logits)
    grad[..., 0] -= 1
    return grad


class Gradients(NamedTuple):
    """A batch's loss gradients as table rows: row ``input_ids[i]`` of ``inputs`` receives
    ``input_rows[i]`` (repeated ids add up), and the same for ``outputs``; with the summed loss and
    the number of predictions."""

    input_ids: torch.Tensor
    input_rows: torch.Tensor
    output_ids: torch.Tensor
    output_rows: torch.Tensor
    loss: torch.Tensor
    predictions: torch.Tensor


class Word2VecNet(nn.Module):
    """The two tables, initialized as word2vec does (inputs uniform in +-0.5 / dim, outputs zero)."""

    def __init__(self, vocab_size: int, dim: int = 100) -> None:
        super().__init__()
        self.inputs = nn.Embedding(vocab_size, dim, sparse=True)
        self.outputs = nn.Embedding(vocab_size, dim, sparse=True)
        nn.init.uniform_(self.inputs.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.outputs.weight)

    @property
    def dim(self) -> int:
        return self.inputs.embedding_dim

    def rows(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        """Rows of a table for ``ids`` of any shape, without autograd (one ``index_select``)."""
        return table.weight.detach().index_select(0, ids.reshape(-1)).view(*ids.shape, self.dim)

    def gradients(
        self,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        mask: torch.Tensor,
        negatives: torch.Tensor,
        scale: float = 1.0,
    ) -> Gradients:
        """The gradients of the batch's summed loss, times ``scale``, as rows of the two tables."""
        raise NotImplementedError

    def per_table(self, g: Gradients) -> list[tuple[nn.Embedding, torch.Tensor, torch.Tensor]]:
        """(table, ids (N,), rows (N, dim)) for each table."""
        return [
            (table, ids.reshape(-1), rows.reshape(-1, self.dim))
            for table, ids, rows in (
                (self.inputs, g.input_ids, g.input_rows),
                (self.outputs, g.output_ids, g.output_rows),
            )
        ]

    @torch.no_grad()
    def set_gradients(self, *batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the gradients as the tables' sparse ``.grad``; return (summed loss, predictions)."""
        g = self.gradients(*batch)
        for table, ids, rows in self.per_table(g):
            shape = table.weight.shape
            table.weight.grad = torch.sparse_coo_tensor(ids[None], rows, shape, check_invariants=False)
        return g.loss, g.predictions

    @torch.no_grad()
    def sgd_step(self, *batch: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain SGD's update of the batch, added to the tables in place (``torch.optim.SGD``'s update
        from :meth:`set_gradients`, without gradient tensors); return (summed loss, predictions)."""
        g = self.gradients(*batch, scale=-lr)
        for table, ids, rows in self.per_table(g):
            index = ids[:, None].expand(-1, self.dim)  # expanded: torch's sorted, parallel path
            table.weight.detach().scatter_add_(0, index, rows)
        return g.loss, g.predictions


@register_net("skipgram")
class SkipGram(Word2VecNet):
    """Skip-gram: every (context, centre) pair in the window is one prediction."""

    def forward(
        self, centres: torch.Tensor, contexts: torch.Tensor, mask: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss over the batch's pairs, number of pairs)."""
        if negatives.dim() == 3:
            inputs, targets, weights = pairs(centres, contexts, mask, negatives)
            logits = (self.inputs(inputs)[:, None, :] * self.outputs(targets)).sum(-1)  # (P, 1 + K)
            return negative_sampling_loss(logits, weights.to(logits.dtype)).sum(), mask.sum()
        targets = torch.cat([centres[:, None], negatives], dim=1)
        logits = torch.bmm(self.inputs(contexts), self.outputs(targets).transpose(1, 2))  # (B, C, 1 + K)
        return (negative_sampling_loss(logits) * mask).sum(), mask.sum()

    @torch.no_grad()
    def gradients(
        self,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        mask: torch.Tensor,
        negatives: torch.Tensor,
        scale: float = 1.0,
    ) -> Gradients:
        if negatives.dim() == 3:
            return self.pair_gradients(centres, contexts, mask, negatives, scale)
        targets = torch.cat([centres[:, None], negatives], dim=1)
        x, v = self.rows(self.inputs, contexts), self.rows(self.outputs, targets)
        logits = torch.bmm(x, v.transpose(1, 2))
        loss = (negative_sampling_loss(logits) * mask).sum()
        grad = logit_gradients(logits).mul_(mask[..., None] * scale)
        input_rows, output_rows = torch.bmm(grad, v), torch.bmm(grad.transpose(1, 2), x)
        return Gradients(contexts, input_rows, targets, output_rows, loss, mask.sum())

    def pair_gradients(
        self,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        mask: torch.Tensor,
        negatives: torch.Tensor,
        scale: float,
    ) -> Gradients:
        """:meth:`gradients` with noise words of each pair's own ``(B, C, K)``: the window's pairs
        gathered into one row each first, so no work goes to the padding."""
        inputs, targets, weights = pairs(centres, contexts, mask, negatives)
        x, v = self.rows(self.inputs, inputs), self.rows(self.outputs, targets)
        logits = torch.bmm(v, x[:, :, None])[..., 0]  # (P, 1 + K): 2x faster than (v * x).sum here
        weights = weights.to(logits.dtype)
        loss = negative_sampling_loss(logits, weights).sum()
        grad = logit_gradients(logits).mul_(weights * scale)
        input_rows = torch.bmm(grad[:, None, :], v)[:, 0]
        output_rows = torch.bmm(grad[:, :, None], x[:, None, :])  # (P, 1 + K, dim)
        return Gradients(inputs, input_rows, targets, output_rows, loss, mask.sum())


@register_net("cbow")
class CBOW(Word2VecNet):
    """CBOW: the mean of the window's context vectors is one prediction of its centre word.

    As word2vec.c and gensim (``cbow_mean=1``), each context vector receives the whole gradient of
    the mean, not 1/n of it.
    """

    def forward(
        self, centres: torch.Tensor, contexts: torch.Tensor, mask: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss over the batch's windows that hold a context word, number of such windows)."""
        total = (self.inputs(contexts) * mask[..., None]).sum(1)
        count = mask.sum(1, keepdim=True)
        hidden = total + (total / count.clamp(min=1) - total).detach()  # the mean; the sum's gradient
        targets = torch.cat([centres[:, None], negatives], dim=1)
        logits = torch.bmm(self.outputs(targets), hidden[:, :, None])[..., 0]  # (B, 1 + K)
        used = count[:, 0] > 0
        return (negative_sampling_loss(logits) * used).sum(), used.sum()

    @torch.no_grad()
    def gradients(
        self,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        mask: torch.Tensor,
        negatives: torch.Tensor,
        scale: float = 1.0,
    ) -> Gradients:
        ids = contexts.masked_select(mask)  # only the context words in the windows, window by window
        count = mask.sum(1)
        offsets = count.cumsum(0) - count
        hidden = F.embedding_bag(ids, self.inputs.weight.detach(), offsets, mode="mean")  # 0: no context
        targets = torch.cat([centres[:, None], negatives], dim=1)
        v = self.rows(self.outputs, targets)
        logits = (v * hidden[:, None, :]).sum(-1)  # (B, 1 + K): 3x faster than bmm on a CPU here
        used = (count > 0)[:, None]
        loss = (negative_sampling_loss(logits) * used[:, 0]).sum()
        grad = logit_gradients(logits).mul_(used * scale)
        hidden_grad = torch.bmm(grad[:, None, :], v)[:, 0]
        input_rows = hidden_grad.repeat_interleave(count, dim=0, output_size=len(ids))
        output_rows = grad[..., None] * hidden[:, None, :]
        return Gradients(ids, input_rows, targets, output_rows, loss, used.sum())
