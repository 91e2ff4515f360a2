"""Pix2pix networks (Isola et al. 2017): a U-Net generator and a PatchGAN discriminator.

Both work on images in [-1, 1] (the model maps its [0, 1] data there and back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlforge.registry import register_net

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


@register_net("unet_generator")
class UNetGenerator(nn.Module):
    """Encoder-decoder with skip connections: each decoder level sees the matching encoder features.

    ``depth`` stride-2 4x4 convolutions halve the image down to the bottleneck (widths ``channels``
    x 1, 2, 4, ... capped at ``max_channels``); transposed convolutions double it back, each
    followed by concatenation with the encoder features of that size. Inputs whose sides are not
    multiples of ``2**depth`` (28x28 MNIST) are padded by edge replication and the output cropped
    back. ``dropout`` (pix2pix's noise source) acts in the ``dropout_layers`` innermost decoder
    levels while training; in eval mode the translation is deterministic.

    Args:
        in_channels, out_channels: channels of the input and of the produced image.
        height, width: image size (only checked: any size works through padding).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        height: int,
        width: int,
        channels: int = 64,
        depth: int = 5,
        max_channels: int = 512,
        norm: str = "batch",
        dropout: float = 0.5,
        dropout_layers: int = 3,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("a U-Net needs depth >= 1")
        widths = [min(channels * 2**i, max_channels) for i in range(depth)]
        self.multiple = 2**depth
        self.downs = nn.ModuleList()
        previous = in_channels
        for i, width_i in enumerate(widths):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            innermost = i == depth - 1
            layers.append(nn.Conv2d(previous, width_i, 4, stride=2, padding=1, bias=i == 0 or innermost))
            if 0 < i < depth - 1:
                layers.append(norm_layer(norm, width_i))
            self.downs.append(nn.Sequential(*layers))
            previous = width_i
        self.ups = nn.ModuleList()
        for level in reversed(range(depth)):  # from the bottleneck out; level 0 makes the image
            in_width = widths[level] * (1 if level == depth - 1 else 2)
            out_width = widths[level - 1] if level > 0 else out_channels
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(in_width, out_width, 4, stride=2, padding=1, bias=level == 0),
            ]
            if level > 0:
                layers.append(norm_layer(norm, out_width))
                if dropout > 0 and depth - 1 - level < dropout_layers:
                    layers.append(nn.Dropout(dropout))
            self.ups.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="replicate")
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for up in self.ups[:-1]:
            x = torch.cat([up(x), skips.pop()], dim=1)
        x = torch.tanh(self.ups[-1](x))
        return x[..., pad_h // 2 : pad_h // 2 + h, pad_w // 2 : pad_w // 2 + w]


@register_net("patch_discriminator")
class PatchDiscriminator(nn.Module):
    """PatchGAN: a conv net whose output is a grid of real/fake logits, one per overlapping patch.

    It sees the input and an image (real target or generated) stacked along channels. ``layers``
    stride-2 convolutions then two stride-1 ones: receptive fields of 16 (layers=1), 34 (2) and 70
    (3, the paper's 70x70 PatchGAN on 256x256 images) pixels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        height: int,
        width: int,
        channels: int = 64,
        layers: int = 2,
        max_channels: int = 512,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        widths = [min(channels * 2**i, max_channels) for i in range(layers + 1)]
        blocks: list[nn.Module] = [
            nn.Conv2d(in_channels + out_channels, widths[0], 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1
            blocks += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=False),
                norm_layer(norm, widths[i]),
                nn.LeakyReLU(0.2),
            ]
        blocks.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*blocks)
        with torch.no_grad():
            probe = torch.zeros(1, in_channels + out_channels, height, width)
            try:
                patches = self.net.eval()(probe).shape[-2:]
            except RuntimeError:
                patches = (0, 0)
            self.net.train()
        if min(patches) < 1:
            raise ValueError(f"{layers} PatchGAN layers are too many for {height}x{width} images; use fewer")

    def forward(self, inputs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Patch logits (N, 1, h, w) for images given their inputs."""
        return self.net(torch.cat([inputs, images], dim=1))
