"""The caption reader alone (issue 30): which way of reading the caption GRU's states generalizes to
word orders never seen in training.

StackGAN's caption encoder is trained on the caption's own properties (class, position, size), not by
the GAN (``model=stackgan``: the encoder, the reader head, ``caption_lr``, Adam with ``optimizer_d``'s
betas). This script trains just that part, as the model's training step does, for the same number of
steps as the docs' full run (16 epochs of 20,000 captions, batch 64), with no images and no GAN, and
scores each property's accuracy (argmax of the reader's logits) on both held-out test sets of
``captioned_mnist``: phrasings (templates never seen in training) and combinations. It compares the
readers of :data:`dlforge.nets.stackgan.READERS`, with and without word dropout, over seeds.

    DATA_DIR=../shared/data python -m benchmarks.caption_reader [--epochs 16] [--seeds 0 1 2] \
        [--readers last bigru_max ...] [--word-dropout 0 0.1]
    python -m benchmarks.caption_reader --table          # the docs' table from the JSON

Results: benchmarks/results/caption_reader.json (one thread; loadavg and seconds per run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import machine, table
from dlforge.data.captioned import TEST_SETS, CaptionedDataModule
from dlforge.models.stackgan import StackGAN, drop_words
from dlforge.nets.stackgan import READERS

RESULTS = Path(__file__).resolve().parent / "results" / "caption_reader.json"
BATCH = 64
EVAL = ("val", *TEST_SETS)


def captions(data_dir: str) -> tuple[dict[str, Any], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """``captioned_mnist``'s spec and each split's (token ids, properties), as the full run draws them."""
    module = CaptionedDataModule(data_dir=data_dir, download=False, properties=["class", "position", "size"])
    module.setup("fit")
    splits = {}
    for name, split in (("train", "train"), ("val", "val"), *((s, f"test_{s}") for s in TEST_SETS)):
        _, properties, tokens = module.splits[split].tensors
        splits[name] = (tokens.long(), properties.long())
    return module.spec, splits


@torch.no_grad()
def accuracy(model: StackGAN, tokens: torch.Tensor, properties: torch.Tensor) -> dict[str, float]:
    """Each property's accuracy (argmax of the reader's logits) and the caption loss."""
    logits = model.reader(model.embed(tokens))
    out = {"caption_loss": round(float(model.property_loss(logits, properties)), 4)}
    parts = logits.view(len(logits), model.items, -1).split(model.sizes, dim=2)
    for column, (name, part) in enumerate(zip(model.properties, parts, strict=True)):
        target = properties[:, :, column]
        known = target >= 0
        out[name] = round(float((part.argmax(dim=2) == target)[known].float().mean()), 4)
    return out


def run(
    spec: dict[str, Any],
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    reader: str,
    word_dropout: float,
    seed: int,
    epochs: int,
) -> dict[str, Any]:
    """Train the encoder and the reader head as ``model=stackgan``'s step does; score every split."""
    torch.manual_seed(seed)
    net = {"name": "stackgan", "features": 16, "reader": reader}
    adam = {"_target_": "torch.optim.Adam", "lr": 0.0002, "betas": [0.5, 0.999]}
    model = StackGAN(net=net, data=spec, optimizer_g=adam, optimizer_d=adam, word_dropout=word_dropout)
    params = [*model.encoder.parameters(), *model.reader.parameters()]
    optimizer = torch.optim.Adam(params, lr=model.hparams.caption_lr, betas=(0.5, 0.999))
    tokens, properties = splits["train"]
    generator = torch.Generator().manual_seed(seed)
    load = os.getloadavg()[0]
    start, steps = time.perf_counter(), 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(tokens), generator=generator)
        for batch in order.split(BATCH):
            read = model.reader(model.embed(drop_words(tokens[batch], word_dropout, generator)))
            loss = model.property_loss(read, properties[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
    seconds = time.perf_counter() - start
    model.eval()
    return {
        "reader": reader,
        "word_dropout": word_dropout,
        "seed": seed,
        "epochs": epochs,
        "steps": steps,
        "seconds": round(seconds, 1),
        "loadavg_before": round(load, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
        **{name: accuracy(model, *splits[name]) for name in EVAL},
    }


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (reader, word dropout): mean and min over seeds of each held-out accuracy."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["reader"], r["word_dropout"]), []).append(r)
    rows = []
    for (reader, rate), group in groups.items():
        row: dict[str, Any] = {"reader": reader, "word_dropout": rate, "seeds": len(group)}
        for name in TEST_SETS:
            for prop in ("class", "position", "size", "caption_loss"):
                values = [g[name][prop] for g in group]
                row[f"{name}_{prop}_mean"] = round(statistics.mean(values), 4)
                row[f"{name}_{prop}_min" if prop != "caption_loss" else f"{name}_{prop}_max"] = (
                    min(values) if prop != "caption_loss" else max(values)
                )
        row["seconds_mean"] = round(statistics.mean(g["seconds"] for g in group), 1)
        rows.append(row)
    return rows


def best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The reader that reads held-out phrasings best: the highest mean accuracy over their properties,
    then the lowest caption loss there (the generators see the reader's probabilities)."""
    props = ("class", "position", "size")
    return max(
        rows,
        key=lambda r: (
            round(sum(r[f"phrasings_{p}_mean"] for p in props) / len(props), 3),
            -r["phrasings_caption_loss_mean"],
        ),
    )


def print_table(payload: dict[str, Any]) -> None:
    header = ["reader", "word dropout", "seeds", "phrasings class %", "position %", "size %", "loss",
              "combinations class %", "position %", "size %", "s / run"]  # fmt: skip
    rows = []
    for r in payload["summary"]:
        rows.append([
            f"`{r['reader']}`", r["word_dropout"], r["seeds"],
            *(f"{100 * r[f'{s}_{p}_mean']:.1f} (min {100 * r[f'{s}_{p}_min']:.1f})" if p != "caption_loss"
              else f"{r[f'{s}_{p}_mean']:.3f}"
              for s, props in (("phrasings", ("class", "position", "size", "caption_loss")),
                               ("combinations", ("class", "position", "size"))) for p in props),
            r["seconds_mean"],
        ])  # fmt: skip
    print(table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    parser.add_argument("--word-dropout", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--table", action="store_true", help="print the docs' table from the JSON")
    args = parser.parse_args()
    if args.table:
        print_table(json.loads(RESULTS.read_text()))
        return
    torch.set_num_threads(1)
    spec, splits = captions(os.environ.get("DATA_DIR", "data"))
    runs = []
    for reader in args.readers:
        for rate in args.word_dropout:
            for seed in args.seeds:
                runs.append(run(spec, splits, reader, rate, seed, args.epochs))
                r = runs[-1]
                print(
                    f"{reader} dropout={rate} seed={seed}: phrasings {r['phrasings']} combinations "
                    f"{r['combinations']} ({r['seconds']} s)",
                    file=sys.stderr,
                    flush=True,
                )
    rows = summary(runs)
    payload = {
        "machine": machine(),
        "command": "python -m benchmarks.caption_reader " + " ".join(sys.argv[1:]),
        "setting": (
            f"captioned_mnist, 1 item, class/position/size; {len(splits['train'][0])} training captions, "
            f"batch {BATCH}, Adam (caption_lr 0.001, betas 0.5/0.999), one thread; "
            f"{len(splits['phrasings'][0])} captions per test set"
        ),
        "best": best(rows),
        "summary": rows,
        "runs": runs,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print_table(payload)


if __name__ == "__main__":
    main()
