"""Training runs of the audio models on the real spoken digits, with their wall time and metrics.

    DATA_DIR=../shared/data python -m benchmarks.audio_runs classifier [--threads 2] [overrides ...]
    DATA_DIR=../shared/data python -m benchmarks.audio_runs wavenet quality_classifier=<audio_cnn ckpt>
    DATA_DIR=../shared/data python -m benchmarks.audio_runs splits [trainer.max_epochs=10]

``classifier`` trains ``experiment=seed002_audio_cnn_digits`` (test/acc on held-out voices);
``wavenet`` trains ``experiment=seed002_wavenet_digits`` (test/nll in bits per sample and, with a
quality classifier, quality/digit_acc of generated digits); ``ckpt_path=<its last.ckpt>
trainer.max_time=...`` resumes a run for longer. Writes ``results/audio_<case>.json`` (or
``--name``) with the run's metrics, its sample-quality record, the wall time and the run dir.

``splits`` trains the classifier once on each of three speaker splits (:data:`SPLITS`): the
default (seeded 20% of the voices), an unheard accent (every ``enus`` voice), and voices that share
neither accent nor variant with any training voice (``enus`` x {andy, f1, m3} tested; the other
``enus`` voices and the other accents' andy, f1, m3 held out for validation, so training hears
neither). Each run records its speakers and, per test voice, how many training voices share its
accent and its variant; all three go into ``results/audio_classifier_splits.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmarks.common import write
from dlforge import CONF_DIR
from dlforge.speed import keep_freed_memory
from dlforge.training import train

EXPERIMENTS = {
    "classifier": "seed002_audio_cnn_digits",
    "wavenet": "seed002_wavenet_digits",
    "splits": "seed002_audio_cnn_digits",
}
#: the speaker splits of the ``splits`` case: name -> data overrides
SPLITS = {
    "default": [],
    "unheard_accent": ["data.test_speakers='re:^enus'"],
    "unheard_accent_and_variant": [
        "data.test_speakers='re:^enus(andy|f1|m3)$'",
        "data.val_speakers='re:^enus|(andy|f1|m3)$'",
    ],
}
#: a speaker id is an accent followed by one of these voice variants (the shared data's README)
VARIANTS = ("andy", "f1", "f2", "f4", "klatt", "m1", "m3", "m7")
HISTORY = ("val/acc", "val/nll", "quality/digit_acc", "quality/confidence")


def history(run_dir: Path) -> list[dict[str, float]]:
    """The run's validation values after each epoch, from its ``metrics.csv``."""
    with open(run_dir / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if any(row.get(key) for key in HISTORY)]
    return [
        {"epoch": int(row["epoch"]), **{key: float(row[key]) for key in HISTORY if row.get(key)}}
        for row in rows
        if not row.get("test/nll") and not row.get("test/acc")
    ]


def confusion(run_dir: Path) -> list[list[int]] | None:
    """A classifier's test confusion matrix (rows: true digit), from its ``confusion_matrix.csv``."""
    path = run_dir / "confusion_matrix.csv"
    if not path.exists():
        return None
    with open(path) as f:
        return [[int(cell) for cell in row[1:]] for row in list(csv.reader(f))[1:]]


def voices(speakers: dict[str, list[str]]) -> dict[str, object]:
    """The split's speakers, and per test voice how many training voices share its accent, its variant."""

    def parts(name: str) -> tuple[str, str]:
        variant = next((v for v in VARIANTS if name.endswith(v)), "")
        return name.removesuffix(variant), variant

    train = [parts(name) for name in speakers["train"]]
    shared = {
        name: {
            "accent": sum(accent == parts(name)[0] for accent, _ in train),
            "variant": sum(variant == parts(name)[1] for _, variant in train),
        }
        for name in speakers["test"]
    }
    return {"speakers": speakers, "training_voices_sharing": shared}


def run(case: str, threads: int, out: str, overrides: list[str]) -> dict[str, object]:
    """One training run of ``case`` (its experiment and the ``overrides``): its record."""
    run_dir = Path(out).resolve() / f"audio_{case}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    overrides = [f"experiment={EXPERIMENTS[case]}", f"threads={threads}", *overrides]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    cfg.paths.output_dir = str(run_dir)
    speakers = None
    if case == "splits":
        datamodule = instantiate(cfg.data)
        speakers = datamodule.split_speakers([speaker for _, _, speaker in datamodule.clip_files()])
    start = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - start
    quality = run_dir / "sample_quality.json"
    return {
        "case": case,
        "overrides": overrides,
        "wall_time_s": round(wall, 1),
        "epochs": summary["epochs"],
        "global_step": summary["global_step"],
        "tested_checkpoint": summary["best_checkpoint"] or summary["last_checkpoint"],
        "metrics": summary["metrics"],
        "sample_quality": json.loads(quality.read_text()) if quality.exists() else None,
        "history": history(run_dir),
        "confusion_matrix": confusion(run_dir),
        "run_dir": str(run_dir),
        **(voices(speakers) if speakers else {}),
    }


def main() -> None:
    keep_freed_memory()  # as train.py's main does by default: timings comparable with earlier runs
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("case", choices=EXPERIMENTS)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)"
    )
    parser.add_argument("--out", default="outputs/benchmarks", help="where the run dir goes")
    parser.add_argument("--name", help="results/<name>.json (default: audio_<case>)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    if args.case != "splits":
        payload = run(args.case, args.threads, args.out, args.overrides)
        path = write(args.name or f"audio_{args.case}", payload)
        print(json.dumps({k: payload[k] for k in ("wall_time_s", "epochs", "metrics")}, indent=2))
        print(f"written: {path}")
        return
    payload = {"splits": {}}
    for split, overrides in SPLITS.items():
        payload["splits"][split] = run(args.case, args.threads, args.out, [*overrides, *args.overrides])
        record = payload["splits"][split]
        print(split, json.dumps({k: record[k] for k in ("wall_time_s", "epochs", "metrics")}), flush=True)
        path = write(args.name or "audio_classifier_splits", payload)  # what is measured so far
    print(f"written: {path}")


if __name__ == "__main__":
    main()
