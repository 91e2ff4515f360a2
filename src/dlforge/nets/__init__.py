"""Plain ``nn.Module`` networks, each registered by name beside its definition (``dlforge.registry``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from dlforge.nets import (  # noqa: F401  (they register)
    audio,
    autoencoder,
    classical,
    classifier,
    gan,
    pix2pix,
    seq2seq,
    stackgan,
    tabular,
    text,
    wavenet,
    word2vec,
)
from dlforge.registry import NETS


def build_net(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name`` with keyword arguments from config and data."""
    try:
        factory = NETS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETS)}") from None
    return factory(**kwargs)


__all__ = ["NETS", "build_net"]
