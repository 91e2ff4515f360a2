"""WaveNet (van den Oord et al. 2016): dilated causal convolutions over mu-law audio, with the fast
generation of Paine et al. 2016 ("Fast WaveNet generation": each layer keeps a queue of its past
inputs, so a new sample costs one step of every layer instead of a pass over the receptive field).

The network reads the mu-law companded signal ``x`` (levels mapped to [-1, 1]; 0 is silence) and
gives, at every position ``t``, logits over the ``levels`` mu-law levels of ``x[t]`` from
``x[t - receptive_field : t]`` only: the input is shifted one sample right, then every convolution
is causal. A clip is preceded by silence: training windows, evaluation and both samplers put a
receptive field of zeros before its first sample, so a prediction near the start always reads the
same context (the convolutions' own zero padding never reaches one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlforge.registry import register_net


class CausalConv1d(nn.Conv1d):
    """Kernel-2 convolution whose output at ``t`` reads its input at ``t - dilation`` and ``t``."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.dilation[0], 0)))

    def step_weight(self) -> torch.Tensor:
        """The kernel as one (2 C_in, C_out) matrix: the past tap's rows, then the present tap's, so
        that the output at one step is ``[input dilation steps ago, input now] @ matrix + bias``."""
        return self.weight.permute(2, 1, 0).reshape(-1, self.out_channels)


