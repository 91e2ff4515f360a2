"""scikit-learn baselines on the real data sets, each run as a user runs it, into the results folder.

    DATA_DIR=../shared/data python -m benchmarks.baselines [--data fashion_mnist mnist cifar10 mr]
        [--models random_forest decision_tree gradient_boosting logistic_regression] [--skip-done]
    python -m benchmarks.baselines --data     # only collect the finished runs into the JSON

Every (data set, baseline) pair is ``python train.py experiment=baselines_<data> model=<baseline>
[its overrides below] hydra.run.dir=outputs/results/baselines_<data>/<baseline>``, in a fresh
process; the table of every finished run there (test and validation accuracy, fit time, wall
time) goes to ``benchmarks/results/baselines.json``, and ``python -m dlforge.report outputs/results --results
docs/results.md`` puts the runs beside the networks. scikit-learn's OpenMP threads: one per run
(``OMP_NUM_THREADS``, default 1: on a loaded 2-core machine two OpenMP threads ran
gradient boosting 5x slower than one); random forests fit their trees on every core (``n_jobs``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import table, write

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "outputs" / "results"
DATA = ("fashion_mnist", "mnist", "cifar10", "mr")
MODELS = ("random_forest", "decision_tree", "gradient_boosting", "logistic_regression")
#: per (data, baseline) settings beyond the experiment's: gradient boosting on 784 or 3,072 raw
#: features takes 10 s an iteration here, so it sees the first 50 principal components instead
OVERRIDES: dict[tuple[str, str], list[str]] = {
    **{
        (d, "gradient_boosting"): ["model.features.pca=50", "model.net.max_iter=200"]
        for d in ("fashion_mnist", "mnist")
    },
    ("cifar10", "gradient_boosting"): ["model.net.max_iter=200"],
}


def run(data: str, model: str, out: Path) -> None:
    """One baseline as a user runs it, in a fresh process, into ``out``."""
    command = [
        sys.executable,
        str(REPO / "train.py"),
        f"experiment=baselines_{data}",
        f"model={model}",
        *OVERRIDES.get((data, model), []),
        "trainer=cpu",
        f"hydra.run.dir={out}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed:\n{done.stderr[-3000:]}")


def collect() -> list[dict[str, Any]]:
    """Every finished baseline run under ``outputs/results/baselines_*``, in table order."""
    rows = []
    for path in sorted(RESULTS.glob("baselines_*/*/metrics.json")):
        record = json.loads(path.read_text())
        metrics = record["metrics"]
        data, model = path.parent.parent.name.removeprefix("baselines_"), path.parent.name
        rows.append(
            {
                "data": data,
                "model": model,
                "command": " ".join(["python", "train.py", *record["overrides"]]),
                "test_acc": metrics["test/acc"],
                "val_acc": metrics["val/acc"],
                "train_acc": metrics["train/acc"],
                "fit_time_s": round(metrics["train/fit_time_s"], 1),
                "wall_time_s": record["wall_time_s"],
                "run_dir": str(path.parent.relative_to(REPO)),
            }
        )
    return sorted(rows, key=lambda r: (DATA.index(r["data"]), MODELS.index(r["model"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="*", default=list(DATA), choices=DATA)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--skip-done", action="store_true", help="keep runs that already have metrics.json")
    args = parser.parse_args()
    for data in args.data:
        for model in args.models:
            out = RESULTS / f"baselines_{data}" / model
            if not (args.skip_done and (out / "metrics.json").is_file()):
                run(data, model, out)
            rows = collect()
            write("baselines", {"omp_threads": os.environ.get("OMP_NUM_THREADS", "1"), "runs": rows})
    rows = collect()
    write("baselines", {"omp_threads": os.environ.get("OMP_NUM_THREADS", "1"), "runs": rows})
    header = ["data", "model", "test acc %", "val acc %", "fit s", "wall s"]
    cells = [
        [r["data"], r["model"], 100 * r["test_acc"], 100 * r["val_acc"], r["fit_time_s"], r["wall_time_s"]]
        for r in rows
    ]
    print(table(header, cells))


if __name__ == "__main__":
    main()
