"""Loading checkpoints safely: ``torch.load(weights_only=True)`` and only registered model classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dlforge.errors import CheckpointError
from dlforge.models import MODELS, DlforgeModule


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, read without unpickling code (``weights_only=True``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass ckpt_path=<run dir>/checkpoints/last.ckpt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from None


def load_model(path: str | Path, kinds: tuple[str, ...] | None = None) -> DlforgeModule:
    """Rebuild the model stored at ``path`` in eval mode; ``kinds`` restricts the accepted model kinds."""
    checkpoint = read_checkpoint(path)
    kind = checkpoint.get("dlforge", {}).get("model")
    if kind not in MODELS:
        raise CheckpointError(f"{path} is not a dlforge model checkpoint (model kind {kind!r})")
    if kinds is not None and kind not in kinds:
        raise CheckpointError(f"{path} holds a {kind} model; this tool needs one of: {', '.join(kinds)}")
    model = MODELS[kind](**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def check_data_fits(model: DlforgeModule, data_spec: dict[str, Any], data_choice: str | None = None) -> None:
    """Fail with a hint when a data set's shape or classes differ from what the model was trained on."""
    trained = model.hparams.get("data") or {}
    keys = ("channels", "height", "width", "num_classes")
    if all(trained.get(k) == data_spec.get(k) for k in keys if k in trained):
        return

    def shape(spec: dict[str, Any]) -> str:
        size = "x".join(str(spec.get(k)) for k in ("channels", "height", "width"))
        return f"{size}, {spec.get('num_classes')} classes"

    raise CheckpointError(
        f"the checkpoint was trained on {trained.get('name')} ({shape(trained)}) but "
        f"data={data_choice or data_spec.get('name')} gives {shape(data_spec)}; "
        f"pass the data set it was trained on (data={trained.get('name')})"
    )
