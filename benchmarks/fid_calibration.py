"""What a Fréchet distance in the docs' LeNet features means: real images, changed a known way.

The docs' one FID recipe (``benchmarks/sample_quality.py``: seed 002's LeNet trained 20 epochs,
10,000 images against the 10,000 test images) scores GAN samples in the hundreds against a floor of
about 8 (training images). This script scores *real* training images after changes whose size is
known, so that a GAN's FID can be read against them: shifted by a pixel or two, blurred, noised,
thickened strokes, one class left out.

    DATA_DIR=../shared/data python -m benchmarks.fid_calibration [--data mnist fashion_mnist]

Results: benchmarks/results/fid_calibration.json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from benchmarks.common import machine
from benchmarks.sample_quality import SAMPLES, config, extractor
from dlforge.data import FashionMNISTDataModule, MNISTDataModule
from dlforge.quality import SampleQuality

RESULTS = Path(__file__).resolve().parent / "results" / "fid_calibration.json"


def shift(pixels: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, y: torch.roll(x, shifts=(pixels, pixels), dims=(2, 3))


def noise(std: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return lambda x, y: (x + std * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def blur(sigma: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, y: gaussian_blur(x, kernel_size=5, sigma=sigma)


def thicken(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


#: name -> what is done to the training images (labels at hand for the class cases)
CHANGES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "none (the floor)": lambda x, y: x,
    "shifted 1 pixel right and down": shift(1),
    "shifted 2 pixels": shift(2),
    "Gaussian blur, sigma 1": blur(1.0),
    "Gaussian noise, std 0.1": noise(0.1),
    "Gaussian noise, std 0.3": noise(0.3),
    "strokes thickened (3x3 max)": thicken,
}


def measure(data: str) -> dict[str, dict[str, float]]:
    module = {"mnist": MNISTDataModule, "fashion_mnist": FashionMNISTDataModule}[data](
        data_dir=str(Path(config("floor", ()).paths.data_dir)), download=False
    )
    module.setup("fit")
    quality = SampleQuality(extractor(data), kid_subset_size=1000)
    for part in module.splits["test"].tensors[0][:SAMPLES].split(1000):
        quality.update_real(module.preprocess(part))
    images, labels = (t[:SAMPLES] for t in module.splits["train"].tensors)
    images = module.preprocess(images)
    cases: dict[str, tuple[torch.Tensor, torch.Tensor]] = {name: (images, labels) for name in CHANGES}
    keep = labels != 1
    cases["class 1 left out (refilled by the others)"] = (images[keep], labels[keep])
    results = {}
    for name, (x, y) in cases.items():
        change = CHANGES.get(name, lambda x, y: x)
        quality.reset_fake()
        for part, part_labels in zip(x.split(1000), y.split(1000), strict=True):
            quality.update_fake(change(part, part_labels))
        scores = quality.compute()
        results[name] = {"fid": round(float(scores["fid"]), 2), "kid": round(float(scores["kid"]), 4)}
        print(f"{data}: {name}: FID {results[name]['fid']:.1f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=["mnist", "fashion_mnist"])
    args = parser.parse_args()
    document = {"machine": machine(), "samples": SAMPLES, "results": {d: measure(d) for d in args.data}}
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
