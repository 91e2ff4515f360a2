"""Predict with a trained model: ``python -m dlforge.predict ckpt_path=... text="a witty film"``.

The model is a checkpoint (``ckpt_path=``) or a file written by ``python -m dlforge.export``
(``model_path=``, its JSON card beside it). Inputs:

- ``text=...`` (text classifiers), ``image=<file>`` (image classifiers) or ``audio=<file.wav>`` (audio
  classifiers): prints the ``top_k`` best classes, one ``label<TAB>probability`` line each (a
  two-class model prints its one label);
- ``input=<file>`` (one text a line, ``-``: stdin), ``image=<folder>`` (every image in it) or
  ``audio=<folder>`` (every .wav in it): writes a CSV (``output=...``, default ``predictions.csv`` in
  the run dir; ``-``: stdout);
- a translator (seq2seq) prints the translation of ``text=...``, or writes a ``text,translation``
  CSV for ``input=``.

``json=true`` prints (or writes to ``output=``) one JSON document instead. Images of any size and
colour mode are prepared as the training images were (:mod:`dlforge.preprocess`). The tool
dispatches on the model's task (its card's) through :data:`PREDICTORS`.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from omegaconf import DictConfig

from dlforge.audio import AudioInputError
from dlforge.cli import hydra_entry
from dlforge.data.piglatin import foreign_words
from dlforge.errors import DlforgeError
from dlforge.inference import (
    AudioClassifierModel,
    ImageClassifierModel,
    ServedModel,
    TextClassifierModel,
    TranslatorModel,
    load,
)
from dlforge.outputs import atomic_write, write_text
from dlforge.preprocess import ImageInputError, load_image

log = logging.getLogger("dlforge")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def read_texts(source: str) -> list[str]:
    """One text per line from a file, or from stdin for ``-`` (empty lines skipped)."""
    if source == "-":
        lines = sys.stdin.read().splitlines()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DlforgeError(f"no input file at {path}; pass input=<file with one text a line> or input=-")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def write_predictions(
    out: IO[str],
    items: list[str],
    labels: list[str],
    probs: list[list[float]],
    names: list[str],
    column: str = "text",
) -> None:
    """CSV: the input (``column``), label, probability (of that label), then one column per class."""
    writer = csv.writer(out)
    writer.writerow([column, "label", "probability", *(f"p_{name}" for name in names)])
    for item, label, row in zip(items, labels, probs, strict=True):
        writer.writerow([item, label, f"{max(row):.6f}", *(f"{p:.6f}" for p in row)])


def write_json_answer(
    output: str | None, model: ServedModel, key: str, results: list[dict[str, Any]], single: bool
) -> dict[str, Any]:
    """``json=true``: one result (``single``) or the document of all, to ``output`` or stdout."""
    document = {"model": model.source, "kind": model.kind, key: results}
    text = json.dumps(results[0] if single else document, indent=2)
    if output and output != "-":
        write_text(output, text + "\n")
    else:
        print(text, flush=True)
    return document


def top_classes(row: list[float], names: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, best first (of two classes only the best: the other is the rest)."""
    k = 1 if len(names) == 2 else max(1, min(k, len(names)))
    order = sorted(range(len(row)), key=lambda i: -row[i])[:k]
    return [(names[i], row[i]) for i in order]


