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

ATTENTION = ("bahdanau", "luong", "location", "monotonic")


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


def case_tables(vocab_size: int, capitals: int) -> tuple[Tensor, Tensor]:
    """For each token id, its letter (a capital's id is its small letter's) and its case (0 small,
    1 capital, 2 not a letter), when the vocabulary's last ``2 x capitals`` ids are ``capitals``
    small letters then the same letters in capitals; ``capitals`` 0: each id its own letter."""
    ids = torch.arange(vocab_size)
    first_capital = vocab_size - capitals
    letter = torch.where(ids >= first_capital, ids - capitals, ids)
    case = torch.where(
        ids >= first_capital - capitals, (ids >= first_capital).long(), torch.full_like(ids, 2)
    )
    return letter, case if capitals else torch.zeros_like(ids)


class CasedEmbedding(nn.Module):
    """A letter's embedding as the sum of its letter's and its case's (``A`` = ``a`` + capital): what
    is learned of a small letter holds for its capital (:func:`case_tables`)."""

    def __init__(self, vocab_size: int, dim: int, pad: int, capitals: int) -> None:
        super().__init__()
        letter, case = case_tables(vocab_size, capitals)
        self.register_buffer("letter", letter, persistent=False)
        self.register_buffer("case", case, persistent=False)
        self.letters = nn.Embedding(vocab_size - capitals, dim, padding_idx=pad)
        self.cases = nn.Embedding(3, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.letters(self.letter[tokens]) + self.cases(self.case[tokens])


class CasedOutput(nn.Module):
    """Next-token logits as the sum of a letter's logit and a case's logit (:class:`CasedEmbedding`'s
    output side): which letter comes next and in which case are two decisions."""

    def __init__(self, dim: int, vocab_size: int, capitals: int) -> None:
        super().__init__()
        letter, case = case_tables(vocab_size, capitals)
        self.register_buffer("letter", letter, persistent=False)
        self.register_buffer("case", case, persistent=False)
        self.letters = nn.Linear(dim, vocab_size - capitals)
        self.cases = nn.Linear(dim, 3)

    def forward(self, x: Tensor) -> Tensor:
        return (
            self.letters(x)[:, self.letter] + self.cases(x)[:, self.case]
            if x.dim() == 2
            else (self.letters(x)[:, :, self.letter] + self.cases(x)[:, :, self.case])
        )


def letter_embedding(vocab_size: int, dim: int, pad: int, capitals: int) -> nn.Module:
    """Token embeddings: a plain table, or with ``capitals`` a :class:`CasedEmbedding`."""
    return CasedEmbedding(vocab_size, dim, pad, capitals) if capitals else nn.Embedding(vocab_size, dim, pad)


def letter_output(dim: int, vocab_size: int, capitals: int) -> nn.Module:
    """Next-token logits: a plain linear layer, or with ``capitals`` a :class:`CasedOutput`."""
    return CasedOutput(dim, vocab_size, capitals) if capitals else nn.Linear(dim, vocab_size)


class AttentionDecoder(nn.Module):
    """What the attention decoders share: the tokens' embedding, attention keys over the encoder's
    values, dropout, and :meth:`start`; each adds its attention and its ``step``."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        value_dim: int,
        hidden: int,
        dropout: float,
        pad: int,
        capitals: int = 0,
    ) -> None:
        super().__init__()
        self.embed = letter_embedding(vocab_size, embed_dim, pad, capitals)
        self.key = nn.Linear(value_dim, hidden, bias=False)
        self.dropout = nn.Dropout(dropout)

    def start(
        self, values: Tensor, letters: Tensor, mask: Tensor, state: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The values, attention keys and first state the steps read (``letters``: the embeddings)."""
        return values, self.key(values), state


class BahdanauDecoder(AttentionDecoder):
    """Additive attention (Bahdanau et al. 2015): the previous state asks where to look, the context
    goes into the GRU with the previous token, the output reads state, context and token."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        value_dim: int,
        hidden: int,
        dropout: float,
        pad: int,
        capitals: int = 0,
    ) -> None:
        super().__init__(vocab_size, embed_dim, value_dim, hidden, dropout, pad, capitals)
        self.query = nn.Linear(hidden, hidden)
        self.energy = nn.Linear(hidden, 1, bias=False)
        self.cell = nn.GRUCell(embed_dim + value_dim, hidden)
        self.out = letter_output(hidden + value_dim + embed_dim, vocab_size, capitals)

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


class LuongDecoder(AttentionDecoder):
    """Multiplicative ("general") attention (Luong et al. 2015) after the GRU: the new state asks
    where to look, ``tanh(W [context; state])`` gives the output. Without input feeding the GRU
    never sees the attention, so a teacher-forced target runs through it in one call."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        value_dim: int,
        hidden: int,
        dropout: float,
        pad: int,
        capitals: int = 0,
    ) -> None:
        super().__init__(vocab_size, embed_dim, value_dim, hidden, dropout, pad, capitals)
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True)
        self.combine = nn.Linear(value_dim + hidden, hidden)
        self.out = letter_output(hidden, vocab_size, capitals)

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


