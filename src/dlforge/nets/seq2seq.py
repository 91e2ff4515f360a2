"""Character-level encoder-decoder networks: a bidirectional GRU with attention, and a Transformer.

Both read letter ids (N, S) (PAD after each word) and write output ids one at a time, starting
from BOS and ending with EOS, through one interface that greedy and beam-search decoding share:

- ``encode(src)`` -> ``values`` (N, S, D), attention ``keys`` (N, S, K), ``mask`` (N, S) (True at
  letters), and the decoder's first ``state``;
- ``step(token, state, values, keys, mask)`` -> ``logits`` (N, V) of the next token, the new state,
  and the attention ``weights`` (N, S) over the input letters;
- ``forward(src, tgt_in, teacher_forcing)`` -> logits (N, T, V) and weights (N, T, S) for a whole
  target (training); ``tgt_in`` is BOS and the target shifted right.

:meth:`Seq2SeqNet.greedy` is written in TorchScript's subset of Python, so a scripted network
keeps its decoding loop (``python -m dlforge.export format=torchscript``).

The special token ids (``pad``, ``bos``, ``eos``) are the tokenizer's: the model hands them over
(:class:`dlforge.models.Seq2Seq`, from :mod:`dlforge.data.piglatin`); the networks import nothing
from the data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlforge.registry import register_net

ATTENTION = ("bahdanau", "luong")


class Seq2SeqNet(nn.Module):
    """What both networks share: the special token ids and greedy decoding over ``encode`` and ``step``.

    Args:
        pad, bos, eos: the tokenizer's padding, start and end ids (the defaults are those of
            :mod:`dlforge.data.piglatin`; the model passes them). PAD and BOS are never an output.
    """

    def __init__(self, pad: int = 0, bos: int = 1, eos: int = 2) -> None:
        super().__init__()
        self.pad, self.bos, self.eos = pad, bos, eos  # as attributes: TorchScript reads no globals

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def step(
        self, token: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def greedy(self, src: Tensor, max_len: int) -> tuple[Tensor, Tensor]:
        """The most likely token at each step: ids (N, max_len), PAD after EOS, and the attention
        weights (N, max_len, S); stops early once every row has its EOS."""
        values, keys, mask, state = self.encode(src)
        token = torch.full((src.size(0),), self.bos, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        tokens = torch.full((src.size(0), max_len), self.pad, dtype=torch.long, device=src.device)
        weights = torch.zeros(src.size(0), max_len, src.size(1), device=src.device)
        for t in range(max_len):
            logits, state, attention = self.step(token, state, values, keys, mask)
            self.forbid_specials(logits)
            token = logits.argmax(dim=-1).masked_fill(done, self.pad)
            tokens[:, t] = token
            weights[:, t] = attention.masked_fill(done[:, None], 0.0)
            done = done | (token == self.eos)
            if bool(done.all()):
                break
        return tokens, weights

    def forbid_specials(self, logits: Tensor) -> None:
        """Rule PAD and BOS out of next-token ``logits`` (N, V), in place: they are never an output."""
        logits[:, self.pad] = float("-inf")
        logits[:, self.bos] = float("-inf")


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dimension where ``mask`` (broadcast) is True."""
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


