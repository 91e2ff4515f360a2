"""English -> pig latin on the real corpus: each seq2seq model trained as a user runs it, then tested
greedily and with beam search, exported to TorchScript and checked against PyTorch on the whole test
set, and asked to translate "Hello, world!"; its accuracy by word length on unseen words (real ones,
and made-up ones up to data.max_word_len letters), on words with a run of one letter.

    DATA_DIR=../shared/data python -m benchmarks.seq2seq [--models monotonic location gru transformer]
        [--threads 1] [--beam 4 (0: none)] [--overrides data.text_share=0 ...] [--name seq2seq] [--out DIR]
    python -m benchmarks.seq2seq --table [--name seq2seq]     # the docs' tables from the JSON
    python -m benchmarks.seq2seq --figure [--name seq2seq]    # docs/img/seq2seq_accuracy_by_length.png

Runs of models not named in ``--models`` are kept from the JSON already there (marked ``kept``).

Every command runs in a subprocess exactly as typed (``python train.py experiment=...``), timed by
the wall clock and by the CPU time it used; the machine's load average is recorded beside each
figure, since the machine is shared and other jobs slow the wall clock down.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks.common import table, write
from dlforge.checkpoint import load_model
from dlforge.data.piglatin import UNSEEN, PigLatinDataModule, decode_tokens, word_lengths
from dlforge.models import Seq2Seq

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    "monotonic": "piglatin_monotonic",
    "location": "piglatin_location",
    "gru": "piglatin_gru",
    "transformer": "piglatin_transformer",
}
KEYS = (
    "test/word_acc", "test/sentence_acc", "test/cer", "test/word_acc_longer", "test/word_acc_synthetic",
    "test/word_acc_repeated",
)  # fmt: skip
LABELS = {
    "monotonic": "GRU + monotonic attention",
    "location": "GRU + location-aware attention",
    "gru": "GRU + Luong attention",
    "transformer": "Transformer",
}
RESULTS = REPO / "benchmarks" / "results"
FIGURE = REPO / "docs" / "img" / "seq2seq_accuracy_by_length.png"


def timed(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, dict[str, float]]:
    """Run ``python <args>`` from ``cwd``; its wall time, CPU time and the load average around it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result, {"wall_s": wall, "cpu_s": cpu, "load_before": load, "load_after": os.getloadavg()[0]}


def run_data(run_dir: Path) -> PigLatinDataModule:
    """The data module of a run (its splits come from the cache the run wrote)."""
    data = instantiate(OmegaConf.load(run_dir / "config.yaml").data)
    data.setup()
    return data


def beam_test(ckpt: str, run_dir: Path, beam: int) -> dict[str, Any]:
    """The checkpoint's test metrics with beam search of width ``beam`` (same data, same split)."""
    model = load_model(ckpt, want=Seq2Seq)
    model.hparams.beam = beam
    data = run_data(run_dir)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    start = time.perf_counter()
    metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    return {
        "beam": beam,
        "seconds": time.perf_counter() - start,
        **{k: metrics[k] for k in KEYS if k in metrics},
    }


def same_output_as_training(ckpt: str, run_dir: Path) -> dict[str, Any]:
    """Greedy exact-match accuracy on the unseen test words (``test/word_acc``'s set), with and without
    those whose pig latin is also a training word's ("ash" and "wash" both give "ashway"): a model
    could get those right by writing an output it was trained on."""
    model = load_model(ckpt, want=Seq2Seq).eval()
    data = run_data(run_dir)
    trained = {w.lower() for w in decode_tokens(data.splits["train"].tensors[1])}
    src, tgt, sentence = data.splits["test"].tensors
    rows = (sentence == UNSEEN) & (word_lengths(src) <= data.max_train_len)
    src, tgt = Seq2Seq.trimmed(src[rows], tgt[rows])
    with torch.no_grad():
        correct = torch.cat(
            [
                (model.decode(s)[0] == t).all(dim=1)
                for s, t in zip(src.split(512), tgt.split(512), strict=True)
            ]
        )
    shared = torch.tensor([w.lower() in trained for w in decode_tokens(tgt)])
    return {
        "test_words": len(correct),
        "sharing_a_training_output": int(shared.sum()),
        "word_acc": correct.float().mean().item(),
        "word_acc_without_them": correct[~shared].float().mean().item(),
        "word_acc_on_them": correct[shared].float().mean().item() if shared.any() else None,
    }