def first_letter(mask: Tensor, heads: int) -> Tensor:
    """Attention (N, heads, S) on each word's first letter: where a location-based attention starts."""
    start = torch.zeros(mask.size(0), heads, mask.size(1), device=mask.device)
    start[:, :, 0] = 1.0
    return start


def cyclic_shift(weights: Tensor, mask: Tensor) -> Tensor:
    """Attention (N, K, S) moved on by one letter within each word, the last letter's weight going to
    the first: a step relative to where the attention was, the same for a word of any length."""
    lengths = mask.sum(dim=1).clamp(min=1)
    last = weights.gather(2, (lengths - 1).view(-1, 1, 1).expand(-1, weights.size(1), 1))
    return torch.cat([last, weights[:, :, :-1]], dim=2) * mask[:, None]


class LocationDecoder(BahdanauDecoder):
    """Location-aware attention (Chorowski et al. 2015): additive attention whose scores also read
    convolution features of the previous step's attention, so that where to look next can be said
    relative to where the decoder looked. The state is the GRU's and the previous attention, side by
    side (N, hidden + S); the first attention is on the first letter."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        value_dim: int,
        hidden: int,
        dropout: float,
        pad: int,
        capitals: int = 0,
        filters: int = 16,
        kernel: int = 5,
    ) -> None:
        super().__init__(vocab_size, embed_dim, value_dim, hidden, dropout, pad, capitals)
        self.hidden = hidden
        self.conv = nn.Conv1d(1, filters, kernel, padding=kernel // 2, bias=False)
        self.location = nn.Linear(filters, hidden, bias=False)

    def start(
        self, values: Tensor, letters: Tensor, mask: Tensor, state: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return values, self.key(values), torch.cat([state, first_letter(mask, 1)[:, 0]], dim=1)

    def step(
        self, token: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        hidden, previous = state[:, : self.hidden], state[:, self.hidden :]
        embedded = self.dropout(self.embed(token))
        where = self.location(self.conv(previous[:, None]).transpose(1, 2))
        scores = self.energy(torch.tanh(keys + self.query(hidden)[:, None] + where)).squeeze(-1)
        weights = masked_softmax(scores, mask)
        context = torch.bmm(weights[:, None], values).squeeze(1)
        hidden = self.cell(torch.cat([embedded, context], dim=-1), hidden)
        logits = self.out(self.dropout(torch.cat([hidden, context, embedded], dim=-1)))
        return logits, torch.cat([hidden, weights], dim=1), weights


class MonotonicDecoder(AttentionDecoder):
    """Attention that moves by relative steps (monotonic attention, Raffel et al. 2017, here cyclic),
    reading a pointer to the letters (See et al. 2017): a length-independent translator.

    Each of ``heads`` attention heads starts on the first letter; at each step, from the GRU's new
    state, it mixes three moves of its previous weights: *stay*, *move on* one letter (the last
    letter moving on to the first: :func:`cyclic_shift`), or *jump* to where content attention
    (Luong's "general" scores) points. No move depends on how long the word is or how far along the
    attention is, so the same moves take it along a word of 40 letters as along one of 4. The values
    are the encoder's outputs and each letter's own embedding (the pointer: what letter is there).
    The GRU reads the previous token and the previous step's contexts (input feeding), so that it
    knows where its heads were. The state is the GRU's and the heads' weights (N, hidden + heads x S);
    the weights returned are the first head's.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        value_dim: int,
        hidden: int,
        dropout: float,
        pad: int,
        capitals: int = 0,
        heads: int = 2,
    ) -> None:
        super().__init__(vocab_size, embed_dim, value_dim + embed_dim, hidden, dropout, pad, capitals)
        self.hidden, self.heads, self.value_dim = hidden, heads, value_dim + embed_dim
        self.query = nn.Linear(hidden, heads * hidden)
        self.moves = nn.Linear(hidden, heads * 3)  # jump, stay, move on
        self.cell = nn.GRUCell(embed_dim + heads * self.value_dim, hidden)
        self.combine = nn.Linear(heads * self.value_dim + hidden + embed_dim, hidden)
        self.out = letter_output(hidden, vocab_size, capitals)

    def start(
        self, values: Tensor, letters: Tensor, mask: Tensor, state: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        values = torch.cat([values, letters], dim=-1)
        start = first_letter(mask, self.heads).flatten(1)
        return values, self.key(values), torch.cat([state, start], dim=1)

    def step(
        self, token: Tensor, state: Tensor, values: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        n = token.size(0)
        hidden = state[:, : self.hidden]
        previous = state[:, self.hidden :].view(n, self.heads, -1)
        embedded = self.dropout(self.embed(token))
        contexts = torch.bmm(previous, values).flatten(1)
        hidden = self.cell(torch.cat([embedded, contexts], dim=-1), hidden)
        queries = self.query(hidden).view(n, self.heads, self.hidden)
        content = masked_softmax(torch.bmm(queries, keys.transpose(1, 2)), mask[:, None])
        moves = self.moves(hidden).view(n, self.heads, 3).softmax(dim=-1)[..., None]
        weights = moves[:, :, 0] * content + moves[:, :, 1] * previous
        weights = weights + moves[:, :, 2] * cyclic_shift(previous, mask)
        contexts = torch.bmm(weights, values).flatten(1)
        attentional = torch.tanh(self.combine(torch.cat([contexts, hidden, embedded], dim=-1)))
        logits = self.out(self.dropout(attentional))
        return logits, torch.cat([hidden, weights.flatten(1)], dim=1), weights[:, 0]


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
        capitals: int = 0,
    ) -> None:
        super().__init__(pad, bos, eos)
        if attention not in ATTENTION:
            raise ValueError(f"model.net.attention must be one of {ATTENTION}, not {attention!r}")
        self.embed = letter_embedding(vocab_size, embed_dim, pad, capitals)
        self.encoder = nn.GRU(
            embed_dim,
            hidden,
            layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0,
        )
        self.bridge = nn.Linear(2 * hidden, 2 * hidden)
        decoders = {
            "bahdanau": BahdanauDecoder,
            "luong": LuongDecoder,
            "location": LocationDecoder,
            "monotonic": MonotonicDecoder,
        }
        self.decoder = decoders[attention](
            vocab_size, embed_dim, 2 * hidden, 2 * hidden, dropout, pad, capitals
        )
        self.dropout = nn.Dropout(dropout)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mask = src != self.pad
        lengths = mask.sum(dim=1).clamp(min=1)
        letters = self.dropout(self.embed(src))
        packed = pack_padded_sequence(letters, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, final = self.encoder(packed)
        values, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        state = torch.tanh(self.bridge(torch.cat([final[-2], final[-1]], dim=-1)))
        values, keys, state = self.decoder.start(values, letters, mask, state)
        return values, keys, mask, state

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
        capitals: int = 0,
    ) -> None:
        super().__init__(pad, bos, eos)
        self.dim = dim
        self.src_embed = letter_embedding(vocab_size, dim, pad, capitals)
        self.tgt_embed = letter_embedding(vocab_size, dim, pad, capitals)
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(
            layer, encoder_layers, nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.layers = nn.ModuleList([DecoderLayer(dim, heads, ff, dropout) for _ in range(decoder_layers)])
        self.norm = nn.LayerNorm(dim)
        self.out = letter_output(dim, vocab_size, capitals)
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
