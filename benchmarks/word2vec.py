"""Word2vec against gensim's ``Word2Vec`` on the same text, settings and threads: scores and words/s.

    DATA_DIR=../shared/data python -m benchmarks.word2vec [--models skipgram cbow] [--threads 1 2]
        [--negatives-per pair centre] [--gensim-workers 1 2 | --no-gensim] [--epochs 5]
        [--subset-words 2000000 | --paths a.txt b.txt] [--probe-threads 2] [--repeats 1] [--batch-size 4096]
        [--update-size 2048] [--name word2vec]

Needs ``pip install -e '.[benchmarks]'`` (gensim). Both sides train on the same text: the training
lines of ``data=text_corpus`` (the three files of ``$DATA_DIR/english-corpus/``, its seeded
held-out lines left out; ``--subset-words N``: a seeded random choice of the three files' lines
holding about N words, written once under the cache folder and given as ``data.paths``), tokenized
once by dlforge's tokenizer; gensim gets the token lists. Same settings: dim 100, window 5,
5 negatives, min_count 5, sample 1e-3, lr 0.025 -> 0.0001 (linear), 5 epochs.

Each of our runs (a model, a thread count, skip-gram's ``model.negatives_per``) runs as ``train.py``
does (config, data module, Lightning, CSV logger, checkpoints; validation off), with a fresh gensim
model per worker count trained alongside it an epoch at a time (after each of our epochs), so both
see the same load on the shared machine; gensim's workers are our thread count unless
``--gensim-workers`` says otherwise. Two times a side: ``seconds``, the training alone (our
``fit`` less gensim's epochs; gensim's ``train()`` calls), and ``whole_seconds``, the run from the
config (ours: ``build_run``, the encoded corpus read from the cache, and the fit; gensim: the model
made and ``build_vocab`` on the token lists, then its training). Words/s = the training lines'
words x epochs / seconds (``words_per_s``, ``whole_words_per_s``). The load average before and
after each run is recorded. The three scores come from the same evaluator
(:mod:`dlforge.word_vectors`) for both.

``--probe-threads`` also times a few hundred of our steps at that thread count (the full runs use
``--threads``). The GloVe check evaluates ``$DATA_DIR/glove/glove.6B.50d.top50k.txt`` with the same
evaluator against the figures measured with this protocol (WordSim-353 0.520, SimLex-999 0.265,
analogies 49.7% of 14,877 questions).
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
OVERRIDES: list[str] = []  # of ours, from the command line: data.batch_size, model.update_size, data.paths
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
        start = time.perf_counter()
        self.w2v = Word2Vec(
            vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, alpha=0.025,
            min_alpha=0.0001, sg=int(model == "skipgram"), workers=workers, seed=42,
        )  # fmt: skip
        self.w2v.build_vocab(lines)
        self.setup_seconds = time.perf_counter() - start
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
    *extra: str,
) -> list[dict[str, Any]]:
    """Ours (``train.py``'s path, validation off; ``extra`` overrides) and gensim with each worker
    count, interleaved by epoch."""
    words = sum(map(len, lines))
    others = [Gensim(model, n, epochs, lines) for n in workers]
    alongside = Alongside(others)
    with tempfile.TemporaryDirectory(prefix="w2v_bench_") as tmp:
        torch.set_num_threads(threads)
        pl.seed_everything(42, verbose=False)
        load = os.getloadavg()[0]
        begin = time.perf_counter()
        datamodule, net, trainer = build_run(config(model, threads, epochs, Path(tmp), *extra))
        trainer.callbacks.append(alongside)
        start = time.perf_counter()
        with lightning_advice_ignored():
            trainer.fit(net, datamodule=datamodule)
        end = time.perf_counter()
        seconds = end - start - alongside.others_seconds  # the fit, without gensim's epochs
        whole = end - begin - alongside.others_seconds
    ours = {
        "side": "dlforge",
        "model": model,
        "threads": threads,
        "negatives_per": net.hparams.negatives_per,
        "update_size": net.hparams.update_size,
        "seconds": seconds,
        "whole_seconds": whole,
        "steps": trainer.global_step,
    }
    ours |= {"words_per_s": words * epochs / seconds, "whole_words_per_s": words * epochs / whole}
    runs = [ours | {"epoch_seconds": alongside.epoch_seconds} | scores(from_model(net), benchmarks)]
    for other in others:
        seconds = sum(other.epoch_seconds)
        whole = seconds + other.setup_seconds
        run = {"side": "gensim", "model": model, "threads": other.workers, "seconds": seconds}
        run |= {"whole_seconds": whole, "words_per_s": other.raw_words / seconds}
        run |= {"whole_words_per_s": other.raw_words / whole, "epoch_seconds": other.epoch_seconds}
        runs.append(run | {"raw_words": other.raw_words} | scores(other.vectors(), benchmarks))
    for run in runs:
        run |= {"load_before": load, "load_after": os.getloadavg()[0], "training_words": words * epochs}
    return runs


def subset_file(words: int, folder: Path, seed: int = 0) -> Path:
    """A seeded random choice of the corpus files' lines (kept in their order) holding about ``words``
    words by dlforge's tokenizer, written once to ``folder``."""
    path = folder / f"english-corpus-subset-{words}-seed{seed}.txt"
    if path.is_file():
        return path
    lines = []
    for name in ("gcide", "wordnet-glosses", "enwiki-excerpt"):
        with open(DATA_DIR / "english-corpus" / f"{name}.txt", encoding="utf-8") as f:
            lines += [line for line in f if line.strip()]
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    chosen, total = [], 0
    for i in order:
        if total >= words:
            break
        chosen.append(i)
        total += len(tokenize(lines[i], keep_punctuation=False))  # data=text_corpus's words
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines[i] for i in sorted(chosen)), encoding="utf-8")
    tmp.rename(path)
    return path


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


