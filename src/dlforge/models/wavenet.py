"""WaveNet on spoken digits: next-sample prediction over 256 mu-law levels, conditioned on the digit."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torchaudio.functional import mu_law_decoding, mu_law_encoding
from torchmetrics import MeanMetric

from dlforge.data.spoken_digits import gather_padded, random_windows
from dlforge.errors import DlforgeError
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.registry import register_model

log = logging.getLogger(__name__)


@register_model("wavenet")
class WaveNetModel(DlforgeModule):
    """An autoregressive model of waveforms: the clip's mu-law levels, each predicted from the ones before.

    Training reads random windows of ``crop`` samples
    (:func:`dlforge.data.spoken_digits.random_windows`), each
    with the receptive field of real past before it (silence before a clip's start), and scores only
    recorded samples: the padding after a clip is never a target. Validation and test score whole
    clips, after a receptive field of silence as in training and generation. The loss is the
    negative log-likelihood in bits per sample (``train/nll``, ``val/nll``, ``test/nll``; 8 bits is a
    uniform guess over 256 levels).

    Args:
        net: ``{"name": wavenet, **its options}`` (:class:`dlforge.nets.wavenet.WaveNet`).
        data: the data module's ``spec`` (sample rate, digits, training voices).
        crop: training window in samples (null: whole clips).
        speaker_dropout: with speaker conditioning, the share of training clips whose voice is hidden
            (index 0, "any voice"), so that the model also learns to speak without one.
        samples: options of the per-epoch audio samples (:class:`dlforge.callbacks.wavenet.AudioSamples`;
            their ``seconds`` and ``temperature`` also serve the quality monitor); null: none.
        training: ``optimizer``, ``scheduler``, ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.DlforgeModule`).
    """

    default_monitor = "val/nll"

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        crop: int | None = 4000,
        speaker_dropout: float = 0.2,
        samples: dict[str, Any] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.save_hyperparameters()
        self.sample_rate = data["sample_rate"]
        self.num_classes = data["num_classes"]
        self.speakers = list(data.get("speakers") or [])
        self.net = build_net(num_classes=self.num_classes, num_speakers=len(self.speakers), **net)
        self.val_nll, self.test_nll = MeanMetric(), MeanMetric()

    @property
    def receptive_field(self) -> int:
        return self.net.receptive_field

    def levels(self, waves: torch.Tensor) -> torch.Tensor:
        """Waveforms in [-1, 1] -> mu-law levels 0..levels-1."""
        return mu_law_encoding(waves, self.net.levels)

    def nll(
        self, x: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, speakers: torch.Tensor
    ) -> torch.Tensor:
        """Per-sample negative log-likelihood in bits (N, T') of the last T' = targets' samples of ``x``."""
        logits = self.net(x, labels, speakers)[:, :, -targets.shape[1] :]
        return F.cross_entropy(logits.float(), targets, reduction="none") / math.log(2)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        waves, labels, lengths, speakers = batch
        levels = self.levels(waves)
        x = self.net.signal(levels)
        if self.hparams.crop:
            context = self.receptive_field
            positions, mask = random_windows(lengths, self.hparams.crop, context)
            x, levels = gather_padded(x, positions), gather_padded(levels, positions[:, context:])
        else:
            mask = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
            x = F.pad(x, (self.receptive_field, 0))
        if self.net.speaker is not None and self.hparams.speaker_dropout:
            hidden = torch.rand(speakers.shape, device=speakers.device) < self.hparams.speaker_dropout
            speakers = speakers.masked_fill(hidden, 0)
        bits = self.nll(x, levels, labels, speakers)
        loss = (bits * mask).sum() / mask.sum().clamp_min(1)
        self.log_train_step({"nll": loss}, batch_size=len(labels), prog_bar=("nll",))
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, ...], metric: MeanMetric, stage: str) -> None:
        waves, labels, lengths, speakers = batch
        levels = self.levels(waves[:, : int(lengths.max())])  # the padding after the longest clip: no target
        x = F.pad(self.net.signal(levels), (self.receptive_field, 0))  # the silence before the clip
        bits = self.nll(x, levels, labels, speakers)
        mask = torch.arange(levels.shape[1], device=levels.device) < lengths[:, None]
        metric(bits[mask])
        self.log(f"{stage}/nll", metric, on_epoch=True, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, self.val_nll, "val")

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, self.test_nll, "test")

    def on_fit_start(self) -> None:
        field = self.receptive_field
        log.info(
            "WaveNet receptive field: %d samples (%.1f ms at %d Hz)",
            field,
            1000 * field / self.sample_rate,
            self.sample_rate,
        )

    def on_train_start(self) -> None:
        self.log("receptive_field_ms", 1000 * self.receptive_field / self.sample_rate)

    # --- generation --------------------------------------------------------------------------
    def speaker_index(self, name: str | None) -> int:
        """A training voice's conditioning index (0: none, "any voice")."""
        if name is None:
            return 0
        if self.net.speaker is None:
            raise DlforgeError(
                "speaker=: this WaveNet is not conditioned on the speaker "
                "(train one with model.net.speaker_conditioning=true)"
            )
        if name not in self.speakers:
            raise DlforgeError(
                f"speaker={name}: not a training voice of this model; choose one of {self.speakers}"
            )
        return self.speakers.index(name) + 1

    @torch.no_grad()
    def generate(
        self,
        labels: torch.Tensor,
        seconds: float,
        seed: int = 0,
        temperature: float = 1.0,
        speaker: str | None = None,
        naive: bool = False,
    ) -> torch.Tensor:
        """Waveforms (N, seconds x rate) in [-1, 1] speaking the digits ``labels``; the same ``seed``
        gives the same clips with either sampler (``naive``: a full pass per sample, for reference)."""
        if temperature <= 0:
            raise DlforgeError(
                f"temperature={temperature}: use a positive value (1: the model's distribution)"
            )
        steps = max(1, round(seconds * self.sample_rate))
        uniforms = torch.rand(steps, len(labels), generator=torch.Generator().manual_seed(seed))
        labels = labels.to(self.device)
        speakers = torch.full_like(labels, self.speaker_index(speaker))
        sampler = self.net.generate_naive if naive else self.net.generate
        levels = sampler(labels, uniforms.to(self.device), speakers, temperature)
        return mu_law_decoding(levels, self.net.levels).float()
