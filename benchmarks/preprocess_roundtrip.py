"""Does preprocessing undo what a user's photo does to an image? Accuracy on test images turned into photos.

    DATA_DIR=../shared/data python -m benchmarks.preprocess_roundtrip --ckpt <mnist or fashion ckpt> -n 1000

Each of the first ``n`` test images of the checkpoint's data set (MNIST or Fashion-MNIST) becomes
what a user would upload: dark on a light background (inverted), enlarged 10x to 280x280, placed at
a random spot of a larger, slightly grey, noisy canvas, saved as JPEG. The model then classifies
(a) the original 28x28 images, (b) the photos through :mod:`dlforge.preprocess` with the style of its
data set (``digit``: invert, crop, 20x20 box, centre of mass; ``object``: invert, trim, fit, centre),
and (c) the photos naively resized to 28x28 (``resize``), to show what the recipe is worth.
"""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from benchmarks.common import machine, table, write
from dlforge.checkpoint import data_config
from dlforge.inference import load
from dlforge.preprocess import load_image


def as_photo(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 28x28 light-on-dark test image as a JPEG photo of it: dark on light, big, off-centre, noisy."""
    big = Image.fromarray(255 - image).resize((280, 280), Image.Resampling.BICUBIC)
    width, height = (int(v) for v in rng.integers(300, 520, size=2))
    canvas = Image.new("L", (width, height), 255)
    canvas.paste(big, (int(rng.integers(0, width - 280)), int(rng.integers(0, height - 280))))
    pixels = np.asarray(canvas, dtype=np.float64) * 0.92 + rng.normal(0, 3, (height, width))
    out = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load(args.ckpt)
    name = model.spec["name"]
    paths = OmegaConf.create({"data_dir": "${oc.env:DATA_DIR,data}", "cache_dir": ".cache"})
    datamodule = instantiate(data_config(name, paths, seed=0), download=False)
    datamodule.setup("test")
    images, labels = datamodule.splits["test"].tensors
    images, labels = images[: args.n, 0].numpy(), labels[: args.n]
    rng = np.random.default_rng(args.seed)
    photos = [as_photo(image, rng) for image in images]

    def accuracy(inputs: torch.Tensor) -> float:
        probs = torch.cat([model.classify(batch) for batch in inputs.split(256)])
        return float((probs.argmax(1) == labels).float().mean())

    original = torch.from_numpy(images).float().div(255)[:, None]
    results = {
        "original 28x28 test images": accuracy(original),
        f"photos, preprocess={model.card['preprocess']}": accuracy(
            torch.stack([load_image(p, model.spec) for p in photos])
        ),
        "photos, preprocess=resize": accuracy(
            torch.stack([load_image(p, model.spec, "resize") for p in photos])
        ),
    }
    print(
        table(
            ["input", f"accuracy (%) on {len(labels)} {name} test images"],
            [[k, 100 * v] for k, v in results.items()],
        )
    )
    write(f"preprocess_roundtrip_{name}", {"checkpoint": args.ckpt, "n": len(labels), "accuracy": results})
    print(json.dumps({"machine": machine()["cpu"], **results}))


if __name__ == "__main__":
    main()