def work(datamodule: TextCorpusDataModule) -> dict[str, float]:
    """Skip-gram's work per centre word in one epoch of the training text, counted from its batches:
    (context, centre) pairs, noise words drawn, and output-table rows updated, per pair (word2vec.c,
    gensim, ``negatives_per=pair``) and per centre (``centre``); the share of per-pair noise words
    that are the centre itself (skipped) from the unigram^0.75 and subsampled centre distributions."""
    windows = datamodule.train_windows
    assert windows is not None
    centres = pairs = 0
    for batch in datamodule.train_epochs():
        centres, pairs = centres + len(batch[0]), pairs + int(batch[2].sum())
    k = datamodule.negatives
    counts = torch.bincount(windows.ids, minlength=len(windows.keep)).double() * windows.keep.double()
    noise = torch.bincount(windows.noise.long(), minlength=len(counts)).double()
    skipped = float((counts / counts.sum() * noise / noise.sum()).sum())
    per_centre = pairs / centres
    return {
        "centres": centres,
        "pairs": pairs,
        "pairs_per_centre": per_centre,
        "dot_products_per_centre": per_centre * (1 + k),  # both: every pair against 1 + k targets
        "noise_draws_per_centre": {"pair": per_centre * k, "centre": k},
        "output_rows_per_centre": {"pair": per_centre * (1 + k * (1 - skipped)), "centre": 1 + k},
        "input_rows_per_centre": per_centre,
        "noise_is_centre_share": skipped,
    }


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
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="our torch threads")
    parser.add_argument(
        "--negatives-per", nargs="+", default=[None], help="skip-gram's model.negatives_per (pair, centre)"
    )
    parser.add_argument("--gensim-workers", type=int, nargs="+", help="default: our thread count")
    parser.add_argument("--no-gensim", action="store_true", help="ours alone (no gensim alongside)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--subset-words", type=int, help="train on a random choice of lines of this many words"
    )
    parser.add_argument("--paths", nargs="+", help="train on these text files (data.paths)")
    parser.add_argument("--probe-threads", type=int, default=0, help="0: no probe")
    parser.add_argument("--probe-steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, help="our data.batch_size (default: data=text_corpus's)")
    parser.add_argument("--update-size", type=int, help="our model.update_size (default: the model's)")
    parser.add_argument("--name", default="word2vec")
    parser.add_argument("--table", action="store_true", help="print the docs' table of results/<name>.json")
    parser.add_argument("--work-only", action="store_true", help="add the work count to results/<name>.json")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads((Path(__file__).parent / "results" / f"{args.name}.json").read_text())))
        return
    cache = Path(os.environ.get("DLFORGE_CACHE", ".cache"))
    paths = [str(subset_file(args.subset_words, cache / "word2vec_subsets"))] if args.subset_words else None
    paths = args.paths or paths
    given = {"data.batch_size": args.batch_size, "model.update_size": args.update_size}
    given |= {"data.paths": f"[{','.join(paths)}]" if paths else None}
    OVERRIDES[:] = [f"{key}={value}" for key, value in given.items() if value]
    benchmarks = read_benchmarks(BENCHMARKS)
    assert benchmarks is not None
    results: dict[str, Any] = {"settings": vars(args), "runs": [], "probes": []}

    glove_path = DATA_DIR / "glove" / "glove.6B.50d.top50k.txt"
    if glove_path.is_file() and not paths:
        glove = scores(from_glove(glove_path), benchmarks)
        results["glove_check"] = {"measured": glove, "reference": GLOVE_REFERENCE}
        print("GloVe 50d top50k:", {k: glove[k] for k in (*GLOVE_REFERENCE, "king-man+woman")}, flush=True)

    datamodule = TextCorpusDataModule(data_dir=str(DATA_DIR), paths=paths, cache_dir=str(cache))
    datamodule.setup("fit")
    lines = training_lines(datamodule)
    words = sum(map(len, lines))
    results["corpus"] = {
        "paths": [str(p) for p in datamodule.paths],
        "training_lines": len(lines),
        "training_words": words,
        "vocabulary": len(datamodule.corpus.words),
    }
    results["work"] = work(datamodule)
    print("work per centre word:", results["work"], flush=True)
    if args.work_only:
        path = Path(__file__).parent / "results" / f"{args.name}.json"
        document = json.loads(path.read_text())
        path.write_text(json.dumps({**document, "work": results["work"]}, indent=2) + "\n")
        return
    print(f"{len(lines)} training lines, {words} words", flush=True)
    for _ in range(args.repeats):
        for model, threads, per in (
            (m, t, p) for m in args.models for t in args.threads for p in args.negatives_per
        ):
            if per is not None and model != "skipgram":
                if per != args.negatives_per[0]:
                    continue  # CBOW: one prediction per centre, whatever the option
                per = None
            workers = [] if args.no_gensim else (args.gensim_workers or [threads])
            extra = [f"model.negatives_per={per}"] if per else []
            runs = run_model(model, threads, workers, args.epochs, lines, benchmarks, *extra)
            results["runs"] += runs
            for run in runs:
                print({k: v for k, v in run.items() if k not in ("neighbours", "epoch_seconds")}, flush=True)
            write(args.name, results)  # what is measured so far
        if args.probe_threads:
            for model in args.models:
                for threads in sorted({*args.threads, args.probe_threads}):
                    results["probes"].append(probe_ours(model, threads, args.probe_steps))
                    print(results["probes"][-1], flush=True)

    print(table(*rows(results["runs"])))
    print("wrote", write(args.name, results))


