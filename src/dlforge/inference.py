"""A trained model behind one interface, whether it comes from a checkpoint or an exported file.

Every servable model is described by a *card*: plain data saying what goes in and comes out
(input names, shapes and dtypes, class names, the text encoder's vocabulary and settings, the
latent size of a generator). ``python -m dlforge.export`` writes the card as the JSON beside the
exported file; for a checkpoint it is built from the hyper-parameters. The network itself is the
*graph*: a module with plain tensor inputs and outputs (normalization inside), which is what gets
exported and what runs a checkpoint, so a checkpoint and its export compute the same function.

What the card and graph of a model are is its family's business (``dlforge/serving/<family>.py``,
found by the model's class, or by the card's task for an export); this module only loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from dlforge.checkpoint import load_model
from dlforge.errors import CheckpointError
from dlforge.models import DlforgeModule
from dlforge.registry import TASKS
from dlforge.serving import served_class, task_class
from dlforge.serving.served import CARD_VERSION, FORMATS, ServedModel, onnx_runner, torchscript_runner


def describe(model: DlforgeModule) -> dict[str, Any]:
    """The card of a loaded model: what its graph takes and gives, and how to prepare its inputs."""
    return served_class(model).describe(model)


def graph_of(model: DlforgeModule) -> nn.Module:
    """The exportable graph of a loaded model (in eval mode)."""
    return served_class(model).graph(model).eval()


def sidecar_of(path: Path) -> Path:
    """The JSON card beside an exported file (``model.onnx`` -> ``model.json``)."""
    return path.with_suffix(".json")


def from_checkpoint(path: str | Path) -> ServedModel:
    model = load_model(path)
    served = served_class(model)
    return served(served.describe(model), served.runner(model), str(path), "pytorch")


def read_card(path: Path) -> dict[str, Any]:
    card_path = sidecar_of(path)
    if not card_path.is_file():
        raise CheckpointError(
            f"no {card_path.name} beside {path}: python -m dlforge.export writes both; keep them together"
        )
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {card_path}: {err}") from None
    if not isinstance(card, dict) or card.get("task") not in TASKS or card.get("format") not in FORMATS:
        raise CheckpointError(f"{card_path} is not a dlforge export card (no known task and format)")
    if card.get("card_version", 0) > CARD_VERSION:
        raise CheckpointError(f"{card_path} was written by a newer dlforge ({card.get('dlforge_version')})")
    return card


def from_export(path: str | Path) -> ServedModel:
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"no exported model at {path}")
    card = read_card(path)
    run = onnx_runner(path) if card["format"] == "onnx" else torchscript_runner(path)
    return task_class(card["task"])(card, run, str(path), card["format"])


def is_export(path: str | Path) -> bool:
    """An exported file (``.onnx``, ``.pt``, or anything with a card beside it) rather than a checkpoint."""
    path = Path(path).expanduser()
    return path.suffix in FORMATS.values() or (path.suffix != ".ckpt" and sidecar_of(path).is_file())


def load(path: str | Path) -> ServedModel:
    """A checkpoint (``.ckpt``) or an exported file (with its JSON card beside it), ready to run."""
    return from_export(path) if is_export(path) else from_checkpoint(path)
