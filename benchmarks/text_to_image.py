"""Text to image, measured: StackGAN on captioned digits, judged on captions it never saw.

Trains ``experiment=stackgan_captioned_<data>`` through ``train.py``'s own path (about 30 minutes on
the 2 CPU cores: ``trainer.max_time``), then tests it on the two held-out sets (phrasings,
combinations) with the judge (:func:`dlforge.data.captioned.judge`) reading items with the docs'
LeNet (seed 002's, 20 epochs: ``benchmarks/sample_quality.py``). The judge's own accuracy on the real
canvases of the same test captions is measured too, so a model's figure can be read against it.

    DATA_DIR=../shared/data python -m benchmarks.text_to_image [--data mnist] [--items 1] [--minutes 30] \
        [--set model.property_weight=0 --tag matching_only]
    python -m benchmarks.text_to_image --table          # the docs' table from the JSON
    python -m benchmarks.text_to_image --retest CASE    # a case's checkpoint judged again (newer metrics)

Results: benchmarks/results/text_to_image.json (one entry per data set and item count);
the run dir is outputs/text_to_image/<case>/ and its last caption grid is copied to
docs/img/text_to_image_<case>.png.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import machine
from benchmarks.sample_quality import config, extractor
from dlforge.checkpoint import load_model
from dlforge.data.captioned import TEST_SETS, CaptionedDataModule, CaptionedFashionDataModule, judge
from dlforge.evaluate import evaluate
from dlforge.models.classifier import ImageClassifier
from dlforge.speed import keep_freed_memory
from dlforge.training import train

RESULTS = Path(__file__).resolve().parent / "results" / "text_to_image.json"
RUNS = Path("outputs/text_to_image")
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "img"


@torch.no_grad()
def judge_real(data: str, items: int, classifier_ckpt: str, data_dir: str) -> dict[str, dict[str, float]]:
    """The judge's accuracy on the real canvases of each test set (the ceiling of a model's figure)."""
    module_cls = CaptionedDataModule if data == "mnist" else CaptionedFashionDataModule
    module = module_cls(data_dir=data_dir, items=items, download=False)
    module.setup("test")
    classifier = load_model(classifier_ckpt, ImageClassifier, what="an image classifier").eval()
    scores: dict[str, dict[str, float]] = {}
    for name, loader in zip(TEST_SETS, module.test_dataloader(), strict=True):
        correct: dict[str, list[torch.Tensor]] = {}
        for batch in loader:
            images, _, properties = module.on_after_batch_transfer(batch, 0)
            for prop, ok in judge(images, properties, module.spec, classifier).items():
                correct.setdefault(prop, []).append(ok.flatten())
        scores[name] = {prop: round(float(torch.cat(v).float().mean()), 4) for prop, v in correct.items()}
    return scores


def run(data: str, items: int, minutes: float, extra: list[str], tag: str) -> dict[str, Any]:
    case = f"captioned_{data}_{items}item" + (f"_{tag}" if tag else "")
    classifier = extractor(data if data == "mnist" else "fashion_mnist")
    overrides = (
        f"experiment=stackgan_captioned_{data}",
        f"data.items={items}",
        f"trainer.max_time=00:00:{int(minutes):02d}:00",
        f"quality_classifier={classifier}",
        *extra,
    )
    cfg = config(case, overrides, runs=RUNS)
    load_before, cpu = os.getloadavg(), time.process_time()
    summary = train(cfg)
    load_after, cpu = os.getloadavg(), time.process_time() - cpu
    metrics = summary["metrics"]
    samples = sorted((RUNS / case / "samples").glob("epoch_*.png"))
    if samples:
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples[-1], IMAGES / f"text_to_image_{case}.png")
    measured = by_test_set(metrics)
    return {
        "case": case,
        "overrides": list(overrides),
        "epochs": summary["epochs"],
        "global_step": summary["global_step"],
        "fit_minutes": round(summary["fit_seconds"] / 60, 2),
        # what the run had of the 2 cores: its CPU time (both threads; training and test) and the load
        "cpu_minutes": round(cpu / 60, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "model": measured,
        "judge_on_real_canvases": judge_real(data, items, classifier, str(cfg.paths.data_dir)),
        "extractor": classifier,
        "picture": f"docs/img/text_to_image_{case}.png" if samples else None,
    }


def markdown(document: dict[str, Any]) -> str:
    """The docs' table, straight from the JSON: per run and test set, the judge's accuracies and FIDs."""
    rows = []
    for case, result in document["runs"].items():
        for name in TEST_SETS:
            model, real = result["model"].get(name, {}), result["judge_on_real_canvases"][name]
            cells = [
                f"{100 * model[f'caption_{p}_acc']:.1f} ({100 * real[p]:.1f})"
                if f"caption_{p}_acc" in model
                else "-"
                for p in ("class", "position", "size", "colour")
            ]
            one = model.get("caption_class_acc_stage_one")  # judged on stage I too since 2026-12-07
            cells.insert(1, "-" if one is None else f"{100 * one:.1f}")
            fids = [model.get(f"fid_stage_{stage}", float("nan")) for stage in ("one", "two")]
            items = [model.get(f"item_fid_stage_{stage}") for stage in ("one", "two")]  # since 2026-12-07
            steps = result["global_step"] // 3  # three optimizers a step: generators, critics, caption reader
            first = f"| {case} | {name} | {result['fit_minutes']:.0f} | {steps} | "
            item_cells = " | ".join("-" if fid is None else f"{fid:.1f}" for fid in items)
            rows.append(first + " | ".join(cells) + f" | {fids[0]:.1f} | {fids[1]:.1f} | {item_cells} |")
    head = (
        "| run | test set | train min | steps | class % (real) | class % stage I | position % (real) | "
        "size % (real) | colour % (real) | FID stage I | FID stage II | item FID stage I | "
        "item FID stage II |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    return head + "\n" + "\n".join(rows)


def by_test_set(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``test/<metric>_<set>`` -> ``{set: {metric: value}}``."""
    return {
        name: {
            key.removeprefix("test/").removesuffix(f"_{name}"): round(value, 4)
            for key, value in metrics.items()
            if key.startswith("test/") and key.endswith(f"_{name}") and value is not None
        }
        for name in TEST_SETS
    }


