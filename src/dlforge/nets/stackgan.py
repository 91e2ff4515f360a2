"""StackGAN (Zhang et al. 2017): a caption encoder, conditioning augmentation, and two generator /
discriminator stages. Stage I draws a coarse picture at half the canvas size from noise and the
caption's code; stage II redraws it at the full size from the stage-I picture and the code again.
The discriminators are matching-aware: they see an image with a caption's code and judge the pair.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from dlforge.nets.gan import dcgan_init, normed
from dlforge.registry import register_net

#: how :class:`CaptionEncoder` turns the GRU's states into one vector
READERS = ("last", "max", "attention", "bigru_last", "bigru_max", "bigru_attention")


def reversed_words(tokens: torch.Tensor) -> torch.Tensor:
    """For token ids (N, L) with PAD (0) after the words: each position's index in the caption read
    backwards (word t of n -> n - 1 - t; padding stays put). Applying it twice gives the identity."""
    length = (tokens != 0).sum(dim=1, keepdim=True)
    steps = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
    return torch.where(steps < length, length - 1 - steps, steps)


class CaptionEncoder(nn.Module):
    """Token ids (N, L) (PAD id 0 after the words) -> a caption embedding (N, hidden), by ``reader``:

    - ``last``: a GRU read at the caption's last word (the first reader; it misread word orders never
      seen in training);
    - ``max`` / ``attention``: the GRU's states at every word pooled by their maximum over the words
      (InferSent, Conneau et al. 2017) or by a learned attention (Lin et al. 2017's one hop);
    - ``bigru_*``: a bidirectional GRU, ``hidden // 2`` each way (the backward one reads each
      caption's words reversed, so padding never reaches it), read at the ends (the forward GRU at the
      last word with the backward at the first), or pooled as above.

    Padding never changes the embedding. No packing, so the graph traces and exports as it is;
    ``vectors``: a starting word matrix."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 50,
        hidden: int = 128,
        vectors: torch.Tensor | None = None,
        reader: str = "last",
    ) -> None:
        super().__init__()
        if reader not in READERS:
            raise ValueError(f"reader={reader!r}: choose one of {', '.join(READERS)}")
        self.reader = reader
        self.bidirectional = reader.startswith("bigru_")
        self.pooling = reader.removeprefix("bigru_")
        if self.bidirectional and hidden % 2:
            raise ValueError(f"text_hidden={hidden}: reader={reader} (half each way) needs an even size")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        if vectors is not None:
            self.embedding.weight.data.copy_(vectors)
        each = hidden // 2 if self.bidirectional else hidden
        self.gru = nn.GRU(embed_dim, each, batch_first=True)
        self.backward_gru = nn.GRU(embed_dim, each, batch_first=True) if self.bidirectional else None
        self.attention = (
            nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
            if self.pooling == "attention"
            else None
        )
        self.dim = hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        words = tokens != 0
        states, _ = self.gru(self.embedding(tokens))  # (N, L, hidden or hidden // 2)
        last = (words.sum(dim=1) - 1).clamp_min(0).view(-1, 1, 1)  # each caption's last word
        if self.backward_gru is not None:
            order = reversed_words(tokens).unsqueeze(2)
            back, _ = self.backward_gru(self.embedding(tokens.gather(1, order.squeeze(2))))
            back = back.gather(1, order.expand_as(back))  # back in the caption's own order
            if self.pooling == "last":  # forward at the last word, backward at the first
                at_last = states.gather(1, last.expand(-1, 1, states.shape[2])).squeeze(1)
                return torch.cat([at_last, back[:, 0]], dim=1)
            states = torch.cat([states, back], dim=2)
        if self.pooling == "last":
            return states.gather(1, last.expand(-1, 1, states.shape[2])).squeeze(1)
        mask = words.unsqueeze(2)
        if self.pooling == "max":  # GRU states lie in (-1, 1): padding at -1 never wins
            return states.masked_fill(~mask, -1.0).amax(dim=1)
        assert self.attention is not None
        scores = self.attention(states).masked_fill(~mask, torch.finfo(states.dtype).min)
        weights = scores.softmax(dim=1)  # (N, L, 1)
        return (weights * states).sum(dim=1)


