"""Word2vec against gensim's ``Word2Vec`` on the same text, settings and threads: scores and words/s.

    DATA_DIR=../shared/data python -m benchmarks.word2vec [--models skipgram cbow] [--threads 1]
        [--gensim-workers 1 2] [--epochs 5] [--probe-threads 2] [--repeats 1] [--batch-size 4096]
        [--update-size 2048]

Needs ``pip install -e '.[benchmarks]'`` (gensim). Both sides train on the same text: the training
lines of ``data=text_corpus`` (the three files of ``$DATA_DIR/english-corpus/``, its seeded
held-out lines left out), tokenized once by dlforge's tokenizer; gensim gets the token lists. Same
settings: dim 100, window 5, 5 negatives, min_count 5, sample 1e-3, lr 0.025 -> 0.0001 (linear),
5 epochs. Ours runs as ``train.py`` does (config, data module, Lightning, CSV logger, checkpoints;
validation off in the timed run); gensim's ``train()`` is timed after ``build_vocab``. Words/s =
the training lines' words x epochs / training seconds, measured one after the other in this
process (the load average before and after each run is recorded: the machine is shared). The
three scores come from the same evaluator (:mod:`dlforge.word_vectors`) for both.

``--probe-threads`` also times a few hundred of our steps at that thread count (the full runs use
``--threads``). The GloVe check evaluates ``$DATA_DIR/glove/glove.6B.50d.top50k.txt`` with the same
evaluator against the figures measured with this protocol (WordSim-353 0.520, SimLex-999 0.265,
analogies 49.7% of 14,877 questions).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from pytorch_lightning.callbacks import Callback

from benchmarks.common import table, write
from dlforge import CONF_DIR
from dlforge.build import lightning_advice_ignored
from dlforge.data.text_encoder import tokenize
from dlforge.data.word2vec_corpus import TextCorpusDataModule
from dlforge.data.word_benchmarks import WordBenchmarks, read_benchmarks
from dlforge.training import build_run
from dlforge.word_vectors import WordVectors, from_glove, from_model

DATA_DIR = Path(os.environ.get("DATA_DIR", "data"))
BENCHMARKS = {"folder": str(DATA_DIR / "word-benchmarks"), "analogies": "questions-words.txt"}
BENCHMARKS["similarity"] = ["wordsim353.tsv", "simlex999.txt"]  # type: ignore[assignment]
GLOVE_REFERENCE = {"wordsim353": 0.520, "simlex999": 0.265, "analogy_acc": 0.497, "analogy_questions": 14877}
OVERRIDES: list[str] = []  # of ours, from the command line: data.batch_size, model.update_size
PROBES = ["king", "france", "dog", "red", "run", "computer"]


def scores(vectors: WordVectors, benchmarks: WordBenchmarks) -> dict[str, Any]:
    metrics = vectors.evaluate(benchmarks)
    analogies = vectors.analogy_accuracy(benchmarks.questions)
    neighbours = {w: [n for n, _ in vectors.neighbours(w, 5)] for w in PROBES if w in vectors.rows}
    king = [w for w, _ in vectors.analogy(["king", "woman"], ["man"], k=3)]
    return {
        **metrics,
        "analogy_questions": analogies["questions"],
        "neighbours": neighbours,
        "king-man+woman": king,
    }


def config(model: str, threads: int, epochs: int, out: Path, *extra: str) -> Any:
    overrides = [
        f"model={model}", "data=text_corpus", f"paths.data_dir={DATA_DIR}", "trainer=cpu",
        f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "trainer.enable_model_summary=false", "data.benchmarks.folder=null", f"threads={threads}",
        "test=false", *OVERRIDES, *extra,
    ]  # fmt: skip
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def training_lines(datamodule: TextCorpusDataModule) -> list[list[str]]:
    """The token lists of the data module's training lines, as its corpus was read."""
    lines = []
    for path in datamodule.paths:
        with open(path, encoding="utf-8") as f:
            lines += [t for t in (tokenize(line, **datamodule.tokenizer) for line in f) if t]
    assert len(lines) == len(datamodule.line_splits), "the corpus's lines are not the files' lines"
    return [line for line, split in zip(lines, datamodule.line_splits.tolist(), strict=True) if split == 0]