class BahdanauDecoder(nn.Module):
    """Additive attention (Bahdanau et al. 2015): the previous state asks where to look, the context
    goes into the GRU with the previous token, the output reads state, context and token."""

    def __init__(
        self, vocab_size: int, embed_dim: int, value_dim: int, hidden: int, dropout: float, pad: int
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.key = nn.Linear(value_dim, hidden, bias=False)
        self.query = nn.Linear(hidden, hidden)
        self.energy = nn.Linear(hidden, 1, bias=False)
        self.cell = nn.GRUCell(embed_dim + value_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden + value_dim + embed_dim, vocab_size)

    def step(
        self, token: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        embedded = self.dropout(self.embed(token))
        scores = self.energy(torch.tanh(keys + self.query(state)[:, None])).squeeze(-1)
        weights = masked_softmax(scores, mask)
        context = torch.bmm(weights[:, None], values).squeeze(1)
        state = self.cell(torch.cat([embedded, context], dim=-1), state)
        logits = self.out(self.dropout(torch.cat([state, context, embedded], dim=-1)))
        return logits, state, weights


class LuongDecoder(nn.Module):
    """Multiplicative ("general") attention (Luong et al. 2015) after the GRU: the new state asks
    where to look, ``tanh(W [context; state])`` gives the output. Without input feeding the GRU
    never sees the attention, so a teacher-forced target runs through it in one call."""

    def __init__(
        self, vocab_size: int, embed_dim: int, value_dim: int, hidden: int, dropout: float, pad: int
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.key = nn.Linear(value_dim, hidden, bias=False)
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True)
        self.combine = nn.Linear(value_dim + hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def attend(self, outputs: Tensor, values: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (N, T, V) and weights (N, T, S) for GRU outputs (N, T, H)."""
        weights = masked_softmax(torch.bmm(outputs, keys.transpose(1, 2)), mask[:, None])
        context = torch.bmm(weights, values)
        attentional = torch.tanh(self.combine(torch.cat([context, outputs], dim=-1)))
        return self.out(self.dropout(attentional)), weights

    def teacher_forced(
        self, tgt_in: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        outputs, _ = self.rnn(self.dropout(self.embed(tgt_in)), state[None].contiguous())
        return self.attend(outputs, values, keys, mask)

    def step(
        self, token: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        outputs, hidden = self.rnn(self.dropout(self.embed(token[:, None])), state[None].contiguous())
        logits, weights = self.attend(outputs, values, keys, mask)
        return logits[:, 0], hidden[0], weights[:, 0]


@register_net("gru_seq2seq")
class GRUSeq2Seq(Seq2SeqNet):
    """Bidirectional GRU encoder (packed: padding never reaches a state) and a GRU decoder with
    Bahdanau or Luong attention, started from the encoder's final states of both directions.
    ``pad``, ``bos``, ``eos``: the tokenizer's special ids (:class:`Seq2SeqNet`)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden: int = 64,
        layers: int = 1,
        attention: str = "luong",
        dropout: float = 0.1,
        pad: int = 0,
        bos: int = 1,
        eos: int = 2,
    ) -> None:
        super().__init__(pad, bos, eos)
        if attention not in ATTENTION:
            raise ValueError(f"model.net.attention must be one of {ATTENTION}, not {attention!r}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.encoder = nn.GRU(
            embed_dim,
            hidden,
            layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0,
        )
        self.bridge = nn.Linear(2 * hidden, 2 * hidden)
        decoder = BahdanauDecoder if attention == "bahdanau" else LuongDecoder
        self.decoder = decoder(vocab_size, embed_dim, 2 * hidden, 2 * hidden, dropout, pad)
        self.dropout = nn.Dropout(dropout)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mask = src != self.pad
        lengths = mask.sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(
            self.dropout(self.embed(src)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, final = self.encoder(packed)
        values, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        state = torch.tanh(self.bridge(torch.cat([final[-2], final[-1]], dim=-1)))
        return values, self.decoder.key(values), mask, state

    def step(
        self, token: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.decoder.step(token, state, values, keys, mask)

    @torch.jit.unused
    def forward(self, src: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0) -> tuple[Tensor, Tensor]:
        """Logits (N, T, V) and attention (N, T, S) for the target ``tgt_in`` (BOS, then the target
        shifted right); with ``teacher_forcing`` < 1 each step feeds the true previous token with
        that probability and the model's own best guess otherwise (scheduled sampling)."""
        values, keys, mask, state = self.encode(src)
        if teacher_forcing >= 1 and isinstance(self.decoder, LuongDecoder):
            return self.decoder.teacher_forced(tgt_in, state, values, keys, mask)
        logits, weights = [], []
        token = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            step_logits, state, step_weights = self.step(token, state, values, keys, mask)
            logits.append(step_logits)
            weights.append(step_weights)
            if t + 1 < tgt_in.size(1):
                token = tgt_in[:, t + 1]
                if teacher_forcing < 1:
                    guess = step_logits.argmax(dim=-1)
                    feed = torch.rand(token.shape, device=token.device) < teacher_forcing
                    token = torch.where(feed, token, guess)
        return torch.stack(logits, dim=1), torch.stack(weights, dim=1)


def sinusoids(length: int, dim: int, device: torch.device) -> Tensor:
    """Vaswani et al.'s fixed position encodings (length, dim): defined for any length."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim)
    )
    angles = position * frequency
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :dim]


class DecoderLayer(nn.Module):
    """Pre-norm Transformer decoder layer that returns its cross-attention weights (mean of heads)."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, dim))
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(3)])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, causal: Tensor, padding: Tensor) -> tuple[Tensor, Tensor]:
        h = self.norms[0](x)
        x = x + self.dropout(self.self_attention(h, h, h, attn_mask=causal, need_weights=False)[0])
        h = self.norms[1](x)
        attended, weights = self.cross_attention(h, memory, memory, key_padding_mask=padding)
        assert weights is not None  # need_weights (the default): the heads' mean
        x = x + self.dropout(attended)
        return x + self.dropout(self.ff(self.norms[2](x))), weights


@register_net("transformer_seq2seq")
class TransformerSeq2Seq(Seq2SeqNet):
    """A small Transformer encoder-decoder (Vaswani et al. 2017, pre-norm) over letters, with fixed
    sinusoidal positions. Its decoding state is the output so far: each step re-reads it whole.
    ``pad``, ``bos``, ``eos``: the tokenizer's special ids (:class:`Seq2SeqNet`)."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 64,
        heads: int = 4,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        ff: int = 256,
        dropout: float = 0.1,
        pad: int = 0,
        bos: int = 1,
        eos: int = 2,
    ) -> None:
        super().__init__(pad, bos, eos)
        self.dim = dim
        self.src_embed = nn.Embedding(vocab_size, dim, padding_idx=pad)
        self.tgt_embed = nn.Embedding(vocab_size, dim, padding_idx=pad)
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(
            layer, encoder_layers, nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.layers = nn.ModuleList([DecoderLayer(dim, heads, ff, dropout) for _ in range(decoder_layers)])
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def positioned(self, embedded: Tensor) -> Tensor:
        """Embeddings (N, L, dim) plus the position encodings, both of unit scale (PyTorch's
        embeddings start N(0, 1): scaled by sqrt(dim) as in the paper, they would drown the positions
        this task aligns by)."""
        positions = sinusoids(embedded.size(1), self.dim, embedded.device)
        return self.dropout(embedded + positions)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mask = src != self.pad
        values = self.encoder(self.positioned(self.src_embed(src)), src_key_padding_mask=~mask)
        start = torch.zeros(src.size(0), 0, dtype=torch.long, device=src.device)
        return values, values, mask, start

    def decode(self, tgt_in: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (N, T, V) and the last layer's cross-attention (N, T, S) for a whole target."""
        size = tgt_in.size(1)
        causal = torch.ones(size, size, dtype=torch.bool, device=tgt_in.device).triu(1)
        x = self.positioned(self.tgt_embed(tgt_in))
        weights = torch.zeros(tgt_in.size(0), size, values.size(1), device=tgt_in.device)
        for layer in self.layers:
            x, weights = layer(x, values, causal, ~mask)
        return self.out(self.norm(x)), weights

    def step(
        self, token: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        prefix = torch.cat([state, token[:, None]], dim=1)
        logits, weights = self.decode(prefix, values, mask)
        return logits[:, -1], prefix, weights[:, -1]

    @torch.jit.unused
    def forward(self, src: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0) -> tuple[Tensor, Tensor]:
        if teacher_forcing < 1:
            raise ValueError("the Transformer trains with teacher forcing only (model.teacher_forcing=1)")
        values, _, mask, _ = self.encode(src)
        return self.decode(tgt_in, values, mask)


@torch.no_grad()
def beam_search(net: Seq2SeqNet, src: Tensor, beam: int, max_len: int) -> tuple[Tensor, Tensor]:
    """The ``beam`` most likely partial outputs kept at each step (sum of token log-probabilities);
    returns the best finished one per row as :meth:`Seq2SeqNet.greedy` does (ids, attention).
    With ``beam`` 1 it is greedy decoding."""
    n, size = src.size(0), src.size(1)
    values, keys, mask, state = (t.repeat_interleave(beam, dim=0) for t in net.encode(src))
    scores = torch.full((n, beam), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # one live hypothesis to start with
    token = torch.full((n * beam,), net.bos, dtype=torch.long, device=src.device)
    done = torch.zeros(n * beam, dtype=torch.bool, device=src.device)
    tokens = torch.full((n * beam, max_len), net.pad, dtype=torch.long, device=src.device)
    weights = torch.zeros(n * beam, max_len, size, device=src.device)
    rows = torch.arange(n, device=src.device)[:, None] * beam
    for t in range(max_len):
        logits, state, attention = net.step(token, state, values, keys, mask)
        net.forbid_specials(logits)
        log_probs = logits.log_softmax(dim=-1)
        # a finished hypothesis continues only with PAD, at no cost
        log_probs[done] = float("-inf")
        log_probs[done, net.pad] = 0.0
        vocab = log_probs.size(-1)
        candidates = (scores.view(-1, 1) + log_probs).view(n, beam * vocab)
        scores, best = candidates.topk(beam, dim=1)
        parent = (rows + torch.div(best, vocab, rounding_mode="floor")).view(-1)
        token = (best % vocab).view(-1)
        state, tokens, weights, done = state[parent], tokens[parent], weights[parent], done[parent]
        tokens[:, t] = token
        weights[:, t] = attention[parent].masked_fill(done[:, None], 0.0)
        done = done | (token == net.eos)
        if bool(done.all()):
            break
    pick = (rows[:, 0] + scores.argmax(dim=1)).view(-1)
    return tokens[pick], weights[pick]
