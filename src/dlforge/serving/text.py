"""Serving text classifiers (networks and scikit-learn baselines on texts).

Graph: ``tokens`` int64 (N, max_len) -> ``logits``, ``probabilities``; the card holds the vocabulary
and tokenizer, so a text is encoded as the training texts were. Predict: ``text=...`` prints the top
classes, ``input=<file>`` (one text a line) writes a CSV. App panel: ``review``.
"""

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from dlforge.data.text_encoder import PAD_ID, TextEncoder
from dlforge.errors import DlforgeError
from dlforge.models.classifier import ClassifierModule
from dlforge.registry import register_serving
from dlforge.serving.classifier import CLASSIFIER_OUTPUTS, ClassifierServing
from dlforge.serving.served import card_header, read_texts
from dlforge.serving.web import AppContext, classes, since


@register_serving(ClassifierModule)
class TextClassifierModel(ClassifierServing):
    task = "text_classification"
    what = "a text classifier"
    panels = ("review",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encoder = TextEncoder.from_spec(self.card["text"])

    @classmethod
    def accepts(cls, model: Any) -> bool:
        return "vocab" in (model.hparams.get("data") or {})

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        data = dict(model.hparams.data)
        return {
            **card_header(model, cls.task),
            "class_names": list(data["class_names"]),
            "data": {"name": data.get("name")},
            "text": {key: data[key] for key in ("vocab", "max_len", "padding", "tokenizer")},
            "inputs": [{"name": "tokens", "dtype": "int64", "shape": ["batch", data["max_len"]]}],
            "outputs": CLASSIFIER_OUTPUTS,
        }

    @classmethod
    def example_inputs(cls, model: Any, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        """Random token ids of random lengths, padded as the encoder pads."""
        data = model.hparams.data
        generator = torch.Generator().manual_seed(seed)
        tokens = torch.randint(2, len(data["vocab"]), (n, data["max_len"]), generator=generator)
        lengths = torch.randint(1, data["max_len"] + 1, (n,), generator=generator)
        tokens[torch.arange(data["max_len"])[None] >= lengths[:, None]] = PAD_ID
        return (tokens,)

    def classify(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (N, classes) for raw texts, encoded as the training texts were."""
        tokens = self.encoder.encode(texts).numpy()
        parts = [self.run(tokens[i : i + batch_size])[1] for i in range(0, len(tokens), batch_size)]
        if not parts:
            return torch.empty(0, len(self.class_names))
        return torch.from_numpy(np.concatenate(parts))

    def predict(self, cfg: DictConfig) -> dict[str, Any]:
        """Classify ``cfg.text`` (printed) or the lines of ``cfg.input`` (a CSV)."""
        if cfg.get("image") is not None or cfg.get("audio") is not None:
            raise DlforgeError(f"{self.source} is a text classifier: pass text=... or input=<file>")
        single = cfg.get("text") is not None
        texts = [str(cfg.text)] if single else read_texts(str(cfg.input))
        return self.report(cfg, texts, self.classify(texts, batch_size=cfg.batch_size), "text", single)

    def panel_info(self) -> dict[str, Any]:
        return {"max_len": self.encoder.max_len}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from pydantic import BaseModel

        class Review(BaseModel):
            text: str

        @app.post("/api/review")
        def review(body: Review) -> dict[str, Any]:
            start = time.perf_counter()
            model = context.model("review")
            assert isinstance(model, TextClassifierModel)
            context.check_text(body.text, "type a review first")
            answer = classes(model, model.classify([body.text])[0])
            answer["tokens"] = model.encoder.tokenize(body.text)[: model.encoder.max_len]
            answer["ms"] = since(start)
            return answer
