"""Text to image: StackGAN's two stages trained together on captioned canvases (``data=captioned_mnist``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlforge.data.captioned import CENTRE, LARGE, PAD, TEST_SETS, UNK, item_boxes
from dlforge.models.base import AdversarialModule
from dlforge.models.gan import LOSSES, discriminator_loss, generator_loss
from dlforge.nets import build_net
from dlforge.registry import register_model

#: what a caption says of an item: each property's column in a batch's ``properties`` (N, items, 4)
PROPERTIES = ("class", "position", "size", "colour")
VALUES = {"class": "class_names", "position": "positions", "size": "sizes", "colour": "colours"}


def drop_words(tokens: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids (N, L) with each word replaced by UNK with probability ``rate`` (word dropout, Iyyer et
    al. 2015): the reader cannot lean on any one word's neighbours. Padding stays."""
    if rate <= 0:
        return tokens
    drop = torch.rand(tokens.shape, generator=generator).to(tokens.device) < rate
    return tokens.masked_fill(drop & (tokens != PAD), UNK)


def placement_boxes(spec: dict[str, Any], properties: list[str]) -> list[list[list[float]]]:
    """``[position][size] -> [centre x, centre y, half side]`` of an item's box in [-1, 1] canvas
    coordinates, as the canvas builder places items (one position, the centre, when captions say none;
    one size, large, likewise): where :class:`~dlforge.nets.stackgan.PlacedStageIGenerator` starts."""
    canvas = float(spec["height"])
    boxes = item_boxes(spec)
    positions = range(len(boxes)) if "position" in properties else [CENTRE]
    sizes = range(len(spec["size_px"])) if "size" in properties else [LARGE]
    return [
        [
            [(2 * left + side) / canvas - 1, (2 * top + side) / canvas - 1, side / canvas]
            for top, left, side in row
        ]
        for row in ([boxes[p][s] for s in sizes] for p in positions)
    ]


