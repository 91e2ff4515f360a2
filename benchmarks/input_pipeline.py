"""Input pipeline: batches/s of dlforge's in-memory data modules vs torchvision's per-sample loader.

    DATA_DIR=../shared/data python -m benchmarks.input_pipeline [--batch-sizes 64 256]

Both sides produce the same thing, a float (N, 1, 28, 28) batch in [0, 1] plus labels, from MNIST's
training set: torchvision decodes each sample to PIL and applies ``ToTensor`` in the DataLoader;
dlforge indexes a uint8 tensor once per batch and converts on the (here: CPU) device. With a GPU,
the device-resident variant keeps the whole set on the GPU (``data.on_device=true``).
"""

from __future__ import annotations

import argparse
import os

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from benchmarks.common import cycle, rate, table, windows, write
from dlforge.data import MNISTDataModule


def torchvision_step(root: str, batch_size: int, workers: int):
    ds = datasets.MNIST(root, train=True, transform=transforms.ToTensor())
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=True,
    )
    return cycle(lambda: iter(loader))


def dlforge_step(root: str, batch_size: int, device: str):
    dm = MNISTDataModule(data_dir=root, batch_size=batch_size, val_size=0, on_device=device != "cpu")
    dm.setup("fit")
    if device != "cpu":
        dm.move_to(torch.device(device))
    loader = dm.train_dataloader()
    next_batch = cycle(lambda: iter(loader))

    def step():
        images, labels = next_batch()
        return dm.preprocess(images.to(device, non_blocking=True)), labels.to(device)

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batches", type=int, default=100, help="batches per timed window")
    args = parser.parse_args()
    root = os.environ.get("DATA_DIR", "data")
    rows, results = [], []
    for bs in args.batch_sizes:
        variants = {
            "torchvision ToTensor, 0 workers": torchvision_step(root, bs, 0),
            "torchvision ToTensor, 2 workers": torchvision_step(root, bs, 2),
            "dlforge in-memory (CPU)": dlforge_step(root, bs, "cpu"),
        }
        if torch.cuda.is_available():
            variants["dlforge device-resident (GPU)"] = dlforge_step(root, bs, "cuda")
        for name, step in variants.items():
            r = rate(windows(step, args.batches), args.batches)
            results.append({"pipeline": name, "batch_size": bs, "batches_per_s": r})
            rows.append([name, bs, r["median"], r["median"] * bs, f"{r['min']:.0f}-{r['max']:.0f}"])
            print(rows[-1], flush=True)
    print(table(["pipeline", "batch", "batches/s (median)", "images/s", "batches/s min-max"], rows))
    print("wrote", write("input_pipeline", {"results": results}))


if __name__ == "__main__":
    main()
