"""Seed 001's vanishing gradients: a plain RNN, an LSTM and a GRU on the first-token task.

    python -m benchmarks.vanishing_gradients [--cells rnn lstm gru] [--lengths 10 25 50 100 200]
        [--seeds 42 43 44] [--pytorch-init-lengths 50] [--plot-only]

Every run is ``python train.py experiment=seed001_vanishing_gradients model=<cell> data.length=<L>
seed=<seed>`` (the same config and code path, ``dlforge.training.train``) in a temporary run dir: its
test accuracy, epochs and wall time. Then the gradient norm reaching each time step t, the l2 norm
of d loss / d x_t (``TextClassifier.input_gradient_norms``, in float64: a plain RNN's falls below
float32's smallest number) averaged over the 1000 test sequences, for the network at initialization
(built with the run's seed, as ``train`` builds it) and for the trained one (its best checkpoint).
``--pytorch-init-lengths`` adds LSTM and GRU runs with PyTorch's initialization instead of the
experiment's chrono initialization (``model.net.chrono_init=null``).

Writes ``results/vanishing_gradients.json`` and ``docs/img/vanishing_gradients.png`` (from the
JSON: ``--plot-only`` redraws it without training).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from matplotlib.figure import Figure

from benchmarks.common import table, write
from dlforge import CONF_DIR
from dlforge.checkpoint import load_model
from dlforge.cli import quiet_library_chatter
from dlforge.models import TextClassifier
from dlforge.speed import keep_freed_memory
from dlforge.training import build_run, train
from dlforge.viz import save_figure

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "vanishing_gradients.json"
FIGURE = REPO / "docs" / "img" / "vanishing_gradients.png"
COLORS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}
MARKERS = {"rnn": "o", "lstm": "s", "gru": "^"}


def config(cell: str, length: int, seed: int, extra: list[str], out: str) -> Any:
    overrides = [
        "experiment=seed001_vanishing_gradients",
        f"model={cell}",
        f"data.length={length}",
        f"seed={seed}",
        *extra,
        "~callbacks.progress_bar",
        "+trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    cfg.paths.output_dir = out
    return cfg


def gradient_norms(model: TextClassifier, tokens: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """The mean gradient norm at every time step, in float64, to 4 significant digits."""
    norms = model.double().eval().input_gradient_norms(tokens, labels)
    return [float(f"{v:.4g}") for v in norms.tolist()]


def run(cell: str, length: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """Train one configuration; its accuracy and the gradient norms at every time step."""
    with tempfile.TemporaryDirectory(prefix="vanishing_") as out:
        cfg = config(cell, length, seed, extra, out)
        torch.set_num_threads(cfg.threads)
        pl.seed_everything(cfg.seed, verbose=False)  # as train() does: the same initial network
        datamodule, initial, _ = build_run(cfg)
        tokens, labels = datamodule.splits["test"].tensors
        at_init = gradient_norms(initial, tokens, labels)
        summary = train(cfg)
        after = gradient_norms(load_model(summary["best_checkpoint"], want=TextClassifier), tokens, labels)
    metrics = summary["metrics"]
    return {
        "cell": cell,
        "length": length,
        "seed": seed,
        "overrides": extra,
        "test_acc": metrics["test/acc"],
        "val_acc_best": metrics["val/acc_best"],
        "epochs": summary["epochs"],
        "wall_time_s": round(summary["wall_time_s"], 1),
        "grad_norm_init": at_init,
        "grad_norm_trained": after,
    }


def label(r: dict[str, Any]) -> str:
    return r["cell"] + (" (PyTorch init)" if r["overrides"] else "")


def groups(results: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """The runs of every (model, length), in the order run."""
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        grouped.setdefault((label(r), r["length"]), []).append(r)
    return grouped


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against length (mean over seeds, and each seed); gradient norm against time step at
    the longest length for the first seed, at initialization and trained."""
    fig = Figure(figsize=(15, 4.3))
    axes = fig.subplots(1, 3)
    lengths = sorted({r["length"] for r in results})
    ax = axes[0]
    grouped = groups(results)
    for name in dict.fromkeys(name for name, _ in grouped):
        runs = [(n, grouped[name, n]) for n in lengths if (name, n) in grouped]
        cell, default_init = runs[0][1][0]["cell"], bool(runs[0][1][0]["overrides"])
        means = [statistics.mean(r["test_acc"] for r in rs) for _, rs in runs]
        ax.plot(
            [n for n, _ in runs], means, ":" if default_init else "--" if cell == "gru" else "-",
            marker="x" if default_init else MARKERS[cell], ms=7, color=COLORS[cell], label=f"{name}, mean",
        )  # fmt: skip
        ax.scatter(
            [n for n, rs in runs for _ in rs], [r["test_acc"] for _, rs in runs for r in rs],
            s=10, color=COLORS[cell], alpha=0.4,
        )  # fmt: skip
    ax.axhline(0.25, color="grey", lw=0.8, ls="--", label="chance")
    ax.set(xscale="log", xlabel="sequence length", ylabel="test accuracy", ylim=(0, 1.05))
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.set_title("class = first token, then noise: test accuracy")
    ax.legend(fontsize=8)
    longest, first_seed = max(lengths), results[0]["seed"]
    for ax, key, when in (
        (axes[1], "grad_norm_init", "at initialization"),
        (axes[2], "grad_norm_trained", "trained"),
    ):
        for r in results:
            if r["length"] == longest and r["seed"] == first_seed and not r["overrides"]:
                ax.plot(range(longest), r[key], color=COLORS[r["cell"]], label=r["cell"])
        ax.set(yscale="log", xlabel="time step t", ylabel="mean ||d loss / d x_t||")
        ax.set_title(f"gradient reaching step t (length {longest}, seed {first_seed}, {when})", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def summary_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for (name, length), runs in groups(results).items():
        accs = [r["test_acc"] for r in runs]
        first = runs[0]
        init, after = first["grad_norm_init"], first["grad_norm_trained"]
        ratios = f"{init[0] / init[-1]:.2g}", f"{after[0] / after[-1]:.2g}"
        per_seed = " ".join(f"{a:.3f}" for a in accs)
        epochs = " ".join(str(r["epochs"]) for r in runs)
        rows.append([name, length, f"{statistics.mean(accs):.3f}", per_seed, epochs, *ratios])
    return rows


HEADER = ["model", "length", "mean test acc", "per seed", "epochs", "grad t=0 / t=L-1 at init", "trained"]


def main() -> None:
    keep_freed_memory()  # as train.py's main does by default: timings comparable with earlier runs
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], choices=list(COLORS))
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--pytorch-init-lengths", type=int, nargs="*", default=[50])
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure and table from the JSON")
    args = parser.parse_args()
    quiet_library_chatter()
    if args.plot_only:
        results = json.loads(RESULTS.read_text())["results"]
    else:
        plans = [(cell, n, []) for cell in args.cells for n in args.lengths]
        plans += [
            (cell, n, ["model.net.chrono_init=null"])
            for cell in ("lstm", "gru")
            for n in args.pytorch_init_lengths
        ]
        start, results = time.perf_counter(), []
        for cell, length, extra in plans:
            for seed in args.seeds:
                results.append(run(cell, length, seed, extra))
                r = results[-1]
                print(
                    label(r),
                    length,
                    seed,
                    f"test acc {r['test_acc']:.3f}",
                    f"{r['wall_time_s']:.0f} s",
                    flush=True,
                )
        total = round(time.perf_counter() - start)
        command = "python -m benchmarks.vanishing_gradients"
        print(
            "wrote",
            write("vanishing_gradients", {"command": command, "total_wall_s": total, "results": results}),
        )
    print(table(HEADER, summary_rows(results)))
    plot(results, FIGURE)
    print("wrote", FIGURE)


if __name__ == "__main__":
    main()