class Gensim:
    """One gensim ``Word2Vec`` trained an epoch at a time, its learning rate falling linearly over
    all epochs exactly as in one ``train()`` call (gensim decays alpha within each epoch too)."""

    def __init__(self, model: str, workers: int, epochs: int, lines: list[list[str]]) -> None:
        from gensim.models import Word2Vec

        self.model, self.workers, self.epochs, self.lines = model, workers, epochs, lines
        self.w2v = Word2Vec(
            vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, alpha=0.025,
            min_alpha=0.0001, sg=int(model == "skipgram"), workers=workers, seed=42,
        )  # fmt: skip
        self.w2v.build_vocab(lines)
        self.epoch_seconds: list[float] = []
        self.raw_words = 0

    def train_epoch(self) -> None:
        done = len(self.epoch_seconds) / self.epochs
        alpha = [0.025 - (0.025 - 0.0001) * f for f in (done, done + 1 / self.epochs)]
        start = time.perf_counter()
        _, raw = self.w2v.train(
            self.lines, total_examples=len(self.lines), epochs=1, start_alpha=alpha[0], end_alpha=alpha[1]
        )
        self.epoch_seconds.append(time.perf_counter() - start)
        self.raw_words += raw

    def vectors(self) -> WordVectors:
        wv = self.w2v.wv
        return WordVectors(list(wv.index_to_key), torch.from_numpy(wv.vectors.copy()), "gensim")


class Alongside(Callback):
    """After each of our epochs, one epoch of each gensim model: both sides see the same drift of
    the machine's load. Keeps our own epoch times (the fit's time between these calls)."""

    def __init__(self, others: list[Gensim]) -> None:
        self.others = others
        self.epoch_seconds: list[float] = []
        self.others_seconds = 0.0
        self.mark = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.mark = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_seconds.append(time.perf_counter() - self.mark)
        start = time.perf_counter()
        for other in self.others:
            other.train_epoch()
        self.others_seconds += time.perf_counter() - start
        self.mark = time.perf_counter()


def run_model(
    model: str,
    threads: int,
    workers: list[int],
    epochs: int,
    lines: list[list[str]],
    benchmarks: WordBenchmarks,
) -> list[dict[str, Any]]:
    """Ours (``train.py``'s path, validation off) and gensim with each worker count, interleaved by epoch."""
    words = sum(map(len, lines))
    others = [Gensim(model, n, epochs, lines) for n in workers]
    alongside = Alongside(others)
    with tempfile.TemporaryDirectory(prefix="w2v_bench_") as tmp:
        torch.set_num_threads(threads)
        pl.seed_everything(42, verbose=False)
        datamodule, net, trainer = build_run(config(model, threads, epochs, Path(tmp)))
        trainer.callbacks.append(alongside)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        with lightning_advice_ignored():
            trainer.fit(net, datamodule=datamodule)
        seconds = time.perf_counter() - start - alongside.others_seconds  # the fit, without gensim's epochs
    ours = {
        "side": "dlforge",
        "model": model,
        "threads": threads,
        "seconds": seconds,
        "steps": trainer.global_step,
    }
    ours |= {"words_per_s": words * epochs / seconds, "epoch_seconds": alongside.epoch_seconds}
    runs = [ours | scores(from_model(net), benchmarks)]
    for other in others:
        seconds = sum(other.epoch_seconds)
        run = {"side": "gensim", "model": model, "threads": other.workers, "seconds": seconds}
        run |= {"words_per_s": other.raw_words / seconds, "epoch_seconds": other.epoch_seconds}
        runs.append(run | {"raw_words": other.raw_words} | scores(other.vectors(), benchmarks))
    for run in runs:
        run |= {"load_before": load, "load_after": os.getloadavg()[0], "training_words": words * epochs}
    return runs


