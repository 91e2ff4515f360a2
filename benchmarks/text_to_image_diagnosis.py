"""Text to image, diagnosed: short StackGAN runs (a few minutes or epochs) scored by the same judge on
500 canvases of each held-out set, to see which part of the conditioning makes the drawings follow
their captions before paying for a 30-minute run (``benchmarks/text_to_image.py``).

    DATA_DIR=../shared/data python -m benchmarks.text_to_image_diagnosis NAME MINUTES [overrides...]
    # e.g. klmean_only_2ep 30 threads=1 trainer.max_epochs=2 model.read_properties=false \
    #      model.net.projection=false model.net.every_scale=false

Each run appends one line to benchmarks/results/text_to_image_diagnosis.jsonl: its overrides, steps,
wall minutes, load averages before and after, and the test metrics.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from benchmarks.sample_quality import config, extractor
from dlforge.training import train

RESULTS = Path(__file__).resolve().parent / "results" / "text_to_image_diagnosis.jsonl"
RUNS = Path("outputs/text_to_image_diagnosis")


def main() -> None:
    name, minutes, *extra = sys.argv[1:]
    overrides = (
        "experiment=stackgan_captioned_mnist",
        f"trainer.max_time=00:00:{int(minutes):02d}:00",
        f"quality_classifier={extractor('mnist')}",
        "data.test_size=500",
        *extra,
    )
    start, load = time.time(), os.getloadavg()
    summary = train(config(name, overrides, runs=RUNS))
    metrics = {
        k: round(v, 3) for k, v in summary["metrics"].items() if k.startswith("test/") and v is not None
    }
    row = {
        "name": name,
        "extra": extra,
        "steps": summary["global_step"] // 3,  # three optimizers a step
        "min": round((time.time() - start) / 60, 1),
        "load": [load, os.getloadavg()],
        **metrics,
    }
    print(json.dumps(row))
    with RESULTS.open("a") as results:
        results.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