def retest(case: str, document: dict[str, Any]) -> dict[str, Any]:
    """Test a measured case's last checkpoint again with today's judge (``python -m dlforge.evaluate``,
    its data from the checkpoint): the metrics its entry lacks are added, and those it has must agree
    (the judge's noise is seeded), or the case is left as it was."""
    entry = document["runs"][case]
    extractor_ckpt = entry["extractor"]
    cfg = config(
        f"{case}_retest",
        (
            f"ckpt_path={RUNS / case / 'checkpoints' / 'last.ckpt'}",
            "data=" + "_".join(case.split("_")[:2]),  # captioned_mnist or captioned_fashion
            f"quality_classifier={extractor_ckpt}",
        ),
        config_name="evaluate",
    )
    again = by_test_set(evaluate(cfg)["metrics"])
    for name, measured in entry["model"].items():
        now = again[name]
        differ = {k: (v, now.get(k)) for k, v in measured.items() if k not in now or abs(now[k] - v) > 1e-3}
        if differ:
            raise SystemExit(f"{case}: the retest disagrees with the run on {name}: {differ}")
        measured.update({k: v for k, v in again[name].items() if k not in measured})
    return entry


def main() -> None:
    if "--table" in sys.argv:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist", choices=["mnist", "fashion"])
    parser.add_argument("--items", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--set", nargs="*", default=[], help="more overrides, e.g. model.property_weight=0")
    parser.add_argument("--tag", default="", help="a name for this recipe, added to the case's")
    parser.add_argument(
        "--retest", metavar="CASE", help="test a measured case's checkpoint again, adding newer metrics"
    )
    args = parser.parse_args()
    if args.retest:
        result = retest(args.retest, json.loads(RESULTS.read_text()))
    else:
        result = run(args.data, args.items, args.minutes, args.set, args.tag)
    RUNS.mkdir(parents=True, exist_ok=True)
    with open(RUNS / "text_to_image.lock", "w") as lock:  # read now, under a lock: runs may overlap
        fcntl.flock(lock, fcntl.LOCK_EX)
        document = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}
        if not args.retest:
            document["machine"] = machine()
        document["runs"][result["case"]] = result
        RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
