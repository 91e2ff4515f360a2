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
colour mode are prepared as the training images were (:mod:`dlforge.preprocess`). What a model
does with its inputs is its family's (``dlforge/serving/<family>.py``): this tool only loads it.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig

from dlforge.cli import hydra_entry, verbatim
from dlforge.errors import DlforgeError
from dlforge.inference import load


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Load the checkpoint or exported file; its family predicts (``ServedModel.predict``)."""
    if sum(cfg.get(key) is not None for key in ("text", "input", "image", "audio")) != 1:
        raise DlforgeError(
            'pass either text="..." or input=<file, one text a line> (input=- reads stdin) to a text '
            "classifier or translator, image=<image file or folder> to an image classifier, or "
            "audio=<WAV file or folder> to an audio classifier"
        )
    given = [cfg.get(key) for key in ("ckpt_path", "model_path") if cfg.get(key) not in (None, "")]
    if len(given) != 1:
        raise DlforgeError("pass either ckpt_path=<checkpoint> or model_path=<file from dlforge.export>")
    return load(given[0]).predict(cfg)


@hydra_entry("predict")
def _main(cfg: DictConfig) -> None:
    predict(cfg)


def main() -> None:
    sys.argv = [sys.argv[0], *(verbatim(arg, "text") for arg in sys.argv[1:])]
    _main()


if __name__ == "__main__":
    main()
