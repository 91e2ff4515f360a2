"""Speed options against the default: training throughput of the Lightning path with each switch on.

    DATA_DIR=../shared/data python -m benchmarks.speed_options [--cases lenet textcnn] [--steps 40]

Each option is one config override a user can pass to ``train.py``: ``keep_freed_memory=false``
(glibc's own malloc behaviour), ``channels_last=true``, ``compile=true`` (torch.compile,
inductor), ``trainer.precision=bf16-mixed``; on a GPU also ``16-mixed``, a GPU-resident data set
(``data.on_device=true``), pinned host memory (``data.pin_memory=true``) and bf16 with the
resident set. Every measurement runs in a fresh process (some settings are process-wide), the
variants alternate over ``--rounds`` to share the machine's drift, and throughput is samples/s,
the median of timed windows after a warm-up window (compilation happens in the warm-up). A
variant that fails is reported as failed, with its error, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch

from benchmarks.common import table, write
from benchmarks.overhead import CASES, compose_case, interleaved_windows
from dlforge.speed import keep_freed_memory

OPTIONS = {
    "default (fp32)": [],
    "keep_freed_memory=false": ["keep_freed_memory=false"],
    "channels_last=true": ["channels_last=true"],
    "compile=true": ["compile=true"],
    "trainer.precision=bf16-mixed": ["trainer.precision=bf16-mixed"],
}
GPU_OPTIONS = {
    "trainer.precision=16-mixed": ["trainer.precision=16-mixed"],
    "data.on_device=true": ["data.on_device=true"],
    "data.pin_memory=true": ["data.pin_memory=true"],
    "bf16-mixed + data.on_device=true": ["trainer.precision=bf16-mixed", "data.on_device=true"],
}


def measure(case: str, overrides: list[str], windows: int, steps: int) -> list[float]:
    """Samples/s of each timed window of the lean Lightning path (run in this process)."""
    cfg = compose_case([*CASES[case], *overrides])
    if cfg.keep_freed_memory:
        keep_freed_memory()
    seconds, _, batch = interleaved_windows(cfg, windows, steps, default_callbacks=False, plain=False)
    return [steps * batch / s for s in seconds]


def measure_in_subprocess(case: str, overrides: list[str], windows: int, steps: int) -> list[float]:
    """The rates of :func:`measure` in a fresh process; none (and the error printed) if it fails."""
    command = [sys.executable, "-m", "benchmarks.speed_options", "--measure", case, *overrides]
    command += ["--windows", str(windows), "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{case} {' '.join(overrides) or 'default'} failed: {last}", file=sys.stderr, flush=True)
        return []
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=["lenet", "textcnn"], choices=list(CASES))
    parser.add_argument("--steps", type=int, default=40, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--options", nargs="+", help="measure only these options (names as in the table)")
    parser.add_argument("--measure", nargs="+", metavar="CASE_AND_OVERRIDES", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # one measurement, in a fresh process: print its rates as JSON
        print(json.dumps(measure(args.measure[0], args.measure[1:], args.windows, args.steps)))
        return
    options = OPTIONS | (GPU_OPTIONS if torch.cuda.is_available() else {})
    if args.options:
        unknown = set(args.options) - set(options)
        if unknown:
            parser.error(f"unknown option(s) {sorted(unknown)}; choose from {list(options)}")
        options = {name: options[name] for name in options if name in {*args.options, "default (fp32)"}}
    rows, results = [], []
    for case in args.cases:
        rates: dict[str, list[float]] = {name: [] for name in options}
        for _ in range(args.rounds):
            for name, overrides in options.items():
                rates[name] += measure_in_subprocess(case, overrides, args.windows, args.steps)
        base = statistics.median(rates["default (fp32)"])
        for name, values in rates.items():
            median = statistics.median(values) if values else float("nan")
            rows.append([case, name, median, f"{median / base:.2f}x" if values else "failed"])
        results.append({"case": case, "samples_per_s": rates})
        print(rows[-len(options) :], flush=True)
    print(table(["case", "option", "samples/s", "vs default"], rows))
    print("wrote", write("speed_options", {"results": results, "steps_per_window": args.steps}))


if __name__ == "__main__":
    main()
