"""k-fold cross-validation: ``python -m dlforge.crossval model=textcnn_kim data=mr data.folds=10``.

Trains and tests once per fold (fold k is the test split; :func:`dlforge.training.train` with the
run dir ``fold_<k>/``), then writes ``metrics.json`` with every metric's mean and standard
deviation over the folds and the per-fold values.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from dlforge.cli import hydra_entry, task_overrides
from dlforge.errors import DlforgeError
from dlforge.outputs import run_record, write_json
from dlforge.speed import keep_freed_memory
from dlforge.training import train

log = logging.getLogger("dlforge")


def aggregate(runs: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and (sample) standard deviation of every metric all folds report."""
    names = set.intersection(*(set(k for k, v in r["metrics"].items() if v is not None) for r in runs))
    values = {name: [r["metrics"][name] for r in runs] for name in sorted(names)}
    mean = {name: statistics.fmean(v) for name, v in values.items()}
    std = {name: statistics.stdev(v) if len(v) > 1 else 0.0 for name, v in values.items()}
    return mean, std


def crossval(
    cfg: DictConfig, overrides: Sequence[str] = (), choices: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Run every fold of ``cfg.data.folds`` and write the aggregate ``metrics.json`` (``overrides`` and
    ``choices``: the command line's and the config's, handed to :func:`~dlforge.training.train`)."""
    folds = int(cfg.data.get("folds") or 0)
    if folds < 2:
        raise DlforgeError("k-fold cross-validation needs data.folds >= 2 (e.g. data.folds=10)")
    out = Path(cfg.paths.output_dir)
    start = time.perf_counter()
    runs = []
    for fold in range(folds):
        fold_cfg = copy.deepcopy(cfg)
        with open_dict(fold_cfg):
            fold_cfg.data.fold = fold
            fold_cfg.paths.output_dir = str(out / f"fold_{fold}")
        log.info("fold %d of %d", fold + 1, folds)
        summary = train(fold_cfg, overrides=overrides, choices=choices)
        runs.append({"fold": fold, "run_dir": str(out / f"fold_{fold}"), **summary})
        log.info("fold %d: test/acc %s", fold, summary["metrics"].get("test/acc"))
    mean, std = aggregate(runs)
    result = run_record(
        "crossval",
        mean,
        time.perf_counter() - start,
        choices=choices or {},
        overrides=overrides,
        kind=runs[0].get("kind"),
        folds=folds,
        metrics_std=std,
        per_fold=[
            {k: r[k] for k in ("fold", "run_dir", "metrics", "epochs", "wall_time_s", "best_checkpoint")}
            for r in runs
        ],
    )
    write_json(out / "metrics.json", result)
    if "test/acc" in mean:
        log.info("%d-fold test/acc: %.4f +- %.4f", folds, mean["test/acc"], std["test/acc"])
    log.info("run dir: %s", out.resolve())
    return result


@hydra_entry("crossval")
def main(cfg: DictConfig) -> float | None:
    if cfg.get("keep_freed_memory"):  # the command's setting, as train.py's main applies it
        keep_freed_memory()
    choices = dict(HydraConfig.get().runtime.choices)
    return crossval(cfg, task_overrides(), choices)["metrics"].get(cfg.get("optimized_metric") or "")


if __name__ == "__main__":
    main()
