"""Plain ``nn.Module`` networks, built by name so checkpoints store only plain data."""

from __future__ import annotations

from typing import Any

from torch import nn

from dlforge.nets.autoencoder import ConvAutoencoder, MLPAutoencoder
from dlforge.nets.classifiers import MLP, ConvNet
from dlforge.nets.gan import DCGAN, ConditionalDCGAN, GANSeed002
from dlforge.nets.pix2pix import PatchDiscriminator, UNetGenerator
from dlforge.nets.text import KimCNN, TextCNN, TextMLP, TextRNN

#: Every network a config or checkpoint may name. Loading never imports anything else.
NETS: dict[str, type[nn.Module]] = {
    "convnet": ConvNet,
    "mlp": MLP,
    "mlp_autoencoder": MLPAutoencoder,
    "conv_autoencoder": ConvAutoencoder,
    "text_cnn": TextCNN,
    "kim_cnn": KimCNN,
    "text_mlp": TextMLP,
    "text_rnn": TextRNN,
    "dcgan": DCGAN,
    "cgan": ConditionalDCGAN,
    "gan_seed002": GANSeed002,
    "unet_generator": UNetGenerator,
    "patch_discriminator": PatchDiscriminator,
}


def build_net(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name`` with keyword arguments from config and data."""
    try:
        cls = NETS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETS)}") from None
    return cls(**kwargs)


__all__ = ["MLP", "NETS", "ConvNet", "build_net"]
