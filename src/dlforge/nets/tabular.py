"""Networks over feature vectors (a standardized, one-hot encoded table row)."""

from __future__ import annotations

import torch
from torch import nn

from dlforge.nets.layers import dense_stack
from dlforge.registry import register_net


@register_net("tabular_mlp")
class TabularMLP(nn.Module):
    """Dense layers (optionally batch-normalized) over a feature vector, and a linear head."""

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        hidden: list[int] = (64, 32),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        features = num_features
        for width in hidden:
            stack, features = dense_stack(features, [width], activation, dropout)
            if batch_norm:
                stack.insert(1, nn.BatchNorm1d(width))
            layers.append(stack)
        self.dense = nn.Sequential(*layers)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dense(x))