@register_model("stackgan")
class StackGAN(AdversarialModule):
    """StackGAN (Zhang et al. 2017) on captioned canvases; batches are ``(images, tokens, properties)``.

    Both stages train together, each step: stage I draws at half the canvas size from noise and the
    caption's code; stage II redraws the *detached* stage-I picture at full size from the code again,
    so each stage's generator learns from its own matching-aware discriminator only (stage II
    refines whatever stage I draws, and a stage-II checkpoint needs no stage-I one). The
    discriminators reject real images paired with another caption of the batch as well as fakes.

    The caption encoder is trained beforehand in the same step, not by the GAN: a head on its
    embedding predicts every property the caption states (class, position, size, colour of each
    item; cross-entropy, its own optimizer). The grammar makes these labels exact, so the code the
    generators see carries what the caption says from the first steps, and the discriminators cannot
    shape the text space to their own ends (StackGAN used a fixed pretrained char-CNN-RNN for the same
    reason). The generators and discriminators see the embedding detached, joined with that head's
    property probabilities (:meth:`condition`).

    Args:
        net: ``{"name": "stackgan", **its options}`` (:class:`dlforge.nets.stackgan.StackGAN`).
        data: the captioned data module's ``spec`` (canvas shape, vocabulary, property values).
        loss: the GAN family's losses (non_saturating | hinge | least_squares).
        kl_weight: weight of conditioning augmentation's KL term in the generators' loss.
        property_weight: weight of the discriminators' property loss (0: none): each reads the caption's
            properties from an image alone, learns them from real images and holds the generators to
            them (as AC-GAN's auxiliary classifier, Odena et al. 2017).
        read_properties: the text vector the generators and discriminators see is the caption's embedding
            joined with the caption reader's property probabilities (what the caption says, read from
            its words); False: the embedding alone.
        embedding_in_condition: with ``read_properties``, False leaves the embedding out: the generators
            and discriminators see the reader's probabilities alone, so a caption of new wording or of a
            new pairing of known values gives them only values they have seen.
            ``net.placement`` (which needs it) composes stage I of what and where: each item drawn at
            the centre from its class (and colour) alone, then moved to its box by a spatial
            transformer read from its position and size alone
            (:class:`~dlforge.nets.stackgan.PlacedStageIGenerator`); stage II and the discriminators
            are unchanged, and the KL term is the mean over both codes' numbers.
        caption_lr: the caption encoder's learning rate (``optimizer_d``'s optimizer at this rate).
        word_dropout: the rate of :func:`drop_words` on the captions the encoder trains on (0: none).
        embeddings: starting word vectors (the data's GloVe rows), or None.
        samples: options of the caption grids (:class:`dlforge.callbacks.stackgan.CaptionGrid`).
        training: ``optimizer_g``, ``optimizer_d``, ``scheduler``, ``monitor``.
    """

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        loss: str = "hinge",
        kl_weight: float = 1.0,
        property_weight: float = 1.0,
        read_properties: bool = True,
        embedding_in_condition: bool = True,
        caption_lr: float = 0.001,
        word_dropout: float = 0.0,
        embeddings: torch.Tensor | None = None,
        samples: dict[str, Any] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        if loss not in LOSSES or loss == "wgan_gp":
            raise ValueError(f"loss={loss}: choose one of non_saturating, hinge, least_squares")
        if not (embedding_in_condition or read_properties):
            raise ValueError(
                "embedding_in_condition=false leaves the drawings only the caption reader's probabilities: "
                "set read_properties=true with it"
            )
        self.placement = bool(net.get("placement", False))  # checkpoints saved before it: False
        if self.placement and (embedding_in_condition or not read_properties):
            raise ValueError(
                "model.net.placement=true reads the class, position and size from the caption reader's "
                "probabilities alone: set model.embedding_in_condition=false (and model.read_properties=true)"
            )
        self.save_hyperparameters(ignore=["embeddings"])
        self.properties = [p for p in PROPERTIES if p in data.get("properties", PROPERTIES[:3])]
        self.items = int(data.get("items", 1))
        self.sizes = [len(data[VALUES[p]]) for p in self.properties]
        outputs = sum(self.sizes) * self.items  # every property of every item
        layout = (
            {
                "parts": list(zip(self.properties, self.sizes, strict=True)),
                "items": self.items,
                "boxes": placement_boxes(data, self.properties),
            }
            if self.placement
            else {}
        )
        nets = build_net(
            in_channels=data["channels"],
            height=data["height"],
            width=data["width"],
            vocab_size=len(data["vocab"]),
            properties=outputs if property_weight else 0,
            read_dim=outputs if read_properties else 0,
            embedding_in_text=embedding_in_condition,
            vectors=embeddings,
            **layout,
            **net,
        )
        self.encoder = nets.encoder
        self.reader = nn.Linear(self.encoder.dim, outputs)  # the caption's properties, from its embedding
        self.generator = nn.ModuleDict(
            {"augmentation": nets.augmentation, "one": nets.stage_one, "two": nets.stage_two}
        )
        self.discriminator = nn.ModuleDict({"one": nets.critic_one, "two": nets.critic_two})
        self.latent_dim = nets.latent_dim

    # --- drawing -------------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(tokens)

    @torch.no_grad()
    def condition(self, embedding: torch.Tensor) -> torch.Tensor:
        """The text vector the stages and critics see: the caption's embedding, joined (``read_properties``)
        with the caption reader's probabilities of each property of each item (or those alone:
        ``embedding_in_condition=False``); no gradient to the reader."""
        if not self.hparams.read_properties:
            return embedding
        parts = self.reader(embedding).unflatten(1, (self.items, -1)).split(self.sizes, dim=2)
        read = [part.softmax(dim=2).flatten(1) for part in parts]
        return torch.cat([embedding, *read] if self.hparams.embedding_in_condition else read, dim=1)

    def draw_stage_one(
        self, z: torch.Tensor, condition: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage I's picture in [-1, 1] from noise and the text vector, the code stage II draws with, and
        conditioning augmentation's KL term (with ``placement``: the mean of the stage-II code's and
        the what-code's, a mean over both codes' numbers)."""
        code, kl = self.generator["augmentation"](condition)
        if not self.placement:
            return self.generator["one"](z, code), code, kl
        one, what_kl = self.generator["one"](z, condition)
        return one, code, (kl + what_kl) / 2

    def draw(
        self, tokens: torch.Tensor, z: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage-I and stage-II pictures in [0, 1] for captions' token ids (N, L) (noise drawn with
        ``generator`` unless ``z`` is given); stage I at half the size."""
        if z is None:
            z = torch.randn(len(tokens), self.latent_dim, generator=generator).to(self.device)
        one, code, _ = self.draw_stage_one(z, self.condition(self.embed(tokens)))
        two = self.generator["two"](one, code)
        return (one.float() + 1) / 2, (two.float() + 1) / 2

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizers = super().configure_optimizers()
        reader = [*self.encoder.parameters(), *self.reader.parameters()]
        text = self.build_optimizer({**self.hparams.optimizer_d, "lr": self.hparams.caption_lr}, reader)
        if isinstance(optimizers, tuple):  # with schedulers
            return [*optimizers[0], text], optimizers[1]
        return [*optimizers, text]

    def property_loss(self, logits: torch.Tensor, properties: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of property logits (N, items x sum of the property sizes) against the stated
        properties (N, items, 4; -1: not stated)."""
        losses = []
        parts = logits.view(len(logits), self.items, -1).split(self.sizes, dim=2)
        for part, name in zip(parts, self.properties, strict=True):
            target = properties[:, :, PROPERTIES.index(name)]
            losses.append(F.cross_entropy(part.flatten(0, 1), target.flatten(), ignore_index=-1))
        return torch.stack(losses).mean()

    def caption_loss(self, embedding: torch.Tensor, properties: torch.Tensor) -> torch.Tensor:
        """How well the caption's embedding says its properties."""
        return self.property_loss(self.reader(embedding), properties)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> dict[str, torch.Tensor]:
        images, tokens, properties = batch
        opt_g, opt_d, opt_t = self.optimizers()
        kind = self.hparams.loss

        # the caption encoder, on the caption's own labels
        embedding = self.embed(tokens)
        rate = self.hparams.word_dropout
        read = self.embed(drop_words(tokens, rate)) if rate else embedding  # the drawings see every word
        t_loss = self.caption_loss(read, properties)
        opt_t.zero_grad(set_to_none=True)
        self.manual_backward(t_loss)
        opt_t.step()
        embedding = self.condition(embedding.detach())
        wrong = embedding.roll(1, dims=0)  # another caption of the batch

        real_two = images * 2 - 1
        real_one = F.avg_pool2d(real_two, 2)
        z = torch.randn(len(images), self.latent_dim, device=self.device)
        fake_one, code, kl = self.draw_stage_one(z, embedding)
        fake_two = self.generator["two"](fake_one.detach(), code)

        critics = self.discriminator
        weight = self.hparams.property_weight
        self.toggle_optimizer(opt_d)
        d_loss = torch.zeros((), device=self.device)
        for stage, real, fake in (("one", real_one, fake_one), ("two", real_two, fake_two)):
            critic = critics[stage]
            rejected = torch.cat([critic(real, wrong), critic(fake.detach(), embedding)])
            if weight:
                accepted, read = critic(real, embedding, with_properties=True)
                d_loss = d_loss + weight * self.property_loss(read, properties)
            else:
                accepted = critic(real, embedding)
            d_loss = d_loss + discriminator_loss(kind, accepted, rejected)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        g_losses = []
        for stage, fake in (("one", fake_one), ("two", fake_two)):
            if weight:
                logit, read = critics[stage](fake, embedding, with_properties=True)
                g_losses.append(generator_loss(kind, logit) + weight * self.property_loss(read, properties))
            else:
                g_losses.append(generator_loss(kind, critics[stage](fake, embedding)))
        g_one, g_two = g_losses
        g_loss = g_one + g_two + self.hparams.kl_weight * kl
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        log = {
            "d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "g_one": g_one.detach(),
            "g_two": g_two.detach(), "kl": kl.detach(), "caption_loss": t_loss.detach(),
        }  # fmt: skip
        self.log_train_step(log, batch_size=len(images), prog_bar=("d_loss", "g_loss", "caption_loss"))
        return {"d_loss": log["d_loss"], "g_loss": log["g_loss"]}

    # --- validation / test: how well the caption encoder reads captions it has not trained on -----
    def _evaluate(self, batch: tuple[torch.Tensor, ...], stage: str, suffix: str = "") -> None:
        _, tokens, properties = batch
        embedding = self.embed(tokens)
        loss = self.caption_loss(embedding, properties)
        self.log(f"{stage}/caption_loss{suffix}", loss, batch_size=len(tokens), add_dataloader_idx=False)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, "test", f"_{TEST_SETS[dataloader_idx]}")
