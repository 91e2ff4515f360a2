"""Speed options against the default: training throughput of the Lightning path with each switch on.

    DATA_DIR=../shared/data python -m benchmarks.speed_options [--cases lenet] [--steps 50]

Each option is one config override a user can pass to ``train.py``: ``channels_last=true``,
``compile=true`` (torch.compile, inductor), ``trainer.precision=bf16-mixed``; on a GPU also
``16-mixed`` and a GPU-resident data set (``data.on_device=true``). Throughput is samples/s, the
median of timed windows after a warm-up window (compilation happens in the warm-up), alternating
the variants over ``--rounds`` to share the machine's drift.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.common import table, write
from benchmarks.overhead import CASES, compose_case, lightning_rates

OPTIONS = {
    "default (fp32)": [],
    "channels_last=true": ["channels_last=true"],
    "compile=true": ["compile=true"],
    "trainer.precision=bf16-mixed": ["trainer.precision=bf16-mixed"],
}
GPU_OPTIONS = {
    "trainer.precision=16-mixed": ["trainer.precision=16-mixed"],
    "data.on_device=true": ["data.on_device=true"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=["lenet"], choices=list(CASES))
    parser.add_argument("--steps", type=int, default=50, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    options = OPTIONS | (GPU_OPTIONS if torch.cuda.is_available() else {})
    rows, results = [], []
    for case in args.cases:
        rates: dict[str, list[float]] = {name: [] for name in options}
        for _ in range(args.rounds):
            for name, overrides in options.items():
                cfg = compose_case([*CASES[case], *overrides])
                rates[name] += lightning_rates(cfg, args.windows, args.steps, default_callbacks=False)
        base = statistics.median(rates["default (fp32)"])
        for name, values in rates.items():
            median = statistics.median(values)
            rows.append([case, name, median, f"{median / base:.2f}x"])
        results.append({"case": case, "samples_per_s": rates})
        print(rows[-len(options) :], flush=True)
    print(table(["case", "option", "samples/s", "vs default"], rows))
    print("wrote", write("speed_options", {"results": results, "steps_per_window": args.steps}))


if __name__ == "__main__":
    main()
