"""Run outputs: the one ``metrics.json`` schema of every tool, written atomically."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig

from dlforge.errors import DlforgeError


def plain_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Logged metric values (tensors or numbers) as floats, sorted by name; NaN/inf become None."""
    out: dict[str, Any] = {}
    for name in sorted(metrics):
        value = metrics[name]
        value = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
        if isinstance(value, (int, float)):
            out[name] = float(value) if math.isfinite(value) else None
    return out


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers pick the same format) to write to:
    renamed to ``path`` when the block completes, removed when it fails, so no reader ever sees half a
    file. An unwritable place is a one-line :class:`DlforgeError`."""
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DlforgeError(f"cannot write {path}: {err.strerror or err}; choose a writable place") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write JSON atomically (see :func:`atomic_write`)."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def run_record(
    tool: str,
    metrics: Mapping[str, Any],
    wall_time_s: float | None = None,
    status: str = "ok",
    error: str | None = None,
    choices: Mapping[str, Any] | None = None,
    overrides: Sequence[str] | None = None,
    **facts: Any,
) -> dict[str, Any]:
    """The one schema of every ``metrics.json`` (train, evaluate, crossval, a failed sweep job).

    Always: ``tool``, ``status`` (ok | failed | pruned: a search's pruner stopped the run), ``error``,
    the config choices ``experiment``, ``model``
    and ``data`` (None where the tool has no such group), the command-line ``overrides``, ``metrics``
    (logged name -> float or None) and ``wall_time_s``; then the tool's own ``facts`` (``kind``,
    ``epochs``, checkpoints, per-fold values, ...). ``choices`` and ``overrides``: the config's group
    choices and the command line's overrides, as the caller has them; when neither is given (a tool's
    entry point), they are read from Hydra's run.
    """
    if choices is None and overrides is None:
        hydra = HydraConfig.get() if HydraConfig.initialized() else None
        choices = dict(hydra.runtime.choices) if hydra else {}
        overrides = list(hydra.overrides.task) if hydra else []
    choices = choices or {}
    return {
        "tool": tool,
        "status": status,
        "error": error,
        "experiment": choices.get("experiment"),
        "model": choices.get("model"),
        "data": choices.get("data"),
        "overrides": list(overrides or []),
        "metrics": plain_metrics(metrics),
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 3),
        **facts,
    }


# --- reading run dirs back (report, dream's study) ----------------------------------------
Run = dict[str, Any]


def load_runs(folder: Path) -> list[Run]:
    """Every ``metrics.json`` below ``folder``, with its run dir, in a stable order."""
    if not folder.is_dir():
        raise DlforgeError(f"no folder {folder}; pass a sweep dir such as outputs/train_multirun/<date_time>")
    runs = []
    for path in sorted(folder.rglob("metrics.json"), key=_natural_key):
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not is_run_record(run):  # a list, a text, metrics not a mapping: not a run of ours
            continue
        runs.append({**run, "dir": str(path.parent.relative_to(folder)) or "."})
    if not runs:
        raise DlforgeError(f"no metrics.json under {folder}: is it a run or multirun dir of train.py?")
    return runs


def is_run_record(run: Any) -> bool:
    """Whether ``run`` has the shape :func:`run_record` writes: a mapping, its ``metrics`` a mapping
    and its ``overrides`` a list of texts (either may be missing)."""
    overrides = run.get("overrides", []) if isinstance(run, dict) else None
    return (
        isinstance(run, dict)
        and isinstance(run.get("metrics", {}), dict)
        and isinstance(overrides, list)
        and all(isinstance(o, str) for o in overrides)
    )


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in path.parent.parts]


def swept_values(runs: list[Run]) -> tuple[list[str], list[dict[str, str]]]:
    """The override keys whose values differ between runs, and each run's values for them."""
    values = [dict(o.split("=", 1) for o in run.get("overrides", []) if "=" in o) for run in runs]
    keys = list(dict.fromkeys(k for v in values for k in v))
    swept = [k for k in keys if len({v.get(k) for v in values}) > 1] or keys
    return swept, [{k: v.get(k, "") for k in swept} for v in values]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
