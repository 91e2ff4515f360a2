"""Audio classifiers: a log-mel front end (torchaudio's filterbank) and a small CNN over its spectrogram."""

from __future__ import annotations

import torch
from torch import nn
from torchaudio.transforms import MelSpectrogram

from dlforge.registry import register_net


class LogMel(nn.Module):
    """Waveforms (N, T) in [-1, 1] -> log-mel spectrograms (N, 1, n_mels, frames).

    Power spectra of ``window_ms`` Hann windows every ``hop_ms``, pooled by ``n_mels`` triangular mel
    filters, in log scale; each mel band is standardized by a batch norm (the training clips' running
    statistics), as the image models standardize their pixels inside the network.
    """

    def __init__(self, sample_rate: int, n_mels: int = 40, window_ms: float = 32, hop_ms: float = 10) -> None:
        super().__init__()
        n_fft = round(sample_rate * window_ms / 1000)
        self.mel = MelSpectrogram(
            sample_rate, n_fft=n_fft, hop_length=round(sample_rate * hop_ms / 1000), n_mels=n_mels, f_min=20
        )
        self.norm = nn.BatchNorm1d(n_mels)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.log(self.mel(waves.float()) + 1e-6)).unsqueeze(1)


@register_net("audio_cnn")
class AudioCNN(nn.Module):
    """Log-mel spectrogram -> blocks of (3x3 convolution, batch norm, ReLU, 2x2 max-pool) -> the
    maximum over time of each channel and remaining frequency band -> dropout -> linear logits.

    Max-pooling over time makes the prediction independent of where in the clip the digit is spoken.

    Args:
        channels: output channels of each block.
        n_mels, window_ms, hop_ms: the front end's mel bands and analysis windows (:class:`LogMel`).
    """

    def __init__(
        self,
        sample_rate: int,
        num_classes: int,
        channels: list[int] = (16, 32, 64),
        n_mels: int = 40,
        window_ms: float = 32,
        hop_ms: float = 10,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.frontend = LogMel(sample_rate, n_mels, window_ms, hop_ms)
        layers: list[nn.Module] = []
        previous = 1
        for out in channels:
            layers += [
                nn.Conv2d(previous, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            previous = out
        self.features = nn.Sequential(*layers)
        bands = n_mels // 2 ** len(channels)
        if bands < 1:
            raise ValueError(f"{len(channels)} pooling blocks shrink {n_mels} mel bands to nothing; use more")
        self.embedding_dim = previous * bands
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, num_classes))

    def embed(self, waves: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, channels x bands): each channel's maximum over time in each band."""
        return self.features(self.frontend(waves)).amax(dim=-1).flatten(1)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(waves))