def rows(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The runs as a table, each of ours followed by the gensim runs trained alongside it."""
    header = ["model", "side", "neg. per", "threads", "analogy", "WordSim-353", "SimLex-999"]
    header += ["train s", "words/s", "whole s", "whole words/s"]
    return header, [
        [r["model"], r["side"], r.get("negatives_per", ""), r["threads"], f"{r['analogy_acc']:.3f}",
         f"{r['wordsim353']:.3f}", f"{r['simlex999']:.3f}", f"{r['seconds']:.0f}", f"{r['words_per_s']:,.0f}",
         f"{r['whole_seconds']:.0f}", f"{r['whole_words_per_s']:,.0f}"]
        for r in runs
    ]  # fmt: skip


def markdown(document: dict[str, Any]) -> str:
    """The docs' table: each of our runs, then the gensim run trained alongside it, and our speed over
    that gensim run's (training alone, whole run)."""
    lines = [
        "| model | side | noise words | centres an update | threads | analogies | WordSim-353 | SimLex-999 "
        "| training s | words/s (training) | words/s (whole run) | ours / gensim (training, whole) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ours: dict[str, Any] = {}
    for r in document["runs"]:
        side = "dlforge" if r["side"] == "dlforge" else "gensim"
        per = f"per {r['negatives_per']}" if side == "dlforge" and r["model"] == "skipgram" else ""
        per = per or ("per pair" if r["model"] == "skipgram" else "per centre")
        ratio = ""
        if side == "dlforge":
            ours = r
        elif ours:
            ratio = f"{ours['words_per_s'] / r['words_per_s']:.2f}, "
            ratio += f"{ours['whole_words_per_s'] / r['whole_words_per_s']:.2f}"
        lines.append(
            f"| {r['model']} | {side} | {per} | {r.get('update_size') or 'every pair'} | {r['threads']} "
            f"| {100 * r['analogy_acc']:.2f}% "
            f"| {r['wordsim353']:.3f} | {r['simlex999']:.3f} | {r['seconds']:.0f} "
            f"| {r['words_per_s']:,.0f} | {r['whole_words_per_s']:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
