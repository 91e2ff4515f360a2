"""Serving translators (seq2seq on pig latin): English words in, their translation and attention out.

Graph: letter ids ``words`` int64 (N, S) -> greedy output ids ``tokens`` int64 (N, S + 4) and
``attention`` float (N, S + 4, S); the decoding loop is in the graph, so it is exported by scripting
(TorchScript), not tracing. Predict: ``text=...`` prints the translation, ``input=<file>`` writes a
``text,translation`` CSV. App panel: ``piglatin`` (with where each output letter looked).
"""

import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from dlforge.data.piglatin import (
    BOS,
    EOS,
    PAD,
    TOKEN,
    decode_tokens,
    encode_words,
    foreign_words,
    is_word,
    output_width,
    translate_text,
)
from dlforge.errors import DlforgeError
from dlforge.models.seq2seq import Seq2Seq
from dlforge.outputs import atomic_write
from dlforge.registry import register_serving
from dlforge.serving.served import ServedModel, card_header, read_texts, write_json_answer
from dlforge.serving.web import AppContext, BadRequest, since

#: The pig-latin panel shows the attention of this many distinct words of a text.
ATTENTION_WORDS = 12
FIRST_LETTER = 3  # letter ids start after PAD, BOS, EOS


class TranslatorGraph(nn.Module):
    """A translator's greedy decoding: letter ids (N, S) -> output ids (N, S + 4), PAD after EOS, and
    attention (N, S + 4, S). Exported by scripting, not tracing, so that the loop stays a loop."""

    scripted = True

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.net = model.net

    def forward(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.greedy(words, output_width(words.size(1)))


@register_serving(Seq2Seq)
class TranslatorModel(ServedModel):
    """English -> pig latin: each word of a-z/A-Z goes through the model, the rest stays in place."""

    task = "translation"
    what = "a translator (model=seq2seq or seq2seq_transformer on data=piglatin)"
    panels = ("piglatin",)

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        data = dict(model.hparams.data)
        letters = "letters"
        return {
            **card_header(model, cls.task),
            "data": {"name": data.get("name")},
            "text": {key: data[key] for key in ("alphabet", "max_train_len", "max_word_len")},
            "tokens": {"pad": PAD, "bos": BOS, "eos": EOS, "first_letter": FIRST_LETTER},
            "decoding": "greedy",
            "inputs": [{"name": "words", "dtype": "int64", "shape": ["batch", letters]}],
            "outputs": [
                {"name": "tokens", "dtype": "int64", "shape": ["batch", f"{letters} + 4"]},
                {"name": "attention", "dtype": "float32", "shape": ["batch", f"{letters} + 4", letters]},
            ],
        }

    @classmethod
    def graph(cls, model: Any) -> nn.Module:
        return TranslatorGraph(model).eval()

    @classmethod
    def example_inputs(cls, model: Any, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        """Words of random letters and random lengths, padded."""
        data = model.hparams.data
        generator = torch.Generator().manual_seed(seed)
        size = data["max_train_len"]
        tokens = torch.randint(
            FIRST_LETTER, FIRST_LETTER + len(data["alphabet"]), (n, size), generator=generator
        )
        lengths = torch.randint(1, size + 1, (n,), generator=generator)
        return (tokens.masked_fill(torch.arange(size)[None] >= lengths[:, None], PAD),)

    @property
    def max_word_len(self) -> int:
        return int(self.card["text"]["max_word_len"])

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Every text translated (``Hello, world!`` -> ``Ellohay, orldway!``)."""
        return translate_text(texts, self.translate_words)

    def translate_words(self, words: Sequence[str], batch_size: int = 512) -> list[str]:
        """Words of a-z/A-Z translated, batched by length; a word longer than ``max_word_len`` is refused."""
        for word in words:
            if len(word) > self.max_word_len:
                raise DlforgeError(
                    f"the word {word[:20]}... has {len(word)} letters; this model translates words "
                    f"of up to {self.max_word_len} letters (its data.max_word_len): split or shorten it"
                )
        order = sorted(range(len(words)), key=lambda i: len(words[i]))
        outputs = [""] * len(words)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            tokens = self.run(encode_words([words[i] for i in batch]).numpy())[0]
            for i, output in zip(batch, decode_tokens(torch.from_numpy(tokens)), strict=True):
                outputs[i] = output
        return outputs

    def attention(self, word: str) -> tuple[str, np.ndarray]:
        """One word's translation and the attention of each output letter and EOS over its letters."""
        tokens, weights = self.run(encode_words([word]).numpy())
        output = decode_tokens(torch.from_numpy(tokens))[0]
        return output, weights[0, : len(output) + 1]

    def predict(self, cfg: DictConfig) -> dict[str, Any]:
        """Translate ``cfg.text`` (printed) or the lines of ``cfg.input`` (a CSV of text, translation)."""
        if cfg.get("image") is not None or cfg.get("audio") is not None:
            raise DlforgeError(f"{self.source} is a translator: pass text=... or input=<file>")
        single = cfg.get("text") is not None
        texts = [str(cfg.text)] if single else read_texts(str(cfg.input))
        if not any(text.strip() for text in texts):
            raise DlforgeError('nothing to translate: pass some English, e.g. text="Hello, world!"')
        translations = self.translate(texts)
        kept = foreign_words(texts)
        if kept:
            print(f"note: kept as written (letters outside a-z): {', '.join(kept[:10])}", file=sys.stderr)
        results = [{"text": t, "translation": p} for t, p in zip(texts, translations, strict=True)]
        output = cfg.get("output")
        if cfg.get("json"):
            return write_json_answer(output, self, "translations", results, single)
        if single:
            print(translations[0], flush=True)
            return results[0]
        output = output or str(Path(cfg.paths.output_dir) / "predictions.csv")
        rows = [["text", "translation"], *map(dict.values, results)]
        if output == "-":
            csv.writer(sys.stdout).writerows(rows)
        else:
            with atomic_write(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows)
            print(f"{len(texts)} texts translated; translations in {output}", flush=True)
        return {"count": len(texts), "output": output}

    def panel_info(self) -> dict[str, Any]:
        return {"max_word_len": self.max_word_len}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from pydantic import BaseModel

        class Translate(BaseModel):
            text: str

        @app.post("/api/piglatin")
        def piglatin(body: Translate) -> dict[str, Any]:
            start = time.perf_counter()
            model = context.model("piglatin")
            assert isinstance(model, TranslatorModel)
            context.check_text(body.text, "type some English first")
            try:
                translation = model.translate([body.text])[0]
            except DlforgeError as err:  # a word longer than the model takes
                raise BadRequest(str(err)) from None
            words = list(dict.fromkeys(t for t in TOKEN.findall(body.text) if is_word(t)))[:ATTENTION_WORDS]
            attention = []
            for word in words:
                output, weights = model.attention(word)
                attention.append({"word": word, "output": output, "weights": weights.round(4).tolist()})
            return {
                "translation": translation,
                "kept": foreign_words([body.text]),
                "attention": attention,
                "ms": since(start),
            }
