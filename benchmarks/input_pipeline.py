"""Input pipeline: batches/s of dlforge's in-memory data modules vs torchvision's per-sample loader.

    DATA_DIR=../shared/data python -m benchmarks.input_pipeline [--batch-sizes 64 256]

Both sides produce the same thing, a float (N, 1, 28, 28) batch in [0, 1] plus labels, from MNIST's
training set, on the training device: torchvision decodes each sample to PIL and applies ``ToTensor``
in the DataLoader; dlforge indexes a uint8 tensor once per batch and converts on the device. With a
GPU every variant delivers its batches to the GPU, and two more are measured: pinned host memory
(``data.pin_memory=true``) and the device-resident set (``data.on_device=true``), which keeps the
whole set on the GPU and indexes it there.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from benchmarks.common import cycle, rate, table, windows, write
from dlforge.data import MNISTDataModule


def torchvision_step(root: str, batch_size: int, workers: int, device: str):
    ds = datasets.MNIST(root, train=True, transform=transforms.ToTensor())
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device != "cpu",
        drop_last=True,
    )
    next_batch = cycle(lambda: iter(loader))

    def step():
        images, labels = next_batch()
        return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    return step


def dlforge_step(root: str, batch_size: int, device: str, resident: bool = False, pinned: bool = False):
    dm = MNISTDataModule(
        data_dir=root, batch_size=batch_size, val_size=0, on_device=resident, pin_memory=pinned
    )
    dm.setup("fit")
    if resident:
        dm.move_to(torch.device(device))
    loader = dm.train_dataloader()
    next_batch = cycle(lambda: iter(loader))

    def step():
        images, labels = next_batch()
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        return dm.preprocess(images), labels

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batches", type=int, default=100, help="batches per timed window")
    args = parser.parse_args()
    root = os.environ.get("DATA_DIR", "data")
    rows, results = [], []
    gpu = torch.cuda.is_available()
    device, to = ("cuda", " -> GPU") if gpu else ("cpu", "")
    for bs in args.batch_sizes:
        variants = {
            f"torchvision ToTensor, 0 workers{to}": torchvision_step(root, bs, 0, device),
            f"torchvision ToTensor, 2 workers{to}": torchvision_step(root, bs, 2, device),
            f"dlforge in-memory{to or ' (CPU)'}": dlforge_step(root, bs, device),
        }
        if gpu:
            variants["dlforge in-memory, pinned -> GPU"] = dlforge_step(root, bs, device, pinned=True)
            variants["dlforge device-resident (GPU)"] = dlforge_step(root, bs, device, resident=True)
        for name, step in variants.items():
            r = rate(windows(step, args.batches), args.batches)
            results.append({"pipeline": name, "batch_size": bs, "batches_per_s": r})
            rows.append([name, bs, r["median"], r["median"] * bs, f"{r['min']:.0f}-{r['max']:.0f}"])
            print(rows[-1], flush=True)
    print(table(["pipeline", "batch", "batches/s (median)", "images/s", "batches/s min-max"], rows))
    print("wrote", write("input_pipeline", {"results": results}))


if __name__ == "__main__":
    main()