class StepTimer(Callback):
    """The time of the training steps after the first ``warmup`` ones."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        self.end, self.steps = time.perf_counter(), i + 1 - self.warmup


def probe_ours(model: str, threads: int, steps: int) -> dict[str, Any]:
    """Milliseconds per training step (and per 1,024 centre words) at ``threads`` threads, over
    ``steps`` steps after 5 warm-up steps (no full run)."""
    with tempfile.TemporaryDirectory(prefix="w2v_probe_") as tmp:
        torch.set_num_threads(threads)
        cfg = config(model, threads, 1, Path(tmp), f"trainer.limit_train_batches={steps + 5}", "logger=[]")
        datamodule, net, trainer = build_run(cfg)
        timer = StepTimer(5)
        trainer.callbacks.append(timer)
        load = os.getloadavg()[0]
        with lightning_advice_ignored():
            trainer.fit(net, datamodule=datamodule)
    ms = 1000 * (timer.end - timer.start) / timer.steps
    return {
        "model": model,
        "threads": threads,
        "steps": timer.steps,
        "batch_size": datamodule.batch_size,
        "ms_per_step": ms,
        "ms_per_1024_centres": ms * 1024 / datamodule.batch_size,
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["skipgram", "cbow"])
    parser.add_argument("--threads", type=int, default=1, help="our torch threads in the full runs")
    parser.add_argument("--gensim-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--probe-threads", type=int, default=2, help="0: no probe")
    parser.add_argument("--probe-steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, help="our data.batch_size (default: data=text_corpus's)")
    parser.add_argument("--update-size", type=int, help="our model.update_size (default: the model's)")
    parser.add_argument("--name", default="word2vec")
    args = parser.parse_args()
    given = {"data.batch_size": args.batch_size, "model.update_size": args.update_size}
    OVERRIDES[:] = [f"{key}={value}" for key, value in given.items() if value]
    benchmarks = read_benchmarks(BENCHMARKS)
    assert benchmarks is not None
    results: dict[str, Any] = {"settings": vars(args), "runs": [], "probes": []}

    glove_path = DATA_DIR / "glove" / "glove.6B.50d.top50k.txt"
    if glove_path.is_file():
        glove = scores(from_glove(glove_path), benchmarks)
        results["glove_check"] = {"measured": glove, "reference": GLOVE_REFERENCE}
        print("GloVe 50d top50k:", {k: glove[k] for k in (*GLOVE_REFERENCE, "king-man+woman")}, flush=True)

    datamodule = TextCorpusDataModule(
        data_dir=str(DATA_DIR), cache_dir=os.environ.get("DLFORGE_CACHE", ".cache")
    )
    datamodule.setup("fit")
    lines = training_lines(datamodule)
    words = sum(map(len, lines))
    results["corpus"] = {
        "training_lines": len(lines),
        "training_words": words,
        "vocabulary": len(datamodule.corpus.words),
    }
    print(f"{len(lines)} training lines, {words} words", flush=True)
    for _ in range(args.repeats):
        for model in args.models:
            results["runs"] += run_model(
                model, args.threads, args.gensim_workers, args.epochs, lines, benchmarks
            )
            for run in results["runs"][-1 - len(args.gensim_workers) :]:
                print({k: v for k, v in run.items() if k not in ("neighbours", "epoch_seconds")}, flush=True)
            if args.probe_threads:
                for threads in sorted({args.threads, args.probe_threads}):
                    results["probes"].append(probe_ours(model, threads, args.probe_steps))
                    print(results["probes"][-1], flush=True)

    rows = [
        [r["model"], r["side"], r["threads"], f"{r['analogy_acc']:.3f}", f"{r['wordsim353']:.3f}",
         f"{r['simlex999']:.3f}", f"{r['seconds']:.0f}", f"{r['words_per_s']:,.0f}"]
        for r in results["runs"]
    ]  # fmt: skip
    print(
        table(
            ["model", "side", "threads", "analogy", "WordSim-353", "SimLex-999", "train s", "words/s"], rows
        )
    )
    print("wrote", write(args.name, results))


if __name__ == "__main__":
    main()