def by_length(run_dir: Path) -> dict[str, dict[str, float]]:
    """Letters -> unseen test words of that length and the share right (the run's CSV)."""
    with open(run_dir / "accuracy_by_length.csv") as f:
        rows = list(csv.DictReader(f))
    return {
        f"{int(r['letters']):02d}": {"words": int(r["words"]), "accuracy": float(r["accuracy"])} for r in rows
    }


def ranges(curve: dict[str, dict[str, float]], bounds: list[tuple[int, int]]) -> dict[str, float | None]:
    """Exact-match accuracy over the words of each range of lengths (``"15-28"``), weighted by words."""
    out: dict[str, float | None] = {}
    for low, high in bounds:
        rows = [v for k, v in curve.items() if low <= int(k) <= high]
        words = sum(r["words"] for r in rows)
        out[f"{low}-{high}"] = sum(r["words"] * r["accuracy"] for r in rows) / words if words else None
    return out


def run(name: str, threads: int, beam: int, overrides: list[str], work: Path) -> dict[str, Any]:
    run_dir = work / name
    command = ["train.py", f"experiment={EXPERIMENTS[name]}", f"threads={threads}", *overrides]
    _, train_time = timed([str(REPO / command[0]), *command[1:], f"hydra.run.dir={run_dir}"], work)
    summary = json.loads((run_dir / "metrics.json").read_text())
    metrics = summary["metrics"]
    ckpt = summary["best_checkpoint"]
    greedy = {k: metrics.get(k) for k in KEYS}
    beamed = beam_test(ckpt, run_dir, beam) if beam > 1 else None
    output = run_dir / "piglatin.pt"
    export, export_time = timed(
        ["-m", "dlforge.export", f"ckpt_path={ckpt}", "format=torchscript", f"output={output}",
         f"hydra.run.dir={work / 'export'}", "check.samples=100000", "check.require_data=true"],
        work,
    )  # fmt: skip
    card = json.loads(output.with_suffix(".json").read_text())
    hello, _ = timed(["-m", "dlforge.predict", f"model_path={output}", "text=Hello, world!"], work)
    data = run_data(run_dir)
    curve = by_length(run_dir)
    longest = data.max_train_len
    return {
        "model": name,
        "command": "python " + " ".join(command),
        "data": {**data.counts, "test_sentence_words": int((data.splits["test"].tensors[2] >= 0).sum())},
        "parameters": sum(p.numel() for p in load_model(ckpt).parameters()),
        "epochs": summary["epochs"],
        "steps": summary["global_step"],
        "train_command": train_time,
        "fit_and_test_s": summary["wall_time_s"],
        "greedy": greedy,
        "same_output_as_training": same_output_as_training(ckpt, run_dir),
        "beam_search": beamed,
        "max_train_len": longest,
        "by_length": curve,
        "by_length_ranges": ranges(curve, [(1, longest), (longest + 1, 28), (29, data.max_word_len)]),
        "val_word_acc_best": metrics.get("val/word_acc_best"),
        "export": {**export_time, "check": card["check"], "printed": export.stdout.strip().splitlines()[-1]},
        "hello_world": hello.stdout.strip().splitlines()[-1],
    }


def accuracy(entry: float | dict[str, float]) -> float:
    """A by-length entry's accuracy (an earlier run wrote the accuracy alone)."""
    return entry["accuracy"] if isinstance(entry, dict) else entry


def curves(document: dict[str, Any]) -> dict[str, dict[int, float]]:
    return {r["model"]: {int(k): accuracy(v) for k, v in r["by_length"].items()} for r in document["runs"]}


def markdown(document: dict[str, Any]) -> str:
    """The by-length table (percent) and the range and repeated-letter figures of each run."""
    lines = curves(document)
    lengths = sorted({n for curve in lines.values() for n in curve})
    counts = next((r["by_length"] for r in document["runs"] if "by_length_ranges" in r), {})
    words = {int(k): v["words"] for k, v in counts.items()}
    rows = [
        [n, words.get(n, ""), *(f"{100 * curve[n]:.1f}" if n in curve else "" for curve in lines.values())]
        for n in lengths
    ]
    parts = [table(["letters", "words", *lines], rows)]
    spans = next((list(r["by_length_ranges"]) for r in document["runs"] if "by_length_ranges" in r), [])
    summary = []
    for r in document["runs"]:
        measured = r.get("by_length_ranges", {})
        repeated = r["greedy"].get("test/word_acc_repeated")
        summary.append([
            r["model"], *(f"{100 * measured[s]:.2f}" if measured.get(s) is not None else "" for s in spans),
            f"{100 * repeated:.2f}" if repeated is not None else "",
        ])  # fmt: skip
    parts.append(table(["model", *(f"{s} letters" for s in spans), "repeated letters"], summary))
    return "\n\n".join(parts)


