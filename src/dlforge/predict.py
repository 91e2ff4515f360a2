"""Predict with a trained checkpoint: ``python -m dlforge.predict ckpt_path=... text="a witty film"``.

``text=...`` prints the label and its probability; ``input=<file>`` (one text a line, ``-``: stdin)
writes a CSV (``output=...``, default ``predictions.csv`` in the run dir; ``-``: stdout). The tool
dispatches on the checkpoint's model kind; text classifiers are served by :func:`predict_text`.
"""

from __future__ import annotations

import csv
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from omegaconf import DictConfig

from dlforge.checkpoint import load_model, read_checkpoint
from dlforge.cli import hydra_entry
from dlforge.errors import DlforgeError
from dlforge.models import TextClassifier

log = logging.getLogger("dlforge")


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
    out: IO[str], texts: list[str], labels: list[str], probs: list[list[float]], names: list[str]
) -> None:
    """CSV: text, label, probability (of that label), then one probability column per class."""
    writer = csv.writer(out)
    writer.writerow(["text", "label", "probability", *(f"p_{name}" for name in names)])
    for text, label, row in zip(texts, labels, probs, strict=True):
        writer.writerow([text, label, f"{max(row):.6f}", *(f"{p:.6f}" for p in row)])


def predict_text(cfg: DictConfig) -> dict[str, Any]:
    """Classify ``cfg.text`` (printed) or the lines of ``cfg.input`` (a CSV) with a text classifier."""
    model = load_model(cfg.ckpt_path, kinds=(TextClassifier.kind,))
    assert isinstance(model, TextClassifier)
    texts = [str(cfg.text)] if cfg.get("text") is not None else read_texts(str(cfg.input))
    names = model.hparams.data["class_names"]
    probs = model.predict_texts(texts, batch_size=cfg.batch_size)
    best = probs.argmax(dim=1).tolist()
    labels = [names[i] for i in best]
    rows = probs.tolist()
    if cfg.get("text") is not None:
        print(f"{labels[0]}\t{rows[0][best[0]]:.4f}", flush=True)
        return {"label": labels[0], "probability": rows[0][best[0]]}
    output = cfg.get("output") or str(Path(cfg.paths.output_dir) / "predictions.csv")
    if output == "-":
        write_predictions(sys.stdout, texts, labels, rows, names)
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with open(output, "w", newline="", encoding="utf-8") as f:
            write_predictions(f, texts, labels, rows, names)
        counts = ", ".join(f"{labels.count(name)} {name}" for name in names)
        print(f"{len(texts)} texts: {counts}; predictions in {output}", flush=True)
    return {"count": len(texts), "output": output}


#: What predicts with each model kind (issue 8 adds images and exported files).
PREDICTORS: dict[str, Callable[[DictConfig], dict[str, Any]]] = {
    TextClassifier.kind: predict_text,
}


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Dispatch on the checkpoint's model kind."""
    if (cfg.get("text") is None) == (cfg.get("input") is None):
        raise DlforgeError('pass either text="..." or input=<file, one text a line> (input=- reads stdin)')
    kind = read_checkpoint(cfg.ckpt_path).get("dlforge", {}).get("model")
    if kind not in PREDICTORS:
        raise DlforgeError(
            f"predict does not handle {kind or 'non-dlforge'} checkpoints yet; "
            f"it takes: {', '.join(PREDICTORS)}"
        )
    return PREDICTORS[kind](cfg)


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
