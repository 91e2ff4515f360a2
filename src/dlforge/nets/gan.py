"""GAN networks: each is a generator/discriminator pair sized from the data.

Every pair exposes ``generator(z, labels) -> images in [-1, 1]`` (tanh), ``discriminator(images,
labels) -> logits (N,)``, ``latent_dim`` and ``conditional``. Conditional pairs take class labels
as integers (N,) or as float class vectors (N, num_classes) (one-hot, or mixtures for latent
arithmetic); unconditional pairs ignore labels.

The discriminators take the field's stabilizers as options (Kurach et al. 2019 compare them):
``spectral_norm`` (Miyato et al. 2018: every weight divided by its largest singular value, in place
of batch-norm), ``minibatch_std`` (Karras et al. 2018: the batch's feature spread as one more input
channel of the last layer) and, for conditional pairs, ``projection`` (Miyato & Koyama 2018: the
class enters as an inner product with the last features instead of as input channels).
:class:`DiffAugment` is the differentiable augmentation of the discriminator's inputs (Zhao et al. 2020).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as spectrally_normed

from dlforge.registry import register_net


def upsamplings(height: int, width: int, most: int = 4) -> int:
    """How many 2x up-samplings lead from a base of at least 3x3 pixels to ``height`` x ``width``."""
    for n in range(most, 0, -1):
        if height % 2**n == 0 and width % 2**n == 0 and min(height, width) // 2**n >= 3:
            return n
    raise ValueError(
        f"a {height}x{width} image cannot be reached by 2x up-sampling from a base of at least 3x3 pixels; "
        "use images with even sides (28x28, 32x32, 64x64, ...)"
    )


def class_vectors(labels: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Integer labels (N,) as one-hot rows, float class vectors (N, K) as they are, like ``like``."""
    vectors = labels if labels.is_floating_point() else F.one_hot(labels.long(), num_classes)
    return vectors.to(device=like.device, dtype=like.dtype)


def latent_code(z: torch.Tensor, codes: int) -> torch.Tensor:
    """The categorical code of each latent (N,): the index of the largest of its first ``codes`` numbers."""
    return z[:, :codes].argmax(dim=1)


def coded(z: torch.Tensor, codes: int) -> torch.Tensor:
    """``z`` with its first ``codes`` numbers replaced by the one-hot of its code (:func:`latent_code`).
    Written as a comparison with the maximum, which ONNX and TorchScript export as they are."""
    head = z[:, :codes]
    return torch.cat([(head == head.amax(dim=1, keepdim=True)).to(z.dtype), z[:, codes:]], dim=1)


def cluster_of(z: torch.Tensor, cdf: torch.Tensor) -> torch.Tensor:
    """The cluster each latent draws (N,): its first number's normal CDF, ``u ~ U(0, 1)``, read against
    the clusters' cumulative shares ``cdf`` (K,), so cluster k comes with probability ``cdf[k] - cdf[k-1]``.
    Comparisons and a sum, which ONNX and TorchScript export as they are."""
    u = 0.5 * (1 + torch.erf(z[:, 0] / math.sqrt(2)))
    return (u[:, None] > cdf[None, :-1].to(u.dtype)).sum(dim=1)


