"""WaveNet sampling: the fast sampler (cached activations, Paine et al. 2016) against the naive one.

    python -m benchmarks.wavenet_sampling [--ckpt <wavenet checkpoint>] [--seconds 0.25] [--threads 1]

For each network (the checkpoint's, or random weights of ``experiment=seed002_wavenet_digits``'s
CPU-sized net and of ``conf/model/wavenet.yaml``'s default net) and batch size: samples per second
of both samplers drawing ``--seconds`` of audio per clip (from silence, so the naive sampler's window
grows to the receptive field and stays there), the real-time factor (samples/s over the 8 kHz rate)
and the speed-up, measured in one process, one after the other. Then whether the two draw the same
clips: in float64 (the same draws, exactly) and in float32 (rounding differences between a
convolution and a matrix product can flip a draw that falls within ~1e-7 of a level's border;
the share of identical samples until the first difference is reported).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchmarks.common import table, write
from dlforge import CONF_DIR
from dlforge.checkpoint import load_model
from dlforge.models import WaveNetModel
from dlforge.nets import build_net
from dlforge.nets.wavenet import WaveNet

RATE = 8000


def config_net(overrides: list[str]) -> WaveNet:
    """The network a training config would build (random weights)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["data=spoken_digits", "model=wavenet", *overrides])
    options = OmegaConf.to_container(cfg.model.net, resolve=True)
    return build_net(num_classes=10, **options)


def timed(sampler: Any, labels: torch.Tensor, uniforms: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    levels = sampler(labels, uniforms)
    return time.perf_counter() - start, levels


def first_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of each clip's samples equal until the first difference (1: identical), averaged."""
    same = (a == b).int().cumprod(dim=1).sum(dim=1).float() / a.shape[1]
    return float(same.mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", help="a WaveNet checkpoint (default: random weights of two configs)")
    parser.add_argument("--seconds", type=float, default=0.25)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.ckpt:
        nets = {"checkpoint": load_model(args.ckpt, WaveNetModel).net}
    else:
        nets = {
            "cpu (seed002_wavenet_digits)": config_net(["experiment=seed002_wavenet_digits"]),
            "default (conf/model/wavenet.yaml)": config_net([]),
        }
    steps = round(args.seconds * RATE)
    rows, results = [], []
    for name, net in nets.items():
        net = net.eval()
        for batch in args.batches:
            labels = torch.arange(batch) % 10
            uniforms = torch.rand(steps, batch, generator=torch.Generator().manual_seed(0))
            fast_s, fast = timed(net.generate, labels, uniforms)
            naive_s, naive = timed(net.generate_naive, labels, uniforms)
            result = {
                "net": name,
                "receptive_field": net.receptive_field,
                "parameters": sum(p.numel() for p in net.parameters()),
                "batch": batch,
                "samples_per_clip": steps,
                "fast_samples_per_s": batch * steps / fast_s,
                "naive_samples_per_s": batch * steps / naive_s,
                "speedup": naive_s / fast_s,
                "float32_identical_share": first_difference(fast, naive),
            }
            results.append(result)
            rows.append(
                [
                    name, net.receptive_field, batch, f"{result['fast_samples_per_s']:.0f}",
                    f"{result['fast_samples_per_s'] / RATE:.2f}", f"{result['naive_samples_per_s']:.0f}",
                    f"{result['speedup']:.1f}x", f"{result['float32_identical_share']:.3f}",
                ]
            )  # fmt: skip
            print(rows[-1], flush=True)
        double = net.double()
        labels = torch.arange(2)
        uniforms = torch.rand(steps, 2, generator=torch.Generator().manual_seed(1))
        same = torch.equal(double.generate(labels, uniforms), double.generate_naive(labels, uniforms))
        results.append({"net": name, "float64_equal": same, "batch": 2, "samples_per_clip": steps})
        print(f"{name}: float64 fast == naive for 2 clips of {steps} samples: {same}", flush=True)
        net.float()
    header = ["net", "receptive field", "batch", "fast samples/s", "x real time", "naive samples/s"]
    print(table([*header, "speed-up", "float32 identical"], rows))
    print(f"written: {write('wavenet_sampling', {'seconds': args.seconds, 'results': results})}")


if __name__ == "__main__":
    main()
