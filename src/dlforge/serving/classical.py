"""Serving the scikit-learn baselines: as the image and text classifiers are served (predict, the app),
from their checkpoints; they are not torch graphs, so they are not exported."""

from typing import Any

from dlforge.models.classical import ClassicalClassifier
from dlforge.registry import register_serving
from dlforge.serving.classifier import ImageClassifierModel
from dlforge.serving.text import TextClassifierModel

REFUSAL = (
    "a scikit-learn baseline is not a torch graph and cannot be exported; predict, evaluate and "
    "the app take its checkpoint itself (ckpt_path=...)"
)


@register_serving(ClassicalClassifier)
class ClassicalImageClassifier(ImageClassifierModel):
    @classmethod
    def export_refusal(cls, model: Any) -> str | None:
        return REFUSAL


@register_serving(ClassicalClassifier)
class ClassicalTextClassifier(TextClassifierModel):
    @classmethod
    def export_refusal(cls, model: Any) -> str | None:
        return REFUSAL