class PixelClusters(nn.Module):
    """Online k-means of the real images (mini-batch k-means, Sculley 2010), whose clusters a
    self-conditioned GAN draws from (Liu et al. 2020 cluster the discriminator's features; here pixels).

    The first batches seed the ``k`` centres (k-means++, as many from each batch as it has images);
    each batch then moves every centre towards the mean of its images by their share of all images it
    has been given (step ``n_batch / n_total``), so the centres settle and a cluster keeps its meaning
    while the GAN learns it. ``counts`` (K,) are the images given to each, from which the clusters'
    shares come (a centre not yet seeded has none, so no latent draws it). Under DDP every process
    keeps the same clusters: the first process's seeds are broadcast, and each move sums every
    process's batch.
    """

    def __init__(self, k: int, size: int) -> None:
        super().__init__()
        self.k = k
        self.register_buffer("centres", torch.zeros(k, size))
        self.register_buffer("counts", torch.zeros(k))
        self.register_buffer("seeded", torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_pre_hook(self.all_seeded_before_counting)

    def all_seeded_before_counting(
        self, module: nn.Module, state: dict[str, Any], prefix: str, *args: Any
    ) -> None:
        """Clusters saved before ``seeded`` was counted were all seeded from their first batch."""
        state.setdefault(f"{prefix}seeded", torch.tensor(self.k))

    def assign(self, images: torch.Tensor) -> torch.Tensor:
        """The nearest seeded centre of each image (N,)."""
        centres = self.centres[: max(int(self.seeded), 1)]
        return torch.cdist(images.flatten(1).float(), centres).argmin(dim=1)

    def cdf(self) -> torch.Tensor:
        """The clusters' cumulative shares (K,) (uniform before any image)."""
        total = self.counts.sum()
        shares = self.counts / total if total > 0 else torch.full_like(self.counts, 1 / self.k)
        return shares.cumsum(dim=0)

    @torch.no_grad()
    def update(self, images: torch.Tensor) -> torch.Tensor:
        """Move the centres with one batch; returns its images' clusters (N,) after the move."""
        x = images.flatten(1).float()
        distributed = dist.is_available() and dist.is_initialized()
        if self.seeded < self.k:
            self.seed(x)
            if distributed:  # every process keeps the first one's seeds
                dist.broadcast(self.centres, src=0)
                dist.broadcast(self.seeded, src=0)
        clusters = self.assign(images)
        batch_counts = torch.bincount(clusters, minlength=self.k).to(x.dtype)
        sums = torch.zeros_like(self.centres).index_add_(0, clusters, x)
        if distributed:  # the move of all processes' images together
            dist.all_reduce(batch_counts)
            dist.all_reduce(sums)
        self.counts += batch_counts
        step = (batch_counts / self.counts.clamp(min=1))[:, None]
        means = sums / batch_counts.clamp(min=1)[:, None]
        self.centres += step * (means - self.centres)
        return self.assign(images)

    def seed(self, x: torch.Tensor) -> None:
        """k-means++ (Arthur & Vassilvitskii 2007) on this batch, after the centres seeded so far: each
        next centre drawn with probability proportional to its squared distance from the nearest."""
        seeded = int(self.seeded)
        chosen = [] if seeded else [int(torch.randint(len(x), ()))]
        while seeded + len(chosen) < self.k and len(chosen) < len(x):
            centres = torch.cat([self.centres[:seeded], x[chosen]])
            distance = torch.cdist(x, centres).amin(dim=1).square()
            if distance.sum() <= 0:  # every image of the batch is a centre already
                break
            chosen.append(int(torch.multinomial(distance, 1)))
        self.centres[seeded : seeded + len(chosen)] = x[chosen]
        self.seeded += len(chosen)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: convolution weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def normed(layer: nn.Module, spectral: bool) -> nn.Module:
    """``layer`` with spectral normalization of its weight when ``spectral``."""
    return spectrally_normed(layer) if spectral else layer


class MinibatchStd(nn.Module):
    """Appends one channel: the standard deviation of each feature over a group of ``group_size``
    samples, averaged over features and positions (Karras et al. 2018). A collapsed generator makes
    near-identical samples, whose small spread the discriminator then sees."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        group = max(g for g in range(1, min(self.group_size, n) + 1) if n % g == 0)
        grouped = x.view(group, n // group, *x.shape[1:])
        # the variance spelled out: torch's var over the leading dimension is ~30x slower on CPU
        spread = (grouped - grouped.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()
        feature = spread.mean(dim=(1, 2, 3)).repeat(group)  # one value per sample of each group
        return torch.cat([x, feature.view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


class DiffAugment(nn.Module):
    """Differentiable augmentation of everything the discriminator sees, real and generated alike
    (Zhao et al. 2020), so that gradients reach the generator through it.

    ``policy``: ``translation`` (each image shifted by up to 1/8 of its size, edges repeated) and/or
    ``cutout`` (a square of half the image's side set to 0, mid-grey in [-1, 1]), each drawn per image.
    """

    POLICIES = ("translation", "cutout")

    def __init__(self, policy: Sequence[str] = ()) -> None:
        super().__init__()
        unknown = sorted(set(policy) - set(self.POLICIES))
        if unknown:
            raise ValueError(f"DiffAugment policy {unknown}: choose from {list(self.POLICIES)}")
        self.policy = tuple(policy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            x = translate(x) if name == "translation" else cutout(x)
        return x


def translate(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by a random whole number of pixels, up to ``ratio`` of its size (edges repeated)."""
    n, c, h, w = x.shape
    dy, dx = (int(side * ratio + 0.5) for side in (h, w))
    shift_y = torch.randint(-dy, dy + 1, (n, 1, 1), device=x.device)
    shift_x = torch.randint(-dx, dx + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + shift_y).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + shift_x).clamp(0, w - 1)
    index = (rows * w + cols).view(n, 1, h * w).expand(n, c, h * w)
    return x.flatten(2).gather(2, index).view_as(x)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times each side at a random centre of each image."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    centre_y = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=x.device)
    centre_x = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - centre_y + size_y // 2
    cols = torch.arange(w, device=x.device).view(1, 1, w) - centre_x + size_x // 2
    keep = ~((rows >= 0) & (rows < size_y) & (cols >= 0) & (cols < size_x))
    return x * keep.unsqueeze(1).to(x.dtype)


class DCGANGenerator(nn.Module):
    """z (1x1) -> fractionally-strided convolutions with batch-norm + ReLU -> tanh image.

    The first transposed convolution maps the noise to a ``base`` x ``base`` map (7x7 for 28x28
    images, 4x4 for 32x32), then each 4x4 stride-2 transposed convolution doubles the size and
    halves the channels, down to ``features`` before the output layer. With ``codes``, z's first
    ``codes`` numbers enter as the one-hot of their argmax (:func:`coded`); with ``clusters``, the
    one-hot of the cluster z draws (:func:`cluster_of`, from the buffer ``cluster_cdf``) is appended.
    """

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        height: int,
        width: int,
        features: int,
        num_classes: int = 0,
        codes: int = 0,
        clusters: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes, self.codes, self.clusters = num_classes, codes, clusters
        if clusters:
            self.register_buffer("cluster_cdf", torch.arange(1, clusters + 1) / clusters)
        n = upsamplings(height, width)
        widths = [features * 2**i for i in reversed(range(n))]  # e.g. [256, 128, 64] for 32x32
        inputs = latent_dim + num_classes + clusters
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(inputs, widths[0], (height >> n, width >> n), bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for wide, narrow in pairwise(widths):
            layers += [
                nn.ConvTranspose2d(wide, narrow, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(narrow),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.codes:
            z = coded(z, self.codes)
        if self.num_classes:
            z = torch.cat([z, class_vectors(labels, self.num_classes, z)], dim=1)
        if self.clusters:
            z = torch.cat([z, class_vectors(cluster_of(z, self.cluster_cdf), self.clusters, z)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Strided 4x4 convolutions with LeakyReLU(0.2) (batch-norm after the first, or spectral
    normalization of every layer), a last convolution over the whole ``base`` map gives one logit.
    No pooling, no dense layers.

    A conditional discriminator sees the class vector as extra constant input channels, or with
    ``projection`` as the inner product of a class embedding with its last features, added to the logit.
    ``minibatch_std`` gives the last layer one more channel (:class:`MinibatchStd`). With ``codes``, a
    second head (InfoGAN's Q, sharing every other layer) reads ``codes`` logits of the latent code.
    """

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        features: int,
        num_classes: int = 0,
        spectral_norm: bool = False,
        minibatch_std: bool = False,
        projection: bool = False,
        codes: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.projection = projection and num_classes > 0
        n = upsamplings(height, width)
        widths = [features * 2**i for i in range(n)]  # e.g. [64, 128, 256] for 32x32
        extra = 0 if self.projection else num_classes
        layers: list[nn.Module] = [
            normed(nn.Conv2d(channels + extra, widths[0], 4, stride=2, padding=1), spectral_norm),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for narrow, wide in pairwise(widths):
            if spectral_norm:
                layers += [normed(nn.Conv2d(narrow, wide, 4, stride=2, padding=1), True)]
            else:
                layers += [nn.Conv2d(narrow, wide, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(wide)]
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        if minibatch_std:
            layers.append(MinibatchStd())
        last = widths[-1] + int(minibatch_std)
        layers.append(normed(nn.Conv2d(last, 1, (height >> n, width >> n)), spectral_norm))  # the logit
        self.net = nn.Sequential(*layers)
        if self.projection:
            self.embed = normed(nn.Linear(num_classes, last, bias=False), spectral_norm)
        self.code_head = nn.Conv2d(last, codes, (height >> n, width >> n)) if codes else None

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, read_code: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (N,); with ``read_code``, also the code head's logits (N, codes)."""
        if read_code and self.code_head is None:
            raise ValueError("this discriminator reads no latent code (codes=0)")
        vectors = class_vectors(labels, self.num_classes, images) if self.num_classes else None
        if vectors is not None and not self.projection:
            maps = vectors[:, :, None, None].expand(-1, -1, *images.shape[2:])
            images = torch.cat([images, maps], dim=1)
        hidden = self.net[:-1](images)
        logits = self.net[-1](hidden).flatten()
        if vectors is not None and self.projection:
            logits = logits + (self.embed(vectors) * hidden.sum(dim=(2, 3))).sum(dim=1)
        return (logits, self.code_head(hidden).flatten(1)) if read_code else logits


@register_net("dcgan")
class DCGAN(nn.Module):
    """Radford et al. (2015) DCGAN, sized from the data (1 or 3 channels, 28x28 or 32x32, ...).

    Args:
        latent_dim: size of the noise vector z (100 in the paper).
        features: channels of the generator's last and the discriminator's first hidden layer
            (doubling towards the small end; 64 in the paper).
        generator_features: the generator's own ``features`` (null: ``features``), as BigGAN sizes
            G and D apart: the discriminator runs three times a step, the generator once.
        conditional: feed the class label to both networks (Mirza & Osindero 2014; net name ``cgan``).
        spectral_norm: spectral normalization of every discriminator layer, in place of its batch-norm.
        minibatch_std: a minibatch standard-deviation channel before the discriminator's last layer.
        projection: a conditional discriminator takes the class by projection, not as input channels.
        codes: InfoGAN's categorical code of the unconditional pair: z's first ``codes`` numbers choose
            a category, which the discriminator's second head learns to read back (0: none).
        clusters: self-conditioning of the unconditional pair (0: none): ``clusters`` online k-means
            clusters of the real images (:class:`PixelClusters`, attribute ``clusters``) take the place
            of classes, the discriminator reading them by projection; the generator draws each
            latent's cluster itself (:func:`cluster_of`), so it still needs z alone.
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        num_classes: int,
        latent_dim: int = 100,
        features: int = 64,
        conditional: bool = False,
        spectral_norm: bool = False,
        minibatch_std: bool = False,
        projection: bool = False,
        generator_features: int | None = None,
        codes: int = 0,
        clusters: int = 0,
    ) -> None:
        super().__init__()
        if conditional and num_classes < 2:
            raise ValueError("a conditional GAN needs class labels: a data set with at least 2 classes")
        if codes and (conditional or not 2 <= codes <= latent_dim):
            raise ValueError(
                f"codes={codes}: a latent code needs an unconditional GAN and 2..latent_dim "
                f"({latent_dim}) categories, e.g. codes=10 (0: none)"
            )
        if clusters and (conditional or codes or clusters < 2):
            raise ValueError(
                f"clusters={clusters}: self-conditioning needs an unconditional GAN without codes and at "
                "least 2 clusters, e.g. clusters=100; set clusters=0 for a conditional GAN or codes"
            )
        self.latent_dim = latent_dim
        self.conditional = conditional
        self.codes = codes
        classes = num_classes if conditional else 0
        self.generator = DCGANGenerator(
            latent_dim, in_channels, height, width, generator_features or features, classes, codes, clusters
        )
        self.discriminator = DCGANDiscriminator(
            in_channels,
            height,
            width,
            features,
            classes or clusters,
            spectral_norm,
            minibatch_std,
            projection or bool(clusters),
            codes,
        )
        self.clusters = PixelClusters(clusters, in_channels * height * width) if clusters else None
        self.apply(dcgan_init)


@register_net("cgan")
def conditional_dcgan(**options: Any) -> DCGAN:
    """Conditional DCGAN (Mirza & Osindero 2014 on DCGAN networks): the one-hot class is appended
    to z for the generator and given as constant extra input channels to the discriminator, so
    ``label=7`` asks for a seven (``dcgan`` with ``conditional: true``)."""
    return DCGAN(**options, conditional=True)


class Seed002Generator(nn.Module):
    """Dense 1024 tanh, dense 128 x (H/4) x (W/4) + batch-norm + tanh, reshape, then twice:
    2x up-sampling and a 5x5 'same' convolution (64 filters + tanh, then the image + tanh);
    128 and 64 are ``2 * features`` and ``features``."""

    def __init__(self, latent_dim: int, channels: int, height: int, width: int, features: int = 64) -> None:
        super().__init__()
        if height % 4 or width % 4:
            raise ValueError(f"gan_seed002 needs image sides divisible by 4, got {height}x{width}")
        self.base = (2 * features, height // 4, width // 4)
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, 1024),
            nn.Tanh(),
            nn.Linear(1024, 2 * features * self.base[1] * self.base[2]),
            nn.BatchNorm1d(2 * features * self.base[1] * self.base[2]),
            nn.Tanh(),
        )
        self.conv = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * features, features, 5, padding=2),
            nn.Tanh(),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(features, channels, 5, padding=2),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(self.dense(z).view(-1, *self.base))


class Seed002Discriminator(nn.Module):
    """Conv 64@5x5 ('same') tanh, 2x2 max-pool, conv 128@5x5 ('valid', as in the Keras model) tanh,
    2x2 max-pool, dense 1024 tanh, dense 1 (a logit: the sigmoid lives in the loss); optionally
    spectrally normalized, with a minibatch standard-deviation channel before the dense layers."""

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        features: int = 64,
        spectral_norm: bool = False,
        minibatch_std: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            normed(nn.Conv2d(channels, features, 5, padding=2), spectral_norm),
            nn.Tanh(),
            nn.MaxPool2d(2),
            normed(nn.Conv2d(features, 2 * features, 5), spectral_norm),
            nn.Tanh(),
            nn.MaxPool2d(2),
        ]
        if minibatch_std:
            layers.append(MinibatchStd())
        self.features = nn.Sequential(*layers, nn.Flatten())
        side = math.prod((size // 2 - 4) // 2 for size in (height, width))
        flat = (2 * features + int(minibatch_std)) * side
        if side <= 0:
            raise ValueError(
                f"gan_seed002's discriminator needs images of at least 12x12, got {height}x{width}"
            )
        self.head = nn.Sequential(
            normed(nn.Linear(flat, 1024), spectral_norm), nn.Tanh(), normed(nn.Linear(1024, 1), spectral_norm)
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(images)).flatten()


@register_net("gan_seed002")
class GANSeed002(nn.Module):
    """The Keras GAN of seed 002 (dense + up-sampling generator, conv + max-pool discriminator);
    ``features``: the generator's last and the discriminator's first conv channels (64 in seed 002);
    ``generator_features``, ``spectral_norm`` and ``minibatch_std`` as for :class:`DCGAN` (no ``codes``,
    no ``clusters``)."""

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        num_classes: int,
        latent_dim: int = 100,
        features: int = 64,
        spectral_norm: bool = False,
        minibatch_std: bool = False,
        generator_features: int | None = None,
        codes: int = 0,
        clusters: int = 0,
    ) -> None:
        super().__init__()
        if codes or clusters:
            raise ValueError(
                f"codes={codes}, clusters={clusters}: gan_seed002 has neither a latent code nor "
                "self-conditioning; use model=dcgan (or 0)"
            )
        self.latent_dim = latent_dim
        self.conditional = False
        self.generator = Seed002Generator(
            latent_dim, in_channels, height, width, generator_features or features
        )
        self.discriminator = Seed002Discriminator(
            in_channels, height, width, features, spectral_norm, minibatch_std
        )
