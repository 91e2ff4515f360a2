"""Run outputs: the ``metrics.json`` every training and evaluation run ends with."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def plain_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Logged metric values (tensors or numbers) as floats, sorted by name; NaN/inf become None."""
    out: dict[str, Any] = {}
    for name in sorted(metrics):
        value = metrics[name]
        value = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
        if isinstance(value, (int, float)):
            out[name] = float(value) if math.isfinite(value) else None
    return out


def write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path