def report(
    cfg: DictConfig, model: ServedModel, items: list[str], probs: torch.Tensor, column: str, single: bool
) -> dict[str, Any]:
    """Print one input's top classes, or write every input's probabilities as CSV (or JSON)."""
    names = model.class_names
    rows = probs.tolist()
    labels = [names[i] for i in probs.argmax(dim=1).tolist()] if len(rows) else []
    results = [
        {
            column: item,
            "label": label,
            "probability": max(row),
            "top": [{"label": n, "probability": p} for n, p in top_classes(row, names, cfg.top_k)],
            "probabilities": dict(zip(names, row, strict=True)),
        }
        for item, label, row in zip(items, labels, rows, strict=True)
    ]
    output = cfg.get("output")
    if cfg.get("json"):
        return write_json_answer(output, model, "predictions", results, single)
    if single:
        for name, p in top_classes(rows[0], names, cfg.top_k):
            print(f"{name}\t{p:.4f}", flush=True)
        return {"label": labels[0], "probability": results[0]["probability"], "top": results[0]["top"]}
    output = output or str(Path(cfg.paths.output_dir) / "predictions.csv")
    if output == "-":
        write_predictions(sys.stdout, items, labels, rows, names, column)
    else:
        with atomic_write(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            write_predictions(f, items, labels, rows, names, column)
        counts = ", ".join(f"{labels.count(name)} {name}" for name in names if name in labels)
        print(f"{len(items)} {column}s: {counts}; predictions in {output}", flush=True)
    return {"count": len(items), "output": output}


def predict_text(cfg: DictConfig, model: ServedModel) -> dict[str, Any]:
    """Classify ``cfg.text`` (printed) or the lines of ``cfg.input`` (a CSV) with a text classifier."""
    if cfg.get("image") is not None or cfg.get("audio") is not None:
        raise DlforgeError(f"{model.source} is a text classifier: pass text=... or input=<file>")
    assert isinstance(model, TextClassifierModel)
    single = cfg.get("text") is not None
    texts = [str(cfg.text)] if single else read_texts(str(cfg.input))
    return report(cfg, model, texts, model.classify(texts, batch_size=cfg.batch_size), "text", single)


def predict_translation(cfg: DictConfig, model: ServedModel) -> dict[str, Any]:
    """Translate ``cfg.text`` (printed) or the lines of ``cfg.input`` (a CSV of text, translation)."""
    if cfg.get("image") is not None or cfg.get("audio") is not None:
        raise DlforgeError(f"{model.source} is a translator: pass text=... or input=<file>")
    assert isinstance(model, TranslatorModel)
    single = cfg.get("text") is not None
    texts = [str(cfg.text)] if single else read_texts(str(cfg.input))
    if not any(text.strip() for text in texts):
        raise DlforgeError('nothing to translate: pass some English, e.g. text="Hello, world!"')
    translations = model.translate(texts)
    kept = foreign_words(texts)
    if kept:
        print(f"note: kept as written (letters outside a-z): {', '.join(kept[:10])}", file=sys.stderr)
    results = [{"text": t, "translation": p} for t, p in zip(texts, translations, strict=True)]
    output = cfg.get("output")
    if cfg.get("json"):
        return write_json_answer(output, model, "translations", results, single)
    if single:
        print(translations[0], flush=True)
        return results[0]
    output = output or str(Path(cfg.paths.output_dir) / "predictions.csv")
    if output == "-":
        csv.writer(sys.stdout).writerows([["text", "translation"], *map(dict.values, results)])
    else:
        with atomic_write(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text", "translation"], *map(dict.values, results)])
        print(f"{len(texts)} texts translated; translations in {output}", flush=True)
    return {"count": len(texts), "output": output}


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DlforgeError(f"no image file or folder at {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DlforgeError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def predict_images(cfg: DictConfig, model: ServedModel) -> dict[str, Any]:
    """Classify ``cfg.image`` (a file: printed) or every image in it (a folder: a CSV)."""
    if cfg.get("image") is None:
        raise DlforgeError(
            f"predict does not handle {model.kind} models with text= or input=: pass image=<file or folder>"
        )
    assert isinstance(model, ImageClassifierModel)
    source = Path(str(cfg.image)).expanduser()
    single = source.is_file()
    paths, images = [], []
    for path in [source] if single else image_files(source):
        try:
            images.append(load_image(path, model.spec, cfg.preprocess))
            paths.append(str(path))
        except ImageInputError as err:
            if single:
                raise DlforgeError(f"{path}: {err}") from None
            log.warning("skipping %s: %s", path, err)
    if not images:
        raise DlforgeError(f"none of the files in {source} is a readable image")
    batches = torch.stack(images).split(cfg.batch_size)
    probs = torch.cat([model.classify(batch) for batch in batches])
    return report(cfg, model, paths, probs, "image", single)


def predict_audio(cfg: DictConfig, model: ServedModel) -> dict[str, Any]:
    """Classify ``cfg.audio`` (a WAV file: printed) or every ``.wav`` in it (a folder: a CSV)."""
    if cfg.get("audio") is None:
        raise DlforgeError(f"{model.source} is an audio classifier: pass audio=<WAV file or folder of them>")
    assert isinstance(model, AudioClassifierModel)
    source = Path(str(cfg.audio)).expanduser()
    single = source.is_file()
    if not single and not source.is_dir():
        raise DlforgeError(f"no WAV file or folder at {source}")
    paths, clips = [], []
    for path in [source] if single else sorted(source.glob("*.wav")):
        try:
            clips.append(model.read(path))
            paths.append(str(path))
        except AudioInputError as err:
            if single:
                raise
            log.warning("skipping %s: %s", path, err)
    if not clips:
        raise DlforgeError(f"no usable .wav clips in {source}")
    probs = torch.cat(
        [model.classify(clips[i : i + cfg.batch_size]) for i in range(0, len(clips), cfg.batch_size)]
    )
    return report(cfg, model, paths, probs, "clip", single)


#: What predicts for each task (a network or a scikit-learn baseline, from a checkpoint or an export).
PREDICTORS: dict[str, Callable[[DictConfig, ServedModel], dict[str, Any]]] = {
    "text_classification": predict_text,
    "image_classification": predict_images,
    "audio_classification": predict_audio,
    "translation": predict_translation,
}


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Load the checkpoint or exported file and dispatch on its model kind."""
    if sum(cfg.get(key) is not None for key in ("text", "input", "image", "audio")) != 1:
        raise DlforgeError(
            'pass either text="..." or input=<file, one text a line> (input=- reads stdin) to a text '
            "classifier or translator, image=<image file or folder> to an image classifier, or "
            "audio=<WAV file or folder> to an audio classifier"
        )
    if (cfg.get("ckpt_path") is None) == (cfg.get("model_path") is None):
        raise DlforgeError("pass either ckpt_path=<checkpoint> or model_path=<file from dlforge.export>")
    model = load(cfg.get("ckpt_path") or cfg.model_path)
    if model.task not in PREDICTORS:
        generator = model.task in ("image_generation", "audio_generation")
        hint = "; sample a generator with python -m dlforge.generate" if generator else ""
        raise DlforgeError(
            f"predict does not handle {model.kind} models; it takes image, text and audio classifiers and "
            f"translators{hint}"
        )
    return PREDICTORS[model.task](cfg, model)


def verbatim_text(arg: str) -> str:
    """``text=a gorgeous, witty film`` as a quoted Hydra override, so that the review reaches the
    tool as typed (Hydra's grammar would read commas as a sweep, and parse quotes, brackets, ``${``)."""
    if not arg.startswith("text="):
        return arg
    value = arg[len("text=") :]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return arg  # already quoted for Hydra
    value = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return "text='" + value.replace("${", "\\${") + "'"


@hydra_entry("predict")
def _main(cfg: DictConfig) -> None:
    predict(cfg)


def main() -> None:
    sys.argv = [sys.argv[0], *map(verbatim_text, sys.argv[1:])]
    _main()


if __name__ == "__main__":
    main()
