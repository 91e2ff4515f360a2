"""Image classifiers: a configurable conv net (LeNet, the seeds' CNNs) and a dense baseline."""

from __future__ import annotations

import torch
from torch import nn

from dlforge.nets.layers import dense_stack, make_activation
from dlforge.registry import register_net


@register_net("convnet")
class ConvNet(nn.Module):
    """Blocks of convolutions, each block closed by 2x2 max-pooling, then dense layers and a linear head.

    ``blocks=[[20], [50]], kernel_size=5, hidden=[500]`` is LeNet; ``blocks=[[32, 32], [64, 64]]``
    with ``padding="same"`` is the Keras CIFAR-10 CNN. The head returns logits (softmax lives in the loss).

    Args:
        blocks: output channels of each convolution, grouped by pooling block.
        block_dropout: dropout after each block's pooling (one value for all blocks, or one per block).
        hidden: widths of the dense layers before the output layer.
        batch_norm: batch-normalize after each convolution.
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        num_classes: int,
        blocks: list[list[int]] = ((20,), (50,)),
        kernel_size: int = 5,
        padding: str = "valid",
        activation: str = "relu",
        block_dropout: float | list[float] = 0.0,
        hidden: list[int] = (500,),
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        drops = block_dropout if isinstance(block_dropout, (list, tuple)) else [block_dropout] * len(blocks)
        if len(drops) != len(blocks):
            raise ValueError(f"block_dropout has {len(drops)} values for {len(blocks)} blocks")
        layers: list[nn.Module] = []
        channels = in_channels
        for block, drop in zip(blocks, drops, strict=True):
            for out in block:
                layers.append(nn.Conv2d(channels, out, kernel_size, padding=padding, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(make_activation(activation))
                channels = out
            layers.append(nn.MaxPool2d(2))
            if drop > 0:
                layers.append(nn.Dropout(drop))
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            try:
                flat = self.features(torch.zeros(1, in_channels, height, width)).shape[1]
            except RuntimeError:
                flat = 0
        if flat == 0:
            raise ValueError(
                f"{len(blocks)} blocks of {kernel_size}x{kernel_size} convolutions and 2x2 pooling shrink "
                f"{height}x{width} images to nothing; use fewer blocks, a smaller kernel or padding=same"
            )
        self.dense, features = dense_stack(flat, list(hidden), activation, dropout)
        self.head = nn.Linear(features, num_classes)
        self.embedding_dim = features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (used as the domain feature extractor for FID/KID)."""
        return self.dense(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@register_net("mlp")
class MLP(nn.Module):
    """Flatten, dense layers, linear head: the dense baseline."""

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        num_classes: int,
        hidden: list[int] = (512, 256),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dense, features = dense_stack(in_channels * height * width, list(hidden), activation, dropout)
        self.head = nn.Linear(features, num_classes)
        self.embedding_dim = features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
