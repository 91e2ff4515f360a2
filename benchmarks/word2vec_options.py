"""Word2vec's speed options: gradients (closed form vs autograd), optimizer, threads; and batch size.

    DATA_DIR=../shared/data python -m benchmarks.word2vec_options [--windows 5] [--batch-sizes 1024 2048 4096]

Part 1 (a minute): milliseconds per training step on real batches of ``data=text_corpus``
(1024 centre words), for skip-gram and CBOW: the closed-form sparse gradients
(``set_gradients``) or autograd through sparse embeddings, applied by SGD, SparseAdam or Adagrad,
or plain SGD's update added to the tables in place (``sgd_step``, what training does with SGD),
at 1 and 2 torch threads. Each case runs ``--steps`` steps per timed window after a warm-up
window; the cases are interleaved window by window (the machine is shared), in a rotated order,
each window on new batches (rows not yet in the cache, as in training), and the median kept.

Part 2 (``--batch-sizes``; minutes each): skip-gram trained 5 epochs as ``train.py`` does, one
update per batch (``model.update_size=null``), at each batch size with word2vec's SGD (lr 0.025 ->
0.0001), and its benchmark scores: summing a batch's updates of a frequent word into one step stops
working when batches grow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from benchmarks.common import table, write
from benchmarks.word2vec import BENCHMARKS, config, scores
from dlforge.build import lightning_advice_ignored
from dlforge.data.word2vec_corpus import TextCorpusDataModule
from dlforge.data.word_benchmarks import read_benchmarks
from dlforge.nets.word2vec import CBOW, SkipGram, Word2VecNet
from dlforge.training import build_run
from dlforge.word_vectors import from_model

DATA_DIR = Path(os.environ.get("DATA_DIR", "data"))
OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "SGD": lambda p: torch.optim.SGD(p, lr=0.025),
    "SparseAdam": lambda p: torch.optim.SparseAdam(list(p), lr=0.001),
    "Adagrad": lambda p: torch.optim.Adagrad(p, lr=0.05),
}


def step_function(net: Word2VecNet, optimizer: str, closed_form: bool) -> Callable:
    if optimizer == "SGD in place":
        return lambda batch: net.sgd_step(*batch, lr=0.025)
    updates = OPTIMIZERS[optimizer](net.parameters())

    def step(batch: tuple[torch.Tensor, ...]) -> None:
        if closed_form:
            net.set_gradients(*batch)
        else:
            loss, _ = net(*batch)
            loss.backward()
        updates.step()
        updates.zero_grad(set_to_none=True)

    return step


def step_costs(batches: list[tuple[torch.Tensor, ...]], vocab: int, windows: int) -> list[dict[str, Any]]:
    cases = []
    for net_class in (SkipGram, CBOW):
        variants = [("closed form", "SGD in place"), ("closed form", "SGD"), ("autograd", "SGD")]
        for gradients, optimizer in [*variants, ("closed form", "SparseAdam"), ("closed form", "Adagrad")]:
            for threads in (1, 2):
                net = net_class(vocab, 100)
                torch.nn.init.normal_(net.outputs.weight, std=0.1)
                step = step_function(net, optimizer, gradients == "closed form")
                case = {"net": net_class.__name__, "gradients": gradients, "optimizer": optimizer}
                cases.append(case | {"threads": threads, "step": step, "ms": []})
    steps = len(batches) // (windows + 1)
    for window in range(windows + 1):
        turn = window % len(cases)  # each window: new batches, the cases in a rotated order
        for case in cases[turn:] + cases[:turn]:
            torch.set_num_threads(case["threads"])
            start = time.perf_counter()
            for batch in batches[window * steps : (window + 1) * steps]:
                case["step"](batch)
            if window:  # the first window warms up
                case["ms"].append(1000 * (time.perf_counter() - start) / steps)
    return [
        {k: v for k, v in c.items() if k != "step"} | {"median_ms": statistics.median(c["ms"])} for c in cases
    ]


def batch_size_run(batch_size: int, epochs: int) -> dict[str, Any]:
    benchmarks = read_benchmarks(BENCHMARKS)
    assert benchmarks is not None
    with tempfile.TemporaryDirectory(prefix="w2v_batch_") as tmp:
        torch.set_num_threads(1)
        pl.seed_everything(42, verbose=False)
        cfg = config(
            "skipgram",
            1,
            epochs,
            Path(tmp),
            "logger=[]",
            f"data.batch_size={batch_size}",
            "model.update_size=null",
        )  # one update per batch
        datamodule, net, trainer = build_run(cfg)
        start = time.perf_counter()
        with lightning_advice_ignored():
            trainer.fit(net, datamodule=datamodule)
        seconds = time.perf_counter() - start
    finite = bool(torch.isfinite(net.vectors()).all())  # diverged training leaves NaN vectors
    result = (
        scores(from_model(net), benchmarks)
        if finite
        else {"analogy_acc": 0.0, "wordsim353": 0.0, "simlex999": 0.0}
    )
    return {
        "batch_size": batch_size,
        "seconds": seconds,
        "finite": finite,
        "steps": trainer.global_step,
    } | result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    datamodule = TextCorpusDataModule(
        data_dir=str(DATA_DIR), cache_dir=os.environ.get("DLFORGE_CACHE", ".cache"), batch_size=1024
    )  # one step = one update of model.update_size (1,024) centre words, as training applies them
    datamodule.setup("fit")
    count = args.steps * (args.windows + 1)  # fresh batches in every window, as training sees them
    batches = [batch for batch, _ in zip(datamodule.train_epochs(), range(count), strict=False)]
    costs = step_costs(batches, len(datamodule.corpus.words), args.windows)
    rows = [[c["net"], c["gradients"], c["optimizer"], c["threads"], f"{c['median_ms']:.1f}"] for c in costs]
    print(table(["net", "gradients", "optimizer", "threads", "ms / step (1024 centres)"], rows), flush=True)
    sizes = []
    for batch_size in args.batch_sizes:
        sizes.append(batch_size_run(batch_size, args.epochs))
        print({k: v for k, v in sizes[-1].items() if k != "neighbours"}, flush=True)
    if sizes:
        metrics = ("analogy_acc", "wordsim353", "simlex999")
        rows = [[s["batch_size"], *(f"{s[m]:.3f}" for m in metrics), f"{s['seconds']:.0f}"] for s in sizes]
        print(table(["batch size", "analogy", "WordSim-353", "SimLex-999", "train s"], rows))
    settings = vars(args) | {"load_average": os.getloadavg()}
    print(
        "wrote", write("word2vec_options", {"settings": settings, "step_costs": costs, "batch_sizes": sizes})
    )


if __name__ == "__main__":
    main()
