"""StackGAN (Zhang et al. 2017): a caption encoder, conditioning augmentation, and two generator /
discriminator stages. Stage I draws a coarse picture at half the canvas size from noise and the
caption's code; stage II redraws it at the full size from the stage-I picture and the code again.
The discriminators are matching-aware: they see an image with a caption's code and judge the pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlforge.nets.gan import dcgan_init, normed
from dlforge.registry import register_net


class CaptionEncoder(nn.Module):
    """Token ids (N, L) -> a caption embedding (N, hidden): a GRU over word vectors, read at each
    caption's last word (PAD id 0 after it). No packing, so the graph traces and exports as it is;
    ``vectors``: a starting word matrix."""

    def __init__(
        self, vocab_size: int, embed_dim: int = 50, hidden: int = 128, vectors: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        if vectors is not None:
            self.embedding.weight.data.copy_(vectors)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.dim = hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.embedding(tokens))  # (N, L, hidden)
        last = ((tokens != 0).sum(dim=1) - 1).clamp_min(0)  # each caption's last word
        return states.gather(1, last.view(-1, 1, 1).expand(-1, 1, states.shape[2])).squeeze(1)


class ConditioningAugmentation(nn.Module):
    """A Gaussian around the caption's embedding: code = mu + sigma * eps, and KL(N(mu, sigma) || N(0, I))
    (StackGAN's smoothing of the text manifold: many codes per caption)."""

    def __init__(self, text_dim: int, code_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(text_dim, 2 * code_dim)
        self.code_dim = code_dim

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = F.leaky_relu(self.fc(embedding), 0.2).chunk(2, dim=1)
        code = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=1).mean()
        return code, kl


def up(in_channels: int, out_channels: int) -> nn.Sequential:
    """Nearest 2x up-sampling, 3x3 convolution, batch-norm, ReLU (StackGAN's up-sampling block)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def down(in_channels: int, out_channels: int, spectral: bool, batch_norm: bool = True) -> nn.Sequential:
    """4x4 stride-2 convolution (+ batch-norm unless spectrally normalized), LeakyReLU(0.2)."""
    layers: list[nn.Module] = [normed(nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=False), spectral)]
    if batch_norm and not spectral:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class StageIGenerator(nn.Module):
    """Noise and a caption code -> a (channels, size, size) picture in [-1, 1], from 4x4 by up-sampling."""

    def __init__(self, latent_dim: int, code_dim: int, channels: int, size: int, features: int) -> None:
        super().__init__()
        steps = (size // 4).bit_length() - 1  # 4 -> size
        width = features * 2**steps
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + code_dim, width * 16, bias=False),
            nn.BatchNorm1d(width * 16),
            nn.ReLU(True),
        )
        self.width = width
        self.body = nn.Sequential(*(up(width // 2**i, width // 2 ** (i + 1)) for i in range(steps)))
        self.out = nn.Sequential(nn.Conv2d(width // 2**steps, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.cat([z, code], dim=1)).view(-1, self.width, 4, 4)
        return self.out(self.body(x))


class StageIIGenerator(nn.Module):
    """A stage-I picture and the caption code -> the picture at twice the size: the picture is encoded
    down to a quarter of its size, joined with the code at every position, refined by residual blocks
    and up-sampled (StackGAN's stage II)."""

    def __init__(self, code_dim: int, channels: int, features: int, residual_blocks: int = 2) -> None:
        super().__init__()
        width = features * 4
        self.encode = nn.Sequential(
            nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(True),
            down(features, features * 2, spectral=False), down(features * 2, width, spectral=False),
        )  # fmt: skip
        self.join = nn.Sequential(
            nn.Conv2d(width + code_dim, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)
        )
        self.residual = nn.Sequential(*(ResidualBlock(width) for _ in range(residual_blocks)))
        self.body = nn.Sequential(
            up(width, width // 2), up(width // 2, features), up(features, features // 2)
        )
        self.out = nn.Sequential(nn.Conv2d(features // 2, channels, 3, padding=1), nn.Tanh())

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        x = self.encode(image)
        x = self.join(torch.cat([x, code[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1))
        return self.out(self.body(self.residual(x)))


class MatchingDiscriminator(nn.Module):
    """(image, caption embedding) -> one logit per pair: strided convolutions down to 4x4, the caption
    compressed and joined at every position, then a 4x4 convolution. A real image with another
    caption's embedding is a pair to reject (matching-aware, Reed et al. 2016). With ``properties``
    > 0 it also reads that many property logits from the image alone (an auxiliary classifier, as
    AC-GAN's, Odena et al. 2017): ``forward(..., with_properties=True)`` gives both."""

    def __init__(
        self, channels: int, size: int, text_dim: int, code_dim: int, features: int, spectral: bool,
        properties: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        steps = (size // 4).bit_length() - 1
        layers = [down(channels, features, spectral, batch_norm=False)]
        layers += [down(features * 2**i, features * 2 ** (i + 1), spectral) for i in range(steps - 1)]
        self.image = nn.Sequential(*layers)
        width = features * 2 ** (steps - 1)
        self.text = nn.Sequential(normed(nn.Linear(text_dim, code_dim), spectral), nn.LeakyReLU(0.2, True))
        self.joint = nn.Sequential(
            normed(nn.Conv2d(width + code_dim, width, 1), spectral),
            nn.LeakyReLU(0.2, True),
            normed(nn.Conv2d(width, 1, 4), spectral),
        )
        self.properties = nn.Linear(width * 16, properties) if properties else None

    def forward(
        self, image: torch.Tensor, embedding: torch.Tensor, with_properties: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.image(image)
        text = self.text(embedding)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        logit = self.joint(torch.cat([x, text], dim=1)).flatten()
        if not with_properties:
            return logit
        if self.properties is None:
            raise ValueError("this discriminator reads no properties (properties=0)")
        return logit, self.properties(x.flatten(1))


@register_net("stackgan")
class StackGAN(nn.Module):
    """The caption encoder, conditioning augmentation and both stages, sized from the data.

    Stage I works at ``height // 2`` (e.g. 32x32 for 64x64 canvases), stage II at ``height``;
    ``properties``: how many property logits each discriminator also reads from an image (0: none).
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        vocab_size: int,
        latent_dim: int = 100,
        embed_dim: int = 50,
        text_hidden: int = 128,
        code_dim: int = 64,
        features: int = 32,
        residual_blocks: int = 2,
        spectral_norm: bool = True,
        properties: int = 0,
        vectors: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if height != width or height % 16 or height < 32:
            raise ValueError(
                f"StackGAN draws square canvases of a multiple of 16, at least 32: not {height}x{width}"
            )
        self.latent_dim, self.stage_one_size = latent_dim, height // 2
        self.encoder = CaptionEncoder(vocab_size, embed_dim, text_hidden, vectors)
        self.augmentation = ConditioningAugmentation(self.encoder.dim, code_dim)
        self.stage_one = StageIGenerator(latent_dim, code_dim, in_channels, height // 2, features)
        self.stage_two = StageIIGenerator(code_dim, in_channels, features, residual_blocks)
        d = {
            "text_dim": self.encoder.dim,
            "code_dim": code_dim,
            "features": features,
            "spectral": spectral_norm,
            "properties": properties,
        }
        self.critic_one = MatchingDiscriminator(in_channels, height // 2, **d)
        self.critic_two = MatchingDiscriminator(in_channels, height, **d)
        for part in (self.stage_one, self.stage_two, self.critic_one, self.critic_two):
            part.apply(dcgan_init)
