"""What a family's app panel is given: the request limits, its models, and the answers' shared shapes.

Kept free of FastAPI so that importing a family's serving costs nothing; a family imports FastAPI's
parts inside its ``add_routes``, which only the app calls.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from dlforge.serving.served import ServedModel


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    upload_bytes: int = 5_000_000
    max_pixels: int = 40_000_000
    text_chars: int = 5_000
    audio_seconds: float = 10.0
    speech_seconds: float = 1.0


class BadRequest(Exception):
    """A request the app refuses: answered ``{"error": <message>}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AppContext:
    """The app's state a family's routes read: the models by panel, the limits, the image preparation."""

    models: dict[str, ServedModel]
    limits: Limits = Limits()
    preprocess: str = "auto"
    panels: dict[str, type[ServedModel]] = field(default_factory=dict)

    def model(self, panel: str) -> ServedModel:
        """The model of ``panel`` (404 when the panel is unknown or has none)."""
        if panel not in self.panels:
            raise BadRequest(f"no panel {panel!r}; the panels are {', '.join(self.panels)}", 404)
        if panel not in self.models:
            raise BadRequest(f"the {panel} panel has no model: start the app with {panel}=<checkpoint>", 404)
        return self.models[panel]

    def find(self, task: str) -> ServedModel | None:
        """Any loaded model of ``task`` (a WaveNet's clips are judged by an audio classifier, if given)."""
        return next((model for model in self.models.values() if model.task == task), None)

    def check_text(self, text: str, ask: str) -> None:
        """A typed text must hold something and stay within ``limits.text_chars``."""
        if not text.strip():
            raise BadRequest(f"{ask}: the text is empty")
        if len(text) > self.limits.text_chars:
            raise BadRequest(
                f"the text has {len(text):,} characters; the limit is {self.limits.text_chars:,}", 413
            )


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def since(start: float) -> float:
    """Milliseconds since ``start`` (``time.perf_counter()``), as every answer's ``ms``."""
    return round(1000 * (time.perf_counter() - start), 2)


def classes(model: ServedModel, probs: torch.Tensor) -> dict[str, Any]:
    """The answer of a classifier: best label, every class's probability (in class order)."""
    row = probs.tolist()
    best = max(range(len(row)), key=row.__getitem__)
    return {
        "label": model.class_names[best],
        "probability": row[best],
        "probabilities": [
            {"label": name, "probability": p} for name, p in zip(model.class_names, row, strict=True)
        ],
    }
