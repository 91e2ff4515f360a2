"""Two local CPU "nodes" against one process on the same global batch: steps/s and the all-reduce's share.

    DATA_DIR=../shared/data python -m benchmarks.multinode [--steps 120] [--batch 64] [--repeats 2]

Both train LeNet on MNIST with ``train.py`` as a user starts it: one process with ``data.batch_size=B``
(``--batch``) and ``threads=T`` (the core count), against two processes on 127.0.0.1 (``trainer.num_nodes=2
trainer.devices=1``, gloo) with ``data.batch_size=B/2`` and ``threads=T/2`` each, so both use every core on
the same global batch. A callback times every training step (batch start to batch end, the optimizer step
and DDP's gradient all-reduce included); the first ``--warmup`` steps are dropped and steps/s is the
median step's inverse (per run, and over all runs); a step's CPU time (every process's, summed) is
also kept, since a shared machine's other jobs move the wall time but hardly the CPU time. The
all-reduce's share: after training, the two nodes all-reduce a buffer the size of LeNet's gradients
(what DDP sends each step) 50 times; its median time over the median step.
Runs alternate (one, two, one, two, ...) so both see the same drift of a shared machine. Writes
``results/multinode.json`` with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from benchmarks.common import table, write

REPO = Path(__file__).resolve().parents[1]


class StepTimes(Callback):
    """Each training step's seconds; after training, a gradient-sized all-reduce timed 50 times (when
    distributed); global rank 0 writes them to ``out``."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.steps: list[float] = []
        self.cpu: list[float] = []
        self.start = self.start_cpu = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self.start, self.start_cpu = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, *args: Any) -> None:
        self.steps.append(time.perf_counter() - self.start)
        self.cpu.append(time.process_time() - self.start_cpu)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        numel = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        reduce_s: list[float] = []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            buffer = torch.ones(numel)
            for _ in range(55):
                torch.distributed.barrier()
                start = time.perf_counter()
                torch.distributed.all_reduce(buffer)
                reduce_s.append(time.perf_counter() - start)
            reduce_s = reduce_s[5:]
        payload = {
            "steps_s": self.steps,
            "cpu_s": self.cpu,
            "all_reduce_s": reduce_s,
            "gradient_numel": numel,
        }
        Path(f"{self.out}.rank{trainer.global_rank}").write_text(json.dumps(payload))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(nodes: int, batch: int, threads: int, steps: int, folder: Path) -> dict[str, Any]:
    """One training run of ``nodes`` processes; the step times global rank 0 wrote."""
    out = folder / f"times_{nodes}.json"
    args = [
        "model=lenet", "data=mnist", f"data.batch_size={batch}", f"threads={threads}",
        "trainer.max_epochs=1", f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false", "callbacks.progress_bar=null",
        "test=false", "logger=csv", "+callbacks.step_times._target_=benchmarks.multinode.StepTimes",
        f"+callbacks.step_times.out={out}", f"hydra.run.dir={folder / f'run_{nodes}'}",
    ]  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    base |= {"PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    if nodes == 1:
        argv = [sys.executable, str(REPO / "train.py"), "trainer=cpu", *args]
        procs = [subprocess.Popen(argv, env=base, cwd=folder, stdout=subprocess.DEVNULL)]
    else:
        distributed = ["trainer=ddp_multinode", f"trainer.num_nodes={nodes}", "trainer.devices=1",
                       "trainer.accelerator=cpu"]  # fmt: skip
        argv = [sys.executable, str(REPO / "train.py"), *distributed, *args]
        envs = [{**base, "WORLD_SIZE": str(nodes), "NODE_RANK": str(rank)} for rank in range(nodes)]
        procs = [subprocess.Popen(argv, env=env, cwd=folder, stdout=subprocess.DEVNULL) for env in envs]
    try:
        codes = [proc.wait(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    if codes != [0] * nodes:
        raise SystemExit(f"{nodes} node(s): exit codes {codes}")
    ranks = [json.loads(Path(f"{out}.rank{rank}").read_text()) for rank in range(nodes)]
    # a step's CPU seconds: every process's together (a shared machine's load moves wall time, not these)
    return {**ranks[0], "cpu_s": [sum(step) for step in zip(*(r["cpu_s"] for r in ranks), strict=True)]}


def summary(times: list[dict[str, Any]], warmup: int, batch: int) -> dict[str, Any]:
    steps = [s for t in times for s in t["steps_s"][warmup:]]
    step = statistics.median(steps)
    reduce = [s for t in times for s in t["all_reduce_s"]]
    out = {
        "median_step_ms": round(step * 1e3, 2),
        "steps_per_s": round(1 / step, 1),
        "images_per_s": round(batch / step, 0),
        "per_run_steps_per_s": [round(1 / statistics.median(t["steps_s"][warmup:]), 1) for t in times],
        "best_run_steps_per_s": max(round(1 / statistics.median(t["steps_s"][warmup:]), 1) for t in times),
        "cpu_ms_per_step": round(statistics.median(s for t in times for s in t["cpu_s"][warmup:]) * 1e3, 2),
    }
    if reduce:
        out["all_reduce_ms"] = round(statistics.median(reduce) * 1e3, 3)
        out["all_reduce_share"] = round(statistics.median(reduce) / step, 3)
        out["gradient_numel"] = times[0]["gradient_numel"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64, help="the global batch")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    load_before = os.getloadavg()
    times: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            times[1].append(run(1, args.batch, cores, args.steps, Path(tmp)))
            times[2].append(run(2, args.batch // 2, max(1, cores // 2), args.steps, Path(tmp)))
    load_after = os.getloadavg()
    results = {
        "one_process": {"batch": args.batch, "threads": cores, **summary(times[1], args.warmup, args.batch)},
        "two_nodes": {
            "batch_per_node": args.batch // 2,
            "threads_per_node": max(1, cores // 2),
            "backend": "gloo, 127.0.0.1",
            **summary(times[2], args.warmup, args.batch),
        },
    }
    ratio = results["two_nodes"]["steps_per_s"] / results["one_process"]["steps_per_s"]
    payload = {
        "what": "LeNet on MNIST, global batch of --batch images: one process vs two local CPU nodes",
        "args": vars(args),
        "results": results,
        "two_nodes_over_one_process": round(ratio, 3),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }
    path = write("multinode", payload)
    rows = [
        ["one process", args.batch, results["one_process"]["steps_per_s"], "-", "-"],
        [
            "two nodes",
            f"{args.batch // 2} x 2",
            results["two_nodes"]["steps_per_s"],
            results["two_nodes"]["all_reduce_ms"],
            f"{100 * results['two_nodes']['all_reduce_share']:.0f}%",
        ],
    ]
    print(table(["run", "batch", "steps/s", "all-reduce ms", "all-reduce share"], rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
