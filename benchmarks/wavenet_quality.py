"""How an audio classifier hears a trained WaveNet's digits, across sampling temperatures.

    DATA_DIR=../shared/data python -m benchmarks.wavenet_quality --wavenet <ckpt>
        --classifier <audio_cnn ckpt> [--temperatures 0.8 0.9 1.0] [--per-digit 10] [--seconds 0.4 0.6]
        [--picture docs/img/wavenet_digits.png]

For each clip length and temperature: ``--per-digit`` clips of every digit (fast sampler, seed 0),
judged by the classifier (:class:`dlforge.quality.DigitRecognition`): the share recognized as the
digit asked for (chance 0.1), mean confidence, and the generation time. For reference, the same
classifier on the real clips of the held-out test voices. ``--picture`` draws one clip per digit
with the best settings.
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from benchmarks.common import table, write
from dlforge import CONF_DIR
from dlforge.checkpoint import data_for, load_model
from dlforge.models import WaveNetModel
from dlforge.quality import DigitRecognition
from dlforge.sound import sound_figure
from dlforge.viz import save_figure


def real_test_clips(model: WaveNetModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out test voices' clips of the data set the WaveNet was trained on."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["data=spoken_digits"])
    data = data_for(model, cfg.data, "test")
    clips, labels, _, _ = data.splits["test"].tensors
    return clips.float() / 32768, labels


def picture(model: WaveNetModel, real: torch.Tensor, labels: torch.Tensor, best: dict, path: str) -> None:
    """One held-out real clip of each digit above one generated clip of each (a small palette PNG)."""
    samples = round(best["seconds"] * model.sample_rate)
    first = [real[(labels == k).nonzero()[0, 0], :samples] for k in range(10)]
    generated = model.generate(torch.arange(10), best["seconds"], seed=0, temperature=best["temperature"])
    titles = [f"real {k}" for k in range(10)] + [f"WaveNet {k} (T={best['temperature']})" for k in range(10)]
    save_figure(sound_figure([*first, *generated], model.sample_rate, titles, columns=5), path)
    image = Image.open(path).convert("RGB")
    image = image.resize((image.width * 3 // 5, image.height * 3 // 5), Image.Resampling.LANCZOS)
    image.quantize(32).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wavenet", required=True)
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.8, 0.9, 1.0])
    parser.add_argument("--per-digit", type=int, default=10)
    parser.add_argument("--seconds", type=float, nargs="+", default=[0.4, 0.6])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--picture", help="PNG: a real and a generated clip of each digit (best settings)")
    parser.add_argument("--name", default="wavenet_quality", help="results/<name>.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.wavenet, WaveNetModel)
    judge = DigitRecognition(args.classifier, model.sample_rate)
    waves, real_labels = real_test_clips(model)
    real = judge.judge(waves, real_labels)
    print(f"real held-out clips: {real['digit_acc']:.3f} recognized, confidence {real['confidence']:.3f}")
    labels = torch.arange(10).repeat_interleave(args.per_digit)
    rows, results = [], []
    for seconds in args.seconds:
        for temperature in args.temperatures:
            start = time.perf_counter()
            clips = model.generate(labels, seconds, seed=0, temperature=temperature)
            elapsed = time.perf_counter() - start
            result = judge.judge(clips, labels)
            result.update(seconds=seconds, temperature=temperature, generation_s=round(elapsed, 1))
            results.append(result)
            rows.append(
                [seconds, temperature, f"{result['digit_acc']:.2f}", f"{result['confidence']:.2f}", elapsed]
            )
            print(rows[-1], "heard:", result["class_counts"], flush=True)
    print(table(["seconds", "temperature", "digit_acc", "confidence", "generation s"], rows))
    best = max(results, key=lambda r: r["digit_acc"])
    if args.picture:
        picture(model, waves, real_labels, best, args.picture)
    payload = {
        "wavenet": args.wavenet,
        "classifier": judge.extractor,
        "clips_per_setting": len(labels),
        "real_test_clips": real,
        "generated": results,
    }
    print(f"written: {write(args.name, payload)}")


if __name__ == "__main__":
    main()
