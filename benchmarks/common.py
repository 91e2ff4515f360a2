"""Shared timing helpers for the benchmark scripts (median of repeated timed windows after warm-up)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch


def machine() -> dict[str, Any]:
    """What the figures were measured on (Lightning's version from its metadata: no import)."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": importlib.metadata.version("pytorch-lightning"),
    }


def windows(step: Callable[[], Any], per_window: int, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds for each of ``repeats`` windows of ``per_window`` calls, after ``warmup`` windows."""
    times = []
    for i in range(warmup + repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(per_window):
            step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def cycle(make_iter: Callable[[], Iterator[Any]]) -> Callable[[], Any]:
    """A step function that pulls the next item, restarting the iterator when it runs out."""
    state = {"it": make_iter()}

    def step() -> Any:
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = make_iter()
            return next(state["it"])

    return step


def rate(times: list[float], items_per_window: int) -> dict[str, float]:
    per_second = [items_per_window / t for t in times]
    return {"median": statistics.median(per_second), "min": min(per_second), "max": max(per_second)}


def write(name: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` (``<name>_gpu.json`` when a GPU is present) with the machine."""
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}{'_gpu' if torch.cuda.is_available() else ''}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