class ConditioningAugmentation(nn.Module):
    """A Gaussian around the caption's embedding: code = mu + sigma * eps, and KL(N(mu, sigma) || N(0, I))
    averaged over the code's dimensions, as StackGAN's own code does (StackGAN's smoothing of the text
    manifold: many codes per caption). Summed over the dimensions it drove the code to the prior: 0.2 to
    1.6 nats in all 64 dimensions while training, less than a digit, a place and a size need (5.2)."""

    def __init__(self, text_dim: int, code_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(text_dim, 2 * code_dim)
        self.code_dim = code_dim

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = F.leaky_relu(self.fc(embedding), 0.2).chunk(2, dim=1)
        code = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).mean()
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


def with_code(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Feature maps (N, C, H, W) with the code (N, D) joined as D constant maps."""
    return torch.cat([x, code[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)


class ModulatedUp(nn.Module):
    """Nearest 2x up-sampling, 3x3 convolution, batch-norm whose scale and shift come from the code
    (conditional batch-norm, as BigGAN's class-conditional one), ReLU: the code reaches this scale at
    the cost of one small linear layer."""

    def __init__(self, in_channels: int, out_channels: int, code_dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.style = nn.Linear(code_dim, 2 * out_channels)  # gain - 1 and shift per channel

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gain, shift = self.style(code)[:, :, None, None].chunk(2, dim=1)
        return F.relu(self.conv(x) * (1 + gain) + shift)


class CodedUpsampling(nn.Module):
    """Up-sampling blocks from ``widths[0]`` channels through each of ``widths``; with ``every_scale``
    each block's batch-norm takes its scale and shift from the code (:class:`ModulatedUp`), so the
    caption reaches every scale, not only the first."""

    def __init__(self, widths: list[int], code_dim: int, every_scale: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ModulatedUp(wide, narrow, code_dim) if every_scale else up(wide, narrow)
            for wide, narrow in pairwise(widths)
        )
        self.every_scale = every_scale

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, code) if self.every_scale else block(x)
        return x


class StageIGenerator(nn.Module):
    """Noise and a caption code -> a (channels, size, size) picture in [-1, 1], from 4x4 by up-sampling
    (``every_scale``: the code modulates each up-sampling's batch-norm too)."""

    def __init__(
        self,
        latent_dim: int,
        code_dim: int,
        channels: int,
        size: int,
        features: int,
        every_scale: bool = True,
    ) -> None:
        super().__init__()
        steps = (size // 4).bit_length() - 1  # 4 -> size
        width = features * 2**steps
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + code_dim, width * 16, bias=False),
            nn.BatchNorm1d(width * 16),
            nn.ReLU(True),
        )
        self.width = width
        self.body = CodedUpsampling([width // 2**i for i in range(steps + 1)], code_dim, every_scale)
        self.out = nn.Sequential(nn.Conv2d(width // 2**steps, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.cat([z, code], dim=1)).view(-1, self.width, 4, 4)
        return self.out(self.body(x, code))


#: the properties that say where an item stands (the rest, class and colour, say what it is)
WHERE = ("position", "size")


class PlacedStageIGenerator(nn.Module):
    """Stage I composed of what and where (``placement``), for a condition that is the caption reader's
    property probabilities alone, laid out as ``parts`` (each property's name and number of values, in
    the condition's order, ``items`` per property).

    - **What**: each item is drawn at the centre of a ``size // 2`` frame (its canonical box: a large
      item's box at stage I is ``size * 7 / 16``) from the noise and a code of its own drawn by
      conditioning augmentation from the properties that are not :data:`WHERE` (the class, and the
      colour where the data has one) only. Item ``k`` gets the noise rolled by ``k`` numbers.
    - **Where**: a spatial transformer (scale and translation only) puts each drawing in its box on a
      black canvas. The box is a learned table of (centre x, centre y, log half side) per position and
      size, started at the boxes the canvas builder uses (``boxes``, from the data); the reader's
      probabilities pick the expected entry (a one-hot reading picks one). A table rather than a
      linear layer: on the canvas an item's centre depends on its size at the edges (a large item at
      the left stands further in), which a layer adding a position term and a size term cannot
      express; and starting at the data's boxes, not at the identity, because a spatial transformer's
      gradient moves a drawing by a few pixels, not across the canvas. Position and size feed it
      directly, without conditioning augmentation: there is nothing to smooth in a box.
    - Several items are combined by their maximum, as the canvas builder pastes them.

    The class never reaches the where part and the position and size never reach the what part, so a
    class drawn at one place is the same drawing at any other. ``forward`` gives the picture in
    [-1, 1] and the what-code's KL term."""

    def __init__(
        self,
        latent_dim: int,
        code_dim: int,
        channels: int,
        size: int,
        features: int,
        every_scale: bool,
        parts: list[tuple[str, int]],
        items: int,
        boxes: list[list[list[float]]],
    ) -> None:
        super().__init__()
        self.parts, self.items, self.size = [(str(n), int(k)) for n, k in parts], int(items), size
        values = dict(self.parts)
        what_dim = sum(k for n, k in self.parts if n not in WHERE)
        if not what_dim:
            raise ValueError(
                "placement: the condition says nothing of what to draw (no class among the parts)"
            )
        # (positions, sizes, [centre x, centre y, half side]): one position or size where the data has none
        table = torch.tensor(boxes, dtype=torch.float32)
        expected = (*(values.get(name, 1) for name in WHERE), 3)
        if table.shape != expected:
            raise ValueError(f"placement: boxes of shape {tuple(table.shape)}, the parts need {expected}")
        self.augmentation = ConditioningAugmentation(what_dim, code_dim)
        # the stage-I generator's widths at 4x4, 8x8, ..., less its last up-sampling
        self.item = StageIGenerator(latent_dim, code_dim, channels, size // 2, features * 2, every_scale)
        self.boxes = nn.Parameter(torch.cat([table[..., :2], table[..., 2:].log()], dim=-1))

    def read(self, condition: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each property's probabilities (N, items, values), from its slice of the condition."""
        chunks = condition.split([k * self.items for _, k in self.parts], dim=1)
        return {n: c.unflatten(1, (self.items, k)) for (n, k), c in zip(self.parts, chunks, strict=True)}

    def draw_items(self, z: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each item drawn in its canonical box (N * items, C, size // 2, size // 2) in [-1, 1], from the
        noise and the what-properties alone, and the what-code's KL term."""
        parts = self.read(condition)
        what = torch.cat([p for n, p in parts.items() if n not in WHERE], dim=2).flatten(0, 1)
        code, kl = self.augmentation(what)
        noise = torch.stack([z.roll(k, dims=1) for k in range(self.items)], dim=1).flatten(0, 1)
        return self.item(noise, code), kl

    def where(self, condition: torch.Tensor) -> torch.Tensor:
        """Each item's box (N, items, [centre x, centre y, half side]) in [-1, 1] canvas coordinates, from
        the position and size probabilities alone (a property the data does not use: its one entry)."""
        parts = self.read(condition)
        one = torch.ones_like(condition[:, : self.items]).unsqueeze(2)  # (N, items, 1)
        position, size = (parts.get(name, one) for name in WHERE)
        weights = (position[:, :, :, None] * size[:, :, None, :]).flatten(2)  # (N, items, positions x sizes)
        box = weights @ self.boxes.flatten(0, 1)
        return torch.cat([box[..., :2], box[..., 2:].exp()], dim=-1)

    def place(self, drawn: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Canonical drawings (N * items, C, s, s) in [-1, 1] moved into their boxes (N, items, 3) on a
        black ``size`` x ``size`` canvas (N, C, size, size): the warp samples the drawing plus 1 with zero
        padding, less 1, so all but the drawing is -1; items combined by their maximum."""
        cx, cy, half = boxes.flatten(0, 1).unbind(dim=1)
        zero = torch.zeros_like(half)
        theta = torch.stack(
            [
                torch.stack([1 / half, zero, -cx / half], dim=1),
                torch.stack([zero, 1 / half, -cy / half], dim=1),
            ],
            dim=1,
        )  # canvas coordinates -> the drawing's: (out - centre) / half side
        grid = F.affine_grid(
            theta, [drawn.shape[0], drawn.shape[1], self.size, self.size], align_corners=False
        )
        placed = F.grid_sample(drawn + 1, grid, padding_mode="zeros", align_corners=False) - 1  # bilinear
        return placed.unflatten(0, (-1, self.items)).amax(dim=1)

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        drawn, kl = self.draw_items(z, condition)
        return self.place(drawn, self.where(condition)), kl


#: how near to -1 and 1 a stage-I pixel is taken when ``refine`` adds to it before tanh (atanh(1) is inf)
REFINE_LIMIT = 1 - 1e-3


class StageIIGenerator(nn.Module):
    """A stage-I picture and the caption code -> the picture at twice the size: the picture is encoded
    down to a quarter of its size, joined with the code at every position, refined by residual blocks
    and up-sampled (StackGAN's stage II).

    With ``refine`` the network's last layer gives a correction instead of a picture: it is added to
    the stage-I picture, up-sampled by repeating pixels, before the tanh (``tanh(atanh(up) + out)``),
    and starts at zero (:meth:`start_at_stage_one`), so stage II starts as stage I at full size and
    learns only what to change; without it stage II redraws the picture from its features."""

    def __init__(
        self,
        code_dim: int,
        channels: int,
        features: int,
        residual_blocks: int = 2,
        every_scale: bool = True,
        refine: bool = False,
    ) -> None:
        super().__init__()
        self.refine = refine
        width = features * 4
        self.encode = nn.Sequential(
            nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(True),
            down(features, features * 2, spectral=False), down(features * 2, width, spectral=False),
        )  # fmt: skip
        self.join = nn.Sequential(
            nn.Conv2d(width + code_dim, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)
        )
        self.residual = nn.Sequential(*(ResidualBlock(width) for _ in range(residual_blocks)))
        self.body = CodedUpsampling([width, width // 2, features, features // 2], code_dim, every_scale)
        self.out = nn.Sequential(nn.Conv2d(features // 2, channels, 3, padding=1), nn.Tanh())

    def start_at_stage_one(self) -> None:
        """With ``refine``: zero the last layer, so the first correction is none."""
        nn.init.zeros_(self.out[0].weight)
        nn.init.zeros_(self.out[0].bias)

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        x = self.join(with_code(self.encode(image), code))
        x = self.body(self.residual(x), code)
        if not self.refine:
            return self.out(x)
        start = F.interpolate(image, scale_factor=2.0, mode="nearest").clamp(-REFINE_LIMIT, REFINE_LIMIT)
        return torch.tanh(torch.atanh(start) + self.out[0](x))


class MatchingDiscriminator(nn.Module):
    """(image, caption embedding) -> one logit per pair: strided convolutions down to 4x4, then either
    the caption compressed and joined at every position before a 4x4 convolution (Reed et al. 2016), or
    with ``projection`` a 4x4 convolution plus the inner product of a projection of the caption with
    the pooled features (Miyato & Koyama 2018, as ``model=cgan``'s discriminator takes the class). A
    real image with another caption's embedding is a pair to reject (matching-aware). With ``properties``
    > 0 it also reads that many property logits from the image alone (an auxiliary classifier, as
    AC-GAN's, Odena et al. 2017): ``forward(..., with_properties=True)`` gives both."""

    def __init__(
        self, channels: int, size: int, text_dim: int, code_dim: int, features: int, spectral: bool,
        properties: int = 0, projection: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        steps = (size // 4).bit_length() - 1
        layers = [down(channels, features, spectral, batch_norm=False)]
        layers += [down(features * 2**i, features * 2 ** (i + 1), spectral) for i in range(steps - 1)]
        self.image = nn.Sequential(*layers)
        width = features * 2 ** (steps - 1)
        self.projection = projection
        if projection:
            self.logit = normed(nn.Conv2d(width, 1, 4), spectral)
            self.embed = normed(nn.Linear(text_dim, width, bias=False), spectral)
        else:
            self.text = nn.Sequential(
                normed(nn.Linear(text_dim, code_dim), spectral), nn.LeakyReLU(0.2, True)
            )
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
        if self.projection:
            logit = self.logit(x).flatten() + (self.embed(embedding) * x.sum(dim=(2, 3))).sum(dim=1)
        else:
            logit = self.joint(with_code(x, self.text(embedding))).flatten()
        if not with_properties:
            return logit
        if self.properties is None:
            raise ValueError("this discriminator reads no properties (properties=0)")
        return logit, self.properties(x.flatten(1))


@register_net("stackgan")
class StackGAN(nn.Module):
    """The caption encoder, conditioning augmentation and both stages, sized from the data.

    Stage I works at ``height // 2`` (e.g. 32x32 for 64x64 canvases), stage II at ``height``;
    ``properties``: how many property logits each discriminator also reads from an image (0: none);
    ``read_dim``: how many more numbers the text vector has after the caption embedding (the model joins
    the caption reader's property probabilities to it); ``embedding_in_text``: false when the text
    vector is those ``read_dim`` numbers alone; ``every_scale``: the generators join the
    code at each up-sampling; ``projection``: the discriminators take the text by projection;
    ``reader``: how the caption encoder reads the GRU's states (:data:`READERS`); ``placement``: stage I
    is a :class:`PlacedStageIGenerator` (what and where apart; its ``forward`` takes the text vector
    itself, which must be the ``read_dim`` probabilities alone, laid out as ``parts`` x ``items``, and
    ``boxes`` start its table), and :attr:`augmentation`'s code goes to stage II only; ``refine``:
    stage II corrects the up-sampled stage-I picture instead of redrawing it (:class:`StageIIGenerator`).
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
        read_dim: int = 0,
        embedding_in_text: bool = True,
        every_scale: bool = True,
        projection: bool = True,
        reader: str = "last",
        vectors: torch.Tensor | None = None,
        placement: bool = False,
        parts: list[tuple[str, int]] | None = None,
        items: int = 1,
        boxes: list[list[list[float]]] | None = None,
        refine: bool = False,
    ) -> None:
        super().__init__()
        if height != width or height % 16 or height < 32:
            raise ValueError(
                f"StackGAN draws square canvases of a multiple of 16, at least 32: not {height}x{width}"
            )
        self.latent_dim, self.stage_one_size = latent_dim, height // 2
        self.encoder = CaptionEncoder(vocab_size, embed_dim, text_hidden, vectors, reader)
        text_dim = self.encoder.dim * embedding_in_text + read_dim
        if not text_dim:
            raise ValueError("the text vector would be empty: keep the embedding or read the properties")
        self.augmentation = ConditioningAugmentation(text_dim, code_dim)
        if placement and (
            embedding_in_text
            or parts is None
            or boxes is None
            or read_dim != items * sum(k for _, k in parts)
        ):
            raise ValueError(
                "placement: the text vector must be the read properties alone, laid out as parts"
            )
        self.stage_one = (
            PlacedStageIGenerator(
                latent_dim, code_dim, in_channels, height // 2, features, every_scale, parts, items, boxes
            )
            if placement
            else StageIGenerator(latent_dim, code_dim, in_channels, height // 2, features, every_scale)
        )
        self.stage_two = StageIIGenerator(
            code_dim, in_channels, features, residual_blocks, every_scale, refine
        )
        d = {
            "text_dim": text_dim,
            "projection": projection,
            "code_dim": code_dim,
            "features": features,
            "spectral": spectral_norm,
            "properties": properties,
        }
        self.critic_one = MatchingDiscriminator(in_channels, height // 2, **d)
        self.critic_two = MatchingDiscriminator(in_channels, height, **d)
        drawer = self.stage_one.item if isinstance(self.stage_one, PlacedStageIGenerator) else self.stage_one
        for part in (drawer, self.stage_two, self.critic_one, self.critic_two):
            part.apply(dcgan_init)
        if refine:  # after the initialization above, which it leaves as it was (the same random draws)
            self.stage_two.start_at_stage_one()
