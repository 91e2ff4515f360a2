"""What packing costs the text RNNs: a training step (forward + backward) on a batch without padding,
which ``TextRNN`` runs unpacked, against the same batch with one text a token shorter, which it packs.

    python -m benchmarks.rnn_packing [--length 200] [--batch 64] [--hidden 64] [--threads 1] [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch

from benchmarks.common import table, windows, write
from dlforge.nets.text import TextRNN


def training_step(net: TextRNN, x: torch.Tensor, lengths: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        net.zero_grad()
        net(x, lengths).sum().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9, help="timed windows of 3 steps (the median counts)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, args.length, 16)
    full = torch.full((args.batch,), args.length)
    one_short = full.clone()
    one_short[0] -= 1
    results, rows = [], []
    for cell in ("rnn", "lstm", "gru"):
        net = TextRNN(16, args.length, 4, cell=cell, hidden_size=args.hidden)
        ms = {}
        for name, lengths in (("unpacked", full), ("packed", one_short)):
            ms[name] = statistics.median(windows(training_step(net, x, lengths), 3, args.repeats)) / 3 * 1000
        results.append({"cell": cell, "ms_per_step": ms, "speed-up": ms["packed"] / ms["unpacked"]})
        rows.append([cell, ms["packed"], ms["unpacked"], f"{ms['packed'] / ms['unpacked']:.1f}x"])
        print(rows[-1], flush=True)
    print(table(["cell", "packed ms/step", "unpacked ms/step", "speed-up"], rows))
    print("wrote", write("rnn_packing", {"settings": vars(args), "results": results}))


if __name__ == "__main__":
    main()
