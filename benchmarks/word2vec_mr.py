"""Trained word vectors for the text classifiers: skip-gram on the English corpus, exported, then MR.

    DATA_DIR=../shared/data python -m benchmarks.word2vec_mr [--out outputs/benchmarks/word2vec_mr]
        [--epochs 5] [--seeds 42] [--maps docs/img]

1. ``train.py model=skipgram data=text_corpus trainer.max_epochs=5 threads=1`` as a user runs it
   (validation loss and the word benchmarks every epoch): its scores and wall time;
2. ``python -m dlforge.embeddings export`` of its checkpoint to ``<out>/skipgram_vectors.txt``;
3. ``train.py model=textcnn_kim data=mr trainer.max_epochs=5 threads=1`` with random vectors (50 and
   100 dimensions), the shared GloVe 50d vectors and the trained 100d vectors (``data.glove.path``),
   fine-tuned (``non_static``, the default) and frozen (``model.embedding=static``), for each seed:
   test accuracy of the best-``val/acc`` checkpoint, and how many MR vocabulary words each file covers;
4. ``python -m dlforge.embeddings map`` of the checkpoint: the 150 most frequent words by PCA and by
   t-SNE, PNGs in ``--maps``.

The run dirs stay under ``--out`` (the skip-gram checkpoint is the one the docs explore).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from benchmarks.common import table, write
from dlforge import CONF_DIR
from dlforge.data.glove import load_glove
from dlforge.data.text_classifier_corpora import MRDataModule
from dlforge.speed import keep_freed_memory
from dlforge.training import train

DATA_DIR = Path(os.environ.get("DATA_DIR", "data"))


def run(out: Path, *overrides: str) -> dict[str, Any]:
    """``train.py <overrides>`` in process, its run dir ``out``; the run's summary."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[f"paths.data_dir={DATA_DIR}", "trainer=cpu", *overrides]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return train(cfg)


def coverage(vectors: Path | None) -> float | None:
    """The share of MR's training vocabulary (PAD and OOV aside) that ``vectors`` holds."""
    if vectors is None:
        return None
    datamodule = MRDataModule(data_dir=str(DATA_DIR), download=False)
    datamodule.setup()
    vocab = datamodule.encoder.vocab[2:]
    return len(load_glove(vectors).find(vocab)) / len(vocab)


def main() -> None:
    keep_freed_memory()  # as train.py's main does by default: timings comparable with earlier runs
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/word2vec_mr"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--maps", type=Path, default=Path("docs/img"), help="where the 2-D maps go")
    args = parser.parse_args()
    out = args.out.resolve()
    load = os.getloadavg()[0]
    skipgram = run(
        out / "skipgram",
        "model=skipgram",
        "data=text_corpus",
        f"trainer.max_epochs={args.epochs}",
        "threads=1",
    )
    print(
        {k: v for k, v in skipgram["metrics"].items() if k.startswith("test/")},
        skipgram["wall_time_s"],
        flush=True,
    )

    exported = out / "skipgram_vectors.txt"
    command = [
        sys.executable,
        "-m",
        "dlforge.embeddings",
        "export",
        f"ckpt_path={skipgram['last_checkpoint']}",
    ]
    subprocess.run([*command, f"output={exported}", f"hydra.run.dir={out / 'export'}"], check=True)
    maps = {}
    for method in ("pca", "tsne"):
        maps[method] = str(args.maps.resolve() / f"word2vec_map_{method}.png")
        subprocess.run(
            [sys.executable, "-m", "dlforge.embeddings", "map", f"vectors={skipgram['last_checkpoint']}",
             "n=150", f"method={method}", f"output={maps[method]}", f"hydra.run.dir={out / 'map'}"],
            check=True,
        )  # fmt: skip

    glove = DATA_DIR / "glove" / "glove.6B.50d.top50k.txt"
    sources = {
        "random 50d": (None, ["data.glove.path=null", "data.glove.dim=50"]),
        "random 100d": (None, ["data.glove.path=null", "data.glove.dim=100"]),
        "GloVe 6B 50d (top 50k)": (glove, [f"data.glove.path={glove}"]),
        "skip-gram 100d, trained here": (exported, [f"data.glove.path={exported}"]),
    }
    results = []
    for name, (vectors, overrides) in sources.items():
        for embedding in ("non_static", "static") if vectors else ("non_static",):
            for seed in args.seeds:
                folder = out / "mr" / f"{name.split(',')[0].replace(' ', '_')}_{embedding}_{seed}"
                summary = run(
                    folder,
                    "model=textcnn_kim",
                    "data=mr",
                    f"model.embedding={embedding}",
                    f"trainer.max_epochs={args.epochs}",
                    "threads=1",
                    f"seed={seed}",
                    *overrides,
                )
                metrics = summary["metrics"]
                results.append(
                    {"vectors": name, "embedding": embedding, "seed": seed, "coverage": coverage(vectors)}
                    | {k: metrics.get(k) for k in ("test/acc", "val/acc_best")}
                    | {"wall_time_s": summary["wall_time_s"]}
                )
                print(results[-1], flush=True)
    rows = [
        [r["vectors"], r["embedding"], r["seed"], f"{100 * r['test/acc']:.2f}",
         "" if r["coverage"] is None else f"{r['coverage']:.1%}"]
        for r in results
    ]  # fmt: skip
    print(table(["vectors", "embedding", "seed", "MR test acc.", "MR vocabulary covered"], rows))
    skipgram_record = {
        k: skipgram[k] for k in ("metrics", "wall_time_s", "epochs", "global_step", "last_checkpoint")
    }
    print(
        "wrote",
        write(
            "word2vec_mr",
            {
                "settings": vars(args) | {"out": str(out), "maps": str(args.maps)},
                "load_before": load,
                "load_after": os.getloadavg()[0],
                "skipgram": skipgram_record,
                "maps": maps,
                "mr": results,
            },
        ),
    )


if __name__ == "__main__":
    main()
