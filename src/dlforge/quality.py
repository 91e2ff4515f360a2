"""Sample quality of generative models, measured with a domain classifier.

Inception weights cannot be downloaded offline, and on MNIST-like data the usual extractor is a
classifier trained on the same data set. :class:`SampleQuality` wraps torchmetrics' FID, KID and
Inception Score around such a classifier checkpoint: FID/KID on its penultimate-layer features,
the inception-style score on its class probabilities, plus the histogram of predicted classes
(mode collapse shows up there). Every result carries the extractor's name.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from dlforge.checkpoint import load_model
from dlforge.models import ImageClassifier


class _Embed(nn.Module):
    """The classifier's penultimate-layer features for images in [0, 1]."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.net.embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.embed(images.float())


class _Logits(nn.Module):
    """The classifier's logits for images in [0, 1]."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(images.float())


def class_entropy(shares: torch.Tensor) -> float:
    """Entropy of the predicted-class shares over its maximum, log(classes): 1 when every class is
    drawn equally often, 0 when one class takes every sample (mode collapse)."""
    nonzero = shares[shares > 0]
    return float(-(nonzero * nonzero.log()).sum() / math.log(len(shares))) if len(shares) > 1 else 1.0


class SampleQuality(nn.Module):
    """FID, KID, inception-style score and class histogram of generated images.

    Feed real images once with :meth:`update_real` (kept across :meth:`reset_fake`), generated
    images with :meth:`update_fake`, both as (N, C, H, W) floats in [0, 1]; then :meth:`compute`.

    Args:
        classifier_ckpt: an ``image_classifier`` checkpoint trained on the same data set.
        kid_subset_size: KID's subset size (capped by the number of images seen).
    """

    def __init__(self, classifier_ckpt: str | Path, kid_subset_size: int = 1000) -> None:
        super().__init__()
        classifier = load_model(classifier_ckpt, ImageClassifier, what="an image classifier").requires_grad_(
            False
        )
        data = classifier.hparams.data
        self.image_shape = (data["channels"], data["height"], data["width"])
        self.num_classes = data["num_classes"]
        self.extractor = f"{Path(classifier_ckpt).name} ({classifier.hparams.net['name']} on {data['name']})"
        embed, logits = _Embed(classifier), _Logits(classifier)
        self.kid_subset_size = kid_subset_size
        with warnings.catch_warnings():  # "will save all extracted features": a few thousand at most here
            warnings.simplefilter("ignore", UserWarning)
            self.fid = FrechetInceptionDistance(feature=embed, reset_real_features=False)
            self.kid = KernelInceptionDistance(feature=embed, reset_real_features=False, subset_size=2)
            self.inception = InceptionScore(feature=logits, splits=10)
        self.register_buffer(
            "class_counts", torch.zeros(self.num_classes, dtype=torch.long), persistent=False
        )
        self.classifier = classifier  # registered last: moves with .to(device), stays in eval mode

    def check_shape(self, images: torch.Tensor) -> None:
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"the quality classifier ({self.extractor}) takes {self.image_shape} images, "
                f"got {tuple(images.shape[1:])}; use a classifier trained on the same data set"
            )

    @torch.no_grad()
    def update_real(self, images: torch.Tensor) -> None:
        self.check_shape(images)
        self.fid.update(images, real=True)
        self.kid.update(images, real=True)

    @torch.no_grad()
    def update_fake(self, images: torch.Tensor) -> None:
        self.check_shape(images)
        self.classifier.eval()
        self.fid.update(images, real=False)
        self.kid.update(images, real=False)
        self.inception.update(images)
        predicted = self.classifier(images.float()).argmax(dim=1)
        self.class_counts += torch.bincount(predicted, minlength=self.num_classes)

    @property
    def real_seen(self) -> int:
        return int(self.fid.real_features_num_samples)

    @torch.no_grad()
    def compute(self) -> dict[str, float | list[int] | str]:
        """FID, KID (mean, std), inception-style score (mean, std), class counts and their
        :func:`class_entropy`, extractor name."""
        fake = int(self.fid.fake_features_num_samples)
        self.kid.subset_size = max(2, min(self.kid_subset_size, fake, self.real_seen))
        kid_mean, kid_std = self.kid.compute()
        is_mean, is_std = self.inception.compute()
        shares = self.class_counts.double() / max(1, int(self.class_counts.sum()))
        return {
            "fid": float(self.fid.compute()),
            "kid": float(kid_mean),
            "kid_std": float(kid_std),
            "inception_score": float(is_mean),
            "inception_score_std": float(is_std),
            "class_counts": self.class_counts.tolist(),
            "class_entropy": class_entropy(shares),
            "num_samples": fake,
            "extractor": self.extractor,
        }

    def reset_fake(self) -> None:
        """Forget the generated images (the real features stay)."""
        self.fid.reset()
        self.kid.reset()
        self.inception.reset()
        self.class_counts.zero_()


class DigitRecognition:
    """How a separately trained audio classifier hears generated clips: the share recognized as the
    digit asked for (``digit_acc``), its mean confidence (the top class's probability), the mean
    probability of the digit asked for, and the histogram of what it heard.

    Args:
        classifier_ckpt: an ``audio_classifier`` checkpoint (``model=audio_cnn``) of the same data set.
        sample_rate: the generator's rate, which the classifier must share.
    """

    def __init__(self, classifier_ckpt: str | Path, sample_rate: int) -> None:
        from dlforge.models import AudioClassifier

        self.classifier = load_model(
            classifier_ckpt, AudioClassifier, what="an audio classifier (model=audio_cnn)"
        ).requires_grad_(False)
        if self.classifier.sample_rate != sample_rate:
            raise ValueError(
                f"the quality classifier hears {self.classifier.sample_rate} Hz audio, the generator makes "
                f"{sample_rate} Hz; use a classifier trained on the same data set"
            )
        data = self.classifier.hparams.data
        self.extractor = (
            f"{Path(classifier_ckpt).name} ({self.classifier.hparams.net['name']} on {data['name']})"
        )

    @torch.no_grad()
    def judge(self, waves: torch.Tensor, labels: torch.Tensor) -> dict[str, float | list[int] | str]:
        """Scores of clips (N, T) generated for ``labels`` (N,)."""
        self.classifier.eval()
        device = self.classifier.device
        probs = torch.cat([self.classifier(part.to(device)).softmax(-1).cpu() for part in waves.split(256)])
        confidence, heard = probs.max(dim=1)
        labels = labels.cpu()
        return {
            "digit_acc": float((heard == labels).float().mean()),
            "confidence": float(confidence.mean()),
            "digit_prob": float(probs[torch.arange(len(labels)), labels].mean()),
            "class_counts": torch.bincount(heard, minlength=probs.shape[1]).tolist(),
            "num_samples": len(labels),
            "extractor": self.extractor,
        }

    def to(self, device: torch.device) -> DigitRecognition:
        self.classifier.to(device)
        return self
