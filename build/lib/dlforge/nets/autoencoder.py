"""Encoder/decoder pairs for autoencoders and VAEs, sized from the data (channels, height, width).

Each pair maps images to a feature vector (``encoder``, ``embedding_dim`` wide) and latent vectors
back to image logits (``decoder``); the model puts its latent heads (a code, or a mean and a
log-variance) between the two and applies the sigmoid.
"""

from __future__ import annotations

from torch import nn

from dlforge.nets.layers import dense_stack, make_activation
from dlforge.registry import register_net


@register_net("mlp_autoencoder")
class MLPAutoencoder(nn.Module):
    """Dense encoder ``flatten -> hidden`` and the mirrored decoder ``latent -> reversed(hidden) -> pixels``.

    ``hidden=[512]`` with a 2-d latent is the Keras VAE example's network.
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        latent_dim: int,
        hidden: list[int] = (512, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        pixels = in_channels * height * width
        dense, self.embedding_dim = dense_stack(pixels, list(hidden), activation)
        self.encoder = nn.Sequential(nn.Flatten(), dense)
        back, width_out = dense_stack(latent_dim, list(reversed(hidden)), activation)
        self.decoder = nn.Sequential(
            back, nn.Linear(width_out, pixels), nn.Unflatten(1, (in_channels, height, width))
        )


@register_net("conv_autoencoder")
class ConvAutoencoder(nn.Module):
    """Strided convolutions down, transposed convolutions back up.

    Each entry of ``channels`` is a 4x4 convolution with stride 2 (halving the image: 28 -> 14 -> 7,
    32 -> 16 -> 8), followed by optional dense ``hidden`` layers. The decoder mirrors it exactly,
    odd sizes included (7 -> 3 -> 7 through ``output_padding``).
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        latent_dim: int,
        channels: list[int] = (32, 64),
        hidden: list[int] = (256,),
        activation: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("a convolutional autoencoder needs at least one entry in model.net.channels")
        sizes = [(height, width)]
        for _ in channels:
            h, w = sizes[-1]
            if min(h, w) < 2:
                raise ValueError(
                    f"{len(channels)} stride-2 convolutions shrink {height}x{width} images to nothing; "
                    "use fewer entries in model.net.channels"
                )
            sizes.append((h // 2, w // 2))

        def block(conv: nn.Module, out: int, last: bool = False) -> list[nn.Module]:
            if last:
                return [conv]
            return [conv, *([nn.BatchNorm2d(out)] if batch_norm else []), make_activation(activation)]

        down: list[nn.Module] = []
        previous = in_channels
        for out in channels:
            down += block(nn.Conv2d(previous, out, 4, stride=2, padding=1, bias=not batch_norm), out)
            previous = out
        h, w = sizes[-1]
        flat = previous * h * w
        dense, self.embedding_dim = dense_stack(flat, list(hidden), activation)
        self.encoder = nn.Sequential(*down, nn.Flatten(), dense)

        back, width_out = dense_stack(latent_dim, list(reversed(hidden)), activation)
        up: list[nn.Module] = [
            back,
            nn.Linear(width_out, flat),
            make_activation(activation),
            nn.Unflatten(1, (previous, h, w)),
        ]
        outs = [*reversed(channels[:-1]), in_channels]
        for i, out in enumerate(outs):
            (h_in, w_in), (h_out, w_out) = sizes[-1 - i], sizes[-2 - i]
            padding = (h_out - 2 * h_in, w_out - 2 * w_in)  # 0, or 1 for an odd size
            last = i == len(outs) - 1
            conv = nn.ConvTranspose2d(
                previous, out, 4, stride=2, padding=1, output_padding=padding, bias=last or not batch_norm
            )
            up += block(conv, out, last)
            previous = out
        self.decoder = nn.Sequential(*up)
