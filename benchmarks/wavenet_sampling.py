"""WaveNet sampling: the fast sampler (cached activations, Paine et al. 2016) against the naive one.

    python -m benchmarks.wavenet_sampling [--ckpt <wavenet checkpoint>] [--seconds 0.25] [--threads 1]

Networks: the checkpoint's (default: random weights of ``experiment=seed002_wavenet_digits``'s
CPU-sized net) and ``conf/model/wavenet.yaml``'s default net (random weights: speed does not depend
on them). For each and each batch size, measured in one process one after the other:

- fast: samples per second drawing ``--seconds`` of audio per clip (its cost per sample is constant);
- naive, steady state: what :meth:`WaveNet.generate_naive` computes per sample once a clip is longer
  than the receptive field (one pass over the receptive field and a draw), timed over 20 samples;
- the speed-up, and the real-time factor (samples/s over the 8 kHz rate).

Then, for the first network: both samplers end to end on ``--seconds`` of audio for one clip
(wall times), and whether they draw the same clips: in float64 exactly, and in float32 the share of
samples identical until the first difference (rounding differences between a convolution and a
matrix product can flip a draw that falls within ~1e-7 of a level's border).
"""

from __future__ import annotations

import argparse
import time

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
NAIVE_STEPS = 20


def config_net(overrides: list[str]) -> WaveNet:
    """The network a training config would build (random weights)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["data=spoken_digits", "model=wavenet", *overrides])
    return build_net(num_classes=10, **OmegaConf.to_container(cfg.model.net, resolve=True))


@torch.no_grad()
def naive_rate(net: WaveNet, batch: int) -> float:
    """Samples/s of the naive sampler in steady state: a pass over the receptive field, then a draw."""
    labels = torch.arange(batch) % 10
    window = torch.rand(batch, net.receptive_field + 1) * 2 - 1
    uniforms = torch.rand(NAIVE_STEPS, batch)
    net.draw(net(window, labels)[:, :, -1], uniforms[0], 1.0)  # warm-up
    start = time.perf_counter()
    for t in range(NAIVE_STEPS):
        net.draw(net(window, labels)[:, :, -1], uniforms[t], 1.0)
    return batch * NAIVE_STEPS / (time.perf_counter() - start)


def fast_rate(net: WaveNet, batch: int, steps: int) -> float:
    labels = torch.arange(batch) % 10
    uniforms = torch.rand(steps, batch)
    net.generate(labels, uniforms[:50])  # warm-up
    start = time.perf_counter()
    net.generate(labels, uniforms)
    return batch * steps / (time.perf_counter() - start)


def identical_share(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of each clip's samples equal until the first difference (1: identical), averaged."""
    return float(((a == b).int().cumprod(dim=1).sum(dim=1).float() / a.shape[1]).mean())


def end_to_end(net: WaveNet, steps: int) -> dict[str, float | bool]:
    """Both samplers on one clip of ``steps`` samples: wall times, float32 agreement, float64 equality."""
    labels, uniforms = torch.tensor([7]), torch.rand(steps, 1, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    fast = net.generate(labels, uniforms)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = net.generate_naive(labels, uniforms)
    naive_s = time.perf_counter() - start
    double = net.double()
    uniforms = torch.rand(steps, 2, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([3, 8])
    equal = torch.equal(double.generate(labels, uniforms), double.generate_naive(labels, uniforms))
    net.float()
    return {
        "samples": steps,
        "fast_s": round(fast_s, 2),
        "naive_s": round(naive_s, 2),
        "speedup": naive_s / fast_s,
        "float32_identical_share": identical_share(fast, naive),
        "float64_equal_2_clips": equal,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", help="a WaveNet checkpoint (default: random weights of the CPU config)")
    parser.add_argument("--seconds", type=float, default=0.25)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    first = (
        ("checkpoint", load_model(args.ckpt, WaveNetModel).net)
        if args.ckpt
        else ("cpu (seed002_wavenet_digits)", config_net(["experiment=seed002_wavenet_digits"]))
    )
    nets = dict([first, ("default (conf/model/wavenet.yaml)", config_net([]))])
    steps = round(args.seconds * RATE)
    rows, results = [], []
    for name, net in nets.items():
        net.eval()
        for batch in args.batches:
            fast, naive = fast_rate(net, batch, steps), naive_rate(net, batch)
            result = {
                "net": name,
                "receptive_field": net.receptive_field,
                "parameters": sum(p.numel() for p in net.parameters()),
                "batch": batch,
                "fast_samples_per_s": round(fast, 1),
                "naive_samples_per_s": round(naive, 1),
                "fast_real_time_factor": round(fast / RATE, 3),
                "speedup": round(fast / naive, 1),
            }
            results.append(result)
            rows.append([name, net.receptive_field, batch, round(fast), round(fast / RATE, 2), round(naive)])
            rows[-1].append(f"{fast / naive:.1f}x")
            print(rows[-1], flush=True)
    check = {"net": first[0], **end_to_end(first[1].eval(), steps)}
    print(
        table(
            [
                "net",
                "receptive field",
                "batch",
                "fast samples/s",
                "x real time",
                "naive samples/s",
                "speed-up",
            ],
            rows,
        )
    )
    print(f"end to end, one clip of {steps} samples: {check}")
    path = write(
        "wavenet_sampling",
        {"seconds": args.seconds, "naive_steps": NAIVE_STEPS, "rates": results, "check": check},
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