class ResidualLayer(nn.Module):
    """Dilated causal convolution + conditioning -> tanh x sigmoid gate -> one 1x1 convolution whose
    outputs are the residual (added to the layer's input) and the skip connection."""

    def __init__(self, residual: int, gate: int, skip: int, condition: int, dilation: int) -> None:
        super().__init__()
        self.dilation, self.residual = dilation, residual
        self.conv = CausalConv1d(residual, 2 * gate, dilation)
        self.condition = nn.Linear(condition, 2 * gate, bias=False)
        self.out = nn.Conv1d(gate, residual + skip, 1)

    def gated(self, h: torch.Tensor) -> torch.Tensor:
        filters, gates = h.chunk(2, dim=1)
        return torch.tanh(filters) * torch.sigmoid(gates)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, residual, T) and the global condition (N, condition) -> (next layer's input, skip)."""
        out = self.out(self.gated(self.conv(x) + self.condition(condition)[:, :, None]))
        return x + out[:, : self.residual], out[:, self.residual :]

    def step_weights(self, condition: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The layer as matrices for :meth:`step`, made once per generation: the convolution's taps
        (2 residual, 2 gate), its bias plus each clip's conditioning (N, 2 gate), the 1x1 output
        convolution's weight (gate, residual + skip) and bias."""
        out = self.out.weight[:, :, 0].T.contiguous()
        return self.conv.step_weight(), self.conv.bias + self.condition(condition), out, self.out.bias

    def step(
        self, past: torch.Tensor, now: torch.Tensor, weights: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` at one time step: inputs (N, residual) ``dilation`` steps ago and now."""
        conv, conv_bias, out, out_bias = weights
        gated = self.gated(torch.addmm(conv_bias, torch.cat([past, now], dim=1), conv))
        both = torch.addmm(out_bias, gated, out)
        return now + both[:, : self.residual], both[:, self.residual :]


@register_net("wavenet")
class WaveNet(nn.Module):
    """A causal input layer, ``stacks`` x ``layers`` residual layers with dilations 1, 2, 4, ...,
    2^(layers-1), and a head ReLU -> 1x1 -> ReLU -> 1x1 over the sum of the skips giving logits over
    ``levels`` mu-law levels; globally conditioned on the digit (and optionally the speaker: index 0
    is "any voice", the others the training voices).

    Args:
        num_classes: digits to condition on. num_speakers: training voices.
        residual_channels, gate_channels, skip_channels, condition_channels: widths.
        speaker_conditioning: also condition on the speaker.
    """

    def __init__(
        self,
        num_classes: int,
        num_speakers: int = 0,
        levels: int = 256,
        layers: int = 10,
        stacks: int = 2,
        residual_channels: int = 32,
        gate_channels: int = 32,
        skip_channels: int = 128,
        condition_channels: int = 32,
        speaker_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self.levels = levels
        self.input = CausalConv1d(1, residual_channels)
        self.digit = nn.Embedding(num_classes, condition_channels)
        self.speaker = nn.Embedding(num_speakers + 1, condition_channels) if speaker_conditioning else None
        self.layers = nn.ModuleList(
            ResidualLayer(residual_channels, gate_channels, skip_channels, condition_channels, 2**i)
            for _ in range(stacks)
            for i in range(layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(skip_channels, skip_channels, 1),
            nn.ReLU(),
            nn.Conv1d(skip_channels, levels, 1),
        )

    @property
    def receptive_field(self) -> int:
        """How many past samples a prediction reads: the shift, the input layer's tap, every dilation."""
        return 2 + sum(layer.dilation for layer in self.layers)

    def signal(self, levels: torch.Tensor) -> torch.Tensor:
        """Mu-law levels (integers) -> the network's input signal in [-1, 1]."""
        return levels.to(self.input.weight.dtype) * (2 / (self.levels - 1)) - 1

    def condition(self, labels: torch.Tensor, speakers: torch.Tensor | None = None) -> torch.Tensor:
        """The global conditioning vector (N, condition_channels) of each clip's digit (and speaker)."""
        condition = self.digit(labels)
        if self.speaker is not None:
            condition = condition + self.speaker(torch.zeros_like(labels) if speakers is None else speakers)
        return condition

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, speakers: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (N, levels, T) of every ``x[t]`` given ``x[:t]``, for the signal ``x`` (N, T)."""
        condition = self.condition(labels, speakers)
        h = self.input(F.pad(x, (1, -1))[:, None])  # shifted: position t sees x[:t] only
        skips = 0
        for layer in self.layers:
            h, skip = layer(h, condition)
            skips = skips + skip
        return self.head(skips)

    # --- generation --------------------------------------------------------------------------
    @staticmethod
    def draw(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float) -> torch.Tensor:
        """A level per row of ``logits`` (N, levels): inverse CDF of softmax(logits / temperature) at
        ``uniforms`` (N,), so that two samplers given the same numbers draw the same levels."""
        cdf = torch.softmax(logits.double() / temperature, dim=-1).cumsum(dim=-1)
        return torch.searchsorted(cdf, uniforms.double()[:, None]).clamp_max(logits.shape[-1] - 1)[:, 0]

    def silence(self, condition: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's ring buffer after a receptive field of silence: its inputs at the last
        ``dilation`` steps before a clip, (dilation, N, residual), time ``-dilation + j`` in slot ``j``."""
        x = condition.new_zeros(len(condition), self.receptive_field)
        h = self.input(F.pad(x, (1, -1))[:, None])
        queues = []
        for layer in self.layers:
            queues.append(h[:, :, -layer.dilation :].permute(2, 0, 1).contiguous())
            h, _ = layer(h, condition)
        return queues

    @torch.no_grad()
    def generate(
        self,
        labels: torch.Tensor,
        uniforms: torch.Tensor,
        speakers: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Mu-law levels (N, steps) drawn sample by sample with cached activations (Paine et al.).

        ``uniforms`` (steps, N) in [0, 1) pick each sample (:meth:`draw`). Layer ``l`` keeps the last
        ``dilation`` inputs it saw in a ring buffer, filled first by a pass over a receptive field of
        silence (:meth:`silence`): the one it reads ``dilation`` steps back is the slot it overwrites now.
        """
        n, steps = len(labels), uniforms.shape[0]
        condition = self.condition(labels, speakers)
        weights = [layer.step_weights(condition) for layer in self.layers]
        queues = self.silence(condition)
        input_weight, input_bias = self.input.step_weight(), self.input.bias
        hidden, output = self.head[1], self.head[3]
        head = [hidden.weight[:, :, 0].T.contiguous(), hidden.bias, output.weight[:, :, 0].T.contiguous()]
        # the input layer reads [x[t - 2], x[t - 1]] (the shifted signal): silence before the clip
        inputs = condition.new_zeros(n, 2)
        out = torch.empty(n, steps, dtype=torch.long, device=condition.device)
        for t in range(steps):
            h = torch.addmm(input_bias, inputs, input_weight)
            skips = torch.zeros_like(condition[:, :1])
            for layer, queue, layer_weights in zip(self.layers, queues, weights, strict=True):
                slot = t % layer.dilation
                h_next, skip = layer.step(queue[slot], h, layer_weights)
                queue[slot] = h  # read again dilation steps from now (after step has used the old value)
                h, skips = h_next, skips + skip
            hidden_units = torch.relu(torch.addmm(head[1], torch.relu(skips), head[0]))
            out[:, t] = self.draw(torch.addmm(output.bias, hidden_units, head[2]), uniforms[t], temperature)
            inputs = torch.cat([inputs[:, 1:], self.signal(out[:, t : t + 1])], dim=1)
        return out

    @torch.no_grad()
    def generate_naive(
        self,
        labels: torch.Tensor,
        uniforms: torch.Tensor,
        speakers: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """The reference sampler: each sample from a full pass over its receptive field (the same draws
        as :meth:`generate`, at a cost that grows with the receptive field)."""
        n, steps = len(labels), uniforms.shape[0]
        field = self.receptive_field
        x = self.input.weight.new_zeros(n, field + steps + 1)  # silence, the clip, the sample predicted
        out = torch.empty(n, steps, dtype=torch.long, device=labels.device)
        for t in range(steps):
            logits = self(x[:, t : t + field + 1], labels, speakers)[:, :, -1]
            out[:, t] = self.draw(logits, uniforms[t], temperature)
            x[:, field + t] = self.signal(out[:, t])
        return out
