"""Pruning in a real search: the shipped text-CNN search on MR, with its median pruner and without.

    DATA_DIR=../shared/data python -m benchmarks.search_pruning [--trials 20] [--overrides ...]

Runs ``python train.py -m hparams_search=textcnn_mr_optuna`` (TPE, seed 1234, 4 epochs a trial) twice,
as a user would, both at once with one torch thread each (so that both see the same load from
whatever else runs): with the config's median pruner and with ``hydra.sweeper.pruner=null``. Both
samplers share the seed, so the first 8 (random) trials have the same parameters. Prints, and writes
to ``results/search_pruning.json``: trials by state, the pruned fraction, the epochs trained in all
(a load-independent measure of the work), the wall time, and the best validation accuracy found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks.common import table, write

REPO = Path(__file__).resolve().parents[1]
GLOVE = "data.glove.path=${paths.data_dir}/glove/glove.6B.50d.top50k.txt"


def start(name: str, trials: int, extra: list[str]) -> tuple[subprocess.Popen, Path, float]:
    """Start one search in a fresh sweep dir, as a user types it."""
    sweep = REPO / "outputs" / "benchmark_search" / name
    if (sweep / "optuna.db").exists():
        (sweep / "optuna.db").unlink()  # a fresh study, not a resumed one
    sweep.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "hparams_search=textcnn_mr_optuna",
        GLOVE,
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]
    log = open(sweep.parent / f"{name}.log", "w")  # noqa: SIM115 - the process writes it until it ends
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return process, sweep, time.perf_counter()


def finish(process: subprocess.Popen, sweep: Path, started: float) -> dict[str, Any]:
    """Wait for a search; its figures from the study and the clock."""
    if process.wait() != 0:
        raise SystemExit(f"the search failed; see {sweep.parent / (sweep.name + '.log')}")
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name="textcnn_mr", storage=f"sqlite:///{sweep / 'optuna.db'}")
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    runs = [json.loads((sweep / t.user_attrs["run_dir"] / "metrics.json").read_text()) for t in done]
    return {
        "command": " ".join(str(a) for a in process.args[1:]),  # type: ignore[union-attr]
        "trials": len(done),
        "complete": len(done) - len(pruned),
        "pruned": len(pruned),
        "pruned_fraction": round(len(pruned) / len(done), 3),
        "epochs_trained": sum(run["epochs"] for run in runs),  # the runs' own count, pruned or not
        "pruned_after_epochs": sorted(len(t.intermediate_values) for t in pruned),
        "trial_time_s": round(sum(run["wall_time_s"] for run in runs), 1),
        "wall_time_s": round(wall, 1),
        "best_val_acc": round(study.best_value, 4),
        "best_trial": study.best_trial.number,
        "best_params": study.best_params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--overrides", nargs="*", default=[], help="more overrides for both searches")
    args = parser.parse_args()
    # both at once, one torch thread each: they share whatever else loads the machine
    load = [os.getloadavg()[0]]
    running = {
        "median pruner": start("pruned", args.trials, ["threads=1", *args.overrides]),
        "no pruning": start("full", args.trials, ["threads=1", *args.overrides, "hydra.sweeper.pruner=null"]),
    }
    results = {name: finish(*search) for name, search in running.items()}
    load.append(os.getloadavg()[0])
    header = ["search", "trials", "pruned", "epochs trained", "wall time (min)", "best val/acc"]
    rows = [
        [
            name,
            r["trials"],
            f"{r['pruned']} ({r['pruned_fraction']:.0%})",
            r["epochs_trained"],
            r["wall_time_s"] / 60,
            f"{r['best_val_acc']:.4f}",
        ]
        for name, r in results.items()
    ]
    print(table(header, rows))
    pruned, full = results["median pruner"], results["no pruning"]
    ratios = {
        "wall_time": round(pruned["wall_time_s"] / full["wall_time_s"], 3),
        "epochs_trained": round(pruned["epochs_trained"] / full["epochs_trained"], 3),
    }
    wall, epochs = ratios["wall_time"], ratios["epochs_trained"]
    print(f"with pruning / without: wall time {wall:.2f}, epochs trained {epochs:.2f}")
    payload = {"searches": results, "ratios": ratios, "load_average_start_end": [round(x, 1) for x in load]}
    print(f"wrote {write('search_pruning', payload)}")


if __name__ == "__main__":
    main()