def figure(document: dict[str, Any], path: Path) -> Path:
    """Accuracy by word length, one line a model, the longest training word marked."""
    from matplotlib.figure import Figure

    from dlforge.viz import save_figure

    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    for model, curve in curves(document).items():
        lengths = sorted(curve)
        ax.plot(lengths, [curve[n] for n in lengths], marker="o", markersize=3, label=LABELS[model])
    longest = next((r["max_train_len"] for r in document["runs"] if "max_train_len" in r), 14)
    ax.axvline(longest + 0.5, color="grey", linestyle="--", label=f"longest training word ({longest})")
    ax.set(xlabel="letters", ylabel="exact-match accuracy", ylim=(0, 1.02), title="unseen test words")
    ax.legend(loc="lower left", fontsize=8)
    save_figure(fig, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    parser.add_argument("--table", action="store_true", help="print the docs' tables from the JSON")
    parser.add_argument("--figure", action="store_true", help=f"draw {FIGURE.name} from the JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--overrides", nargs="*", default=[])
    parser.add_argument("--name", default="seq2seq", help="results/<name>.json")
    parser.add_argument("--out", help="where the runs go (default: a new temporary folder, kept)")
    parser.add_argument(
        "--same-output", nargs=2, metavar=("MODEL", "RUN_DIR"),
        help="add the accuracy without test words whose output a training word shares to MODEL's entry "
        "of the JSON, from its run dir (no training)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.same_output:
        name, run_dir = args.same_output[0], Path(args.same_output[1])
        path = RESULTS / f"{args.name}.json"
        document = json.loads(path.read_text())
        [entry] = [r for r in document["runs"] if r["model"] == name]
        summary = json.loads((run_dir / "metrics.json").read_text())
        if summary["metrics"]["test/word_acc"] != entry["greedy"]["test/word_acc"]:
            raise SystemExit(f"{run_dir} is not the run of {name} in {path.name}: its test/word_acc differs")
        entry["same_output_as_training"] = same_output_as_training(summary["best_checkpoint"], run_dir)
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(json.dumps(entry["same_output_as_training"], indent=2))
        return
    if args.table or args.figure:
        document = json.loads((RESULTS / f"{args.name}.json").read_text())
        print(markdown(document) if args.table else f"figure in {figure(document, FIGURE)}")
        return
    results = []
    work = Path(args.out or tempfile.mkdtemp(prefix="seq2seq_benchmark_"))
    work.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        results.append(run(name, args.threads, args.beam, args.overrides, work))
        print(json.dumps(results[-1], indent=2), flush=True)
    print(f"runs (checkpoints, pictures, exports) in {work}")
    rows = [
        [
            r["model"], r["parameters"], r["steps"], f"{r['train_command']['wall_s']:.0f}",
            f"{r['train_command']['cpu_s']:.0f}", f"{r['train_command']['load_before']:.1f}",
            f"{r['greedy']['test/word_acc']:.4f}",
            f"{r['beam_search']['test/word_acc']:.4f}" if r["beam_search"] else "",
            f"{r['greedy']['test/sentence_acc']:.4f}", f"{r['greedy']['test/cer']:.4f}",
            f"{r['greedy']['test/word_acc_longer']:.4f}", r["hello_world"],
        ]
        for r in results
    ]  # fmt: skip
    header = ["model", "params", "steps", "train.py wall s", "CPU s", "load", "word acc", f"beam {args.beam}"]
    print(table([*header, "sentence acc", "CER", "longer words", "Hello, world!"], rows))
    previous = RESULTS / f"{args.name}.json"
    if previous.is_file():
        measured = {r["model"] for r in results}
        kept = [r for r in json.loads(previous.read_text())["runs"] if r["model"] not in measured]
        results += [{**r, "kept": r.get("kept", "from an earlier run of this benchmark")} for r in kept]
        results.sort(key=lambda r: list(EXPERIMENTS).index(r["model"]))
    path = write(args.name, {"threads": args.threads, "overrides": args.overrides, "runs": results})
    print(f"results in {path}")


if __name__ == "__main__":
    main()
