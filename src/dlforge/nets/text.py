"""Text classifier networks over embedded token sequences.

Every network takes ``x`` (N, C, L, D): C embedding channels (1, or 2 for Kim's multichannel
model) of L tokens of dimension D, and ``lengths`` (N,), the number of real (non-PAD) tokens of
each text; it returns logits (N, num_classes).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlforge.nets.layers import dense_stack, make_activation
from dlforge.registry import register_net


def as_sequence(x: torch.Tensor) -> torch.Tensor:
    """(N, C, L, D) -> (N, C * D, L): a filter of height h spanning the whole embedding (of every
    channel) is then a 1-D convolution over time, several times faster than Conv2d on a CPU."""
    return x.permute(0, 1, 3, 2).flatten(1, 2)


@register_net("text_cnn")
class TextCNN(nn.Module):
    """Seed 000's text CNN: the sentence as an (L x D) image, a first convolution of height
    ``kernel_size`` spanning the whole embedding, more 1-D convolutions over time, max-pool,
    flatten, dense layers, softmax. Seed 000: 2 x 64 filters of height 3, pool 2, dense 128."""

    def __init__(
        self,
        embedding_dim: int,
        max_len: int,
        num_classes: int,
        channels: int = 1,
        filters: list[int] | tuple[int, ...] = (64, 64),
        kernel_size: int = 3,
        pool: int = 2,
        hidden: list[int] | tuple[int, ...] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        length = max_len
        layers: list[nn.Module] = []
        in_channels = channels * embedding_dim
        for width in filters:
            layers += [nn.Conv1d(in_channels, width, kernel_size), make_activation(activation)]
            in_channels, length = width, length - kernel_size + 1
        if pool > 1:
            layers.append(nn.MaxPool1d(pool))
            length //= pool
        if length < 1:
            raise ValueError(
                f"max_len {max_len} is too short for {len(filters)} convolutions of height {kernel_size} "
                f"and pool {pool}; raise data.max_len or use fewer layers"
            )
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.dense, width = dense_stack(in_channels * length, list(hidden), activation, dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.dense(self.features(as_sequence(x))))


@register_net("kim_cnn")
class KimCNN(nn.Module):
    """Kim (2014): parallel convolutions of heights ``widths`` (``maps`` filters each) spanning
    the embedding, ReLU, max-over-time pooling, dropout, softmax. With 2 channels (multichannel)
    every filter reads both. ``max_norm`` rescales the output layer's weight rows to that l2 norm
    at most after each step (Kim: 3)."""

    def __init__(
        self,
        embedding_dim: int,
        max_len: int,
        num_classes: int,
        channels: int = 1,
        widths: list[int] | tuple[int, ...] = (3, 4, 5),
        maps: int = 100,
        dropout: float = 0.5,
        max_norm: float | None = 3.0,
    ) -> None:
        super().__init__()
        if max_len < max(widths):
            raise ValueError(f"max_len {max_len} is shorter than the widest filter ({max(widths)})")
        self.convs = nn.ModuleList(nn.Conv1d(channels * embedding_dim, maps, w) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(maps * len(widths), num_classes)
        self.max_norm = max_norm

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x)
        pooled = [conv(x).relu().amax(dim=2) for conv in self.convs]
        return self.head(self.dropout(torch.cat(pooled, dim=1)))

    @torch.no_grad()
    def apply_constraints(self) -> None:
        if self.max_norm:
            self.head.weight.copy_(torch.renorm(self.head.weight, p=2, dim=0, maxnorm=self.max_norm))


@register_net("text_mlp")
class TextMLP(nn.Module):
    """Seed 000's baseline: flatten the (L x D) embedded text, dense layers, softmax."""

    def __init__(
        self,
        embedding_dim: int,
        max_len: int,
        num_classes: int,
        channels: int = 1,
        hidden: list[int] | tuple[int, ...] = (1024, 1024, 1024),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dense, width = dense_stack(channels * max_len * embedding_dim, list(hidden), activation, dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.dense(x.flatten(1)))


@register_net("text_rnn")
class TextRNN(nn.Module):
    """A recurrent network over the embedded tokens, packed so that padding never reaches the state
    (a batch without padding skips the packing, which only costs time then).

    ``cell``: ``rnn`` (Elman's plain RNN, ``h_t = tanh(W x_t + U h_{t-1} + b)``), ``lstm`` or ``gru``.

    ``readout``: ``last`` (the final hidden state of the last layer, both directions), ``mean`` or
    ``max`` (pooled over the real tokens' outputs).

    ``chrono_init``: None (PyTorch's initialization), or T: Tallec & Ollivier (2018)'s chrono
    initialization for dependencies up to T steps back. Each unit's keep-gate bias (LSTM: forget
    gate, GRU: update gate) is log U(1, T - 1), so at initialization the units remember over 1 to
    T steps instead of about 2 (PyTorch's zero-centred biases keep half the state per step); the
    LSTM's input gate gets the opposite bias. A plain RNN has no gate: it is left as it is.
    """

    def __init__(
        self,
        embedding_dim: int,
        max_len: int,
        num_classes: int,
        channels: int = 1,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        readout: str = "last",
        dropout: float = 0.0,
        chrono_init: float | None = None,
    ) -> None:
        super().__init__()
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}.get(cell)
        if rnn is None:
            raise ValueError(f"cell must be rnn, lstm or gru, not {cell!r}")
        if readout not in ("last", "mean", "max"):
            raise ValueError(f"readout must be last, mean or max, not {readout!r}")
        self.rnn = rnn(
            channels * embedding_dim,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        if chrono_init is not None and cell != "rnn":
            self.init_chrono(chrono_init)
        self.readout = readout
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    @torch.no_grad()
    def init_chrono(self, max_steps: float) -> None:
        """Chrono initialization of the gate biases (see the class docstring), every layer and direction."""
        if max_steps <= 2:
            raise ValueError(f"chrono_init needs a horizon of more than 2 steps, not {max_steps}")
        size = self.rnn.hidden_size
        keep, write = slice(size, 2 * size), slice(0, size)  # LSTM gates: i, f, g, o; GRU: r, z, n
        for name, input_bias in self.rnn.named_parameters():
            if name.startswith("bias_ih"):
                hidden_bias = self.rnn.get_parameter(name.replace("bias_ih", "bias_hh"))
                bias = torch.empty(size).uniform_(1, max_steps - 1).log()
                input_bias[keep], hidden_bias[keep] = bias, 0.0
                if isinstance(self.rnn, nn.LSTM):
                    input_bias[write], hidden_bias[write] = -bias, 0.0

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 1, 3).flatten(2)  # (N, L, C * D)
        lengths = lengths.cpu()
        # packing costs time (benchmarks/rnn_packing.py); a traced graph (export) keeps it for every input
        unpadded = not torch.jit.is_tracing() and bool((lengths == x.shape[1]).all())
        if unpadded:
            outputs, state = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            outputs, state = self.rnn(packed)
        if self.readout == "last":
            hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
            directions = 2 if self.rnn.bidirectional else 1
            features = hidden[-directions:].transpose(0, 1).flatten(1)  # last layer, all directions
        else:
            padded = (
                outputs
                if unpadded
                else pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])[0]
            )
            mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None].to(x.device))[
                ..., None
            ]
            if self.readout == "mean":
                features = (padded * mask).sum(1) / mask.sum(1).clamp_min(1)
            else:
                features = padded.masked_fill(~mask, float("-inf")).amax(1)
        return self.head(self.dropout(features))
