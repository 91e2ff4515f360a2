"""Framework overhead: training throughput of dlforge's Lightning path vs a hand-written PyTorch loop.

    DATA_DIR=../shared/data python -m benchmarks.overhead [--cases lenet textcnn dcgan] [--steps 40]

Same network, data, batch size and optimizer, in one process. The plain loop iterates the same
DataLoader, preprocesses like the data module and steps the optimizer; the Lightning path is
``trainer.fit`` on the model as ``train.py`` builds it (and with its default
``keep_freed_memory``, applied to the whole process: both sides), measured two ways: "lean" (no logger,
progress bar or checkpointing) and "default" (the CSV logger and rich progress bar of a normal run).

The two are interleaved step by step: after every Lightning step a callback runs one plain step
on a twin of the model (same initial weights, its own optimizer and data iterator). A shared
machine's speed drifts by tens of percent over seconds; steps that alternate every few
milliseconds see the same drift, so their ratio does not. Throughput is samples/s over windows
of ``--steps`` steps (the first window is warm-up and dropped); the overhead is the median over
windows of Lightning's time / the plain loop's time - 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from pytorch_lightning.callbacks import Callback

from benchmarks.common import cycle, table, write
from dlforge import CONF_DIR
from dlforge.build import lightning_advice_ignored
from dlforge.callbacks import ProgressBar
from dlforge.speed import keep_freed_memory
from dlforge.training import build_run

GLOVE = "${paths.data_dir}/glove/glove.6B.50d.top50k.txt"  # the shared copy; the config's default is 300-d
CASES = {
    "lenet": ["model=lenet", "data=mnist", "data.batch_size=128"],
    "textcnn": ["model=textcnn_seed000", "data=mr", "data.batch_size=100", f"data.glove.path={GLOVE}"],
    # the plain DCGAN step (plain_gan_step): no self-conditioning, which needs each image's cluster
    "dcgan": ["model=dcgan", "data=mnist", "data.batch_size=128", "model.net.clusters=0"],
}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class InterleavedPlainSteps(Callback):
    """After every Lightning training step, one plain step; the seconds of each, pairwise.

    ``lightning[i]`` runs from the end of plain step ``i`` to the end of the next Lightning step
    (everything Lightning does in between: hooks, data, logging, the step itself).
    """

    def __init__(self, plain_step: Callable[[], None]) -> None:
        self.plain_step = plain_step
        self.lightning: list[float] = []
        self.plain: list[float] = []
        self.mark: float | None = None

    def on_train_batch_end(self, *args: Any) -> None:
        sync()
        start = time.perf_counter()
        if self.mark is not None:
            self.lightning.append(start - self.mark)
        self.plain_step()
        sync()
        self.mark = time.perf_counter()
        if self.lightning:  # the first plain step has no Lightning step to pair with
            self.plain.append(self.mark - start)


def window_sums(seconds: list[float], steps: int) -> list[float]:
    """Seconds of consecutive windows of ``steps`` steps, the first (warm-up) window dropped."""
    sums = [sum(seconds[i : i + steps]) for i in range(0, len(seconds) - steps + 1, steps)]
    return sums[1:]


def compose_case(overrides: list[str]) -> Any:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "trainer=cpu" if not torch.cuda.is_available() else "trainer=gpu",
                "trainer.precision=32",
                "data.val_size=0.05",
                *overrides,  # last: a case may set its own precision
            ],
        )
    cfg.paths.output_dir = tempfile.mkdtemp(prefix="overhead_")
    return cfg


def is_gan(cfg: Any) -> bool:
    return cfg.model.kind == "gan"


def interleaved_windows(
    cfg: Any, windows: int, steps: int, default_callbacks: bool, plain: bool = True
) -> tuple[list[float], list[float], int]:
    """Seconds per window of the Lightning path and of the plain loop run alternately (``plain=False``:
    the Lightning path alone); the batch size."""
    plain_step = plain_stepper(cfg) if plain else lambda: None
    pl.seed_everything(0, verbose=False)
    datamodule, model, _ = build_run(cfg)
    timer = InterleavedPlainSteps(plain_step)
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        # a GAN's manual optimization counts two optimizer steps per batch
        max_steps=((windows + 1) * steps + 1) * (2 if is_gan(cfg) else 1),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=pl.loggers.CSVLogger(cfg.paths.output_dir) if default_callbacks else False,
        enable_checkpointing=False,
        enable_progress_bar=default_callbacks,
        enable_model_summary=False,
        callbacks=[timer, *([ProgressBar()] if default_callbacks else [])],
        default_root_dir=cfg.paths.output_dir,
    )
    with lightning_advice_ignored():
        trainer.fit(model, datamodule=datamodule)
    return window_sums(timer.lightning, steps), window_sums(timer.plain, steps), datamodule.batch_size


def plain_classifier_step(model: Any, datamodule: Any, device: torch.device) -> Callable[[Any], None]:
    optimizer = model.configure_optimizers()["optimizer"]

    def step(batch: Any) -> None:
        inputs, labels = (t.to(device, non_blocking=True) for t in batch)
        if hasattr(datamodule, "preprocess"):
            inputs = datamodule.preprocess(inputs, augment=False)
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def plain_gan_step(model: Any, datamodule: Any, device: torch.device) -> Callable[[Any], None]:
    """The DCGAN step of ``dlforge.models.GAN`` (no smoothing, no instance noise) written by hand."""
    opt_g, opt_d = model.configure_optimizers()  # no scheduler: the two optimizers
    generator, discriminator = model.generator, model.discriminator

    def step(batch: Any) -> None:
        images = datamodule.preprocess(batch[0].to(device, non_blocking=True), augment=False)
        real = images * 2 - 1
        fake = generator(torch.randn(real.shape[0], model.latent_dim, device=device), None)
        real_logits, fake_logits = discriminator(real, None), discriminator(fake.detach(), None)
        d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        d_loss = d_loss + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        discriminator.requires_grad_(False)  # the generator's step leaves the discriminator alone
        g_logits = discriminator(fake, None)
        g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        discriminator.requires_grad_(True)

    return step


def plain_stepper(cfg: Any) -> Callable[[], None]:
    """One hand-written training step per call on a twin of the model (same seed, same initial
    weights), pulling batches from its own iterator over the same data module."""
    pl.seed_everything(0, verbose=False)
    datamodule, model, _ = build_run(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).train()
    step = (plain_gan_step if is_gan(cfg) else plain_classifier_step)(model, datamodule, device)
    batches = cycle(lambda: iter(datamodule.train_dataloader()))
    return lambda: step(batches())


HEADER = [
    "case",
    "lightning path",
    "batch",
    "plain loop samples/s",
    "lightning samples/s",
    "overhead (median)",
    "overhead (range)",
]


def measure(case: str, overrides: Sequence[str], steps: int, windows: int, rounds: int) -> Iterator[dict]:
    """The lean and the default Lightning path of one case, each interleaved with the plain loop
    over ``rounds`` runs of ``windows`` timed windows of ``steps`` steps: one result per path."""
    cfg = compose_case([*CASES[case], *overrides])
    for path in ("lean", "default"):
        lightning, plain = [], []
        for _ in range(rounds):
            seconds, plain_seconds, batch = interleaved_windows(cfg, windows, steps, path == "default")
            lightning += seconds
            plain += plain_seconds
        yield {
            "case": case,
            "path": path,
            "overrides": [*CASES[case], *overrides],
            "batch_size": batch,
            "window_seconds": {"lightning": lightning, "plain": plain},
            "samples_per_s": {
                name: statistics.median(steps * batch / t for t in times)
                for name, times in (("plain", plain), ("lightning", lightning))
            },
            "overhead": statistics.median(a / b - 1 for a, b in zip(lightning, plain, strict=True)),
        }


def row(result: dict) -> list:
    """A result as a row of :data:`HEADER`."""
    seconds = result["window_seconds"]
    overheads = [a / b - 1 for a, b in zip(seconds["lightning"], seconds["plain"], strict=True)]
    rate = result["samples_per_s"]
    return [
        result["case"],
        result["path"],
        result["batch_size"],
        rate["plain"],
        rate["lightning"],
        f"{100 * result['overhead']:+.1f}%",
        f"{100 * min(overheads):+.1f}% .. {100 * max(overheads):+.1f}%",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=40, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=8, help="timed windows per run (after a warm-up one)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each Lightning path")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides for every case")
    parser.add_argument(
        "--malloc-default", action="store_true", help="glibc's own malloc (keep_freed_memory=false)"
    )
    parser.add_argument("--name", default=None, help="results file name (default: overhead[_malloc_default])")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = False if args.malloc_default else keep_freed_memory()  # as train.py does by default
    rows, results = [], []
    for case in args.cases:
        for result in measure(case, args.overrides, args.steps, args.windows, args.rounds):
            results.append(result)
            rows.append(row(result))
            print(rows[-1], flush=True)
    print(table(HEADER, rows))
    print(
        "wrote",
        write(
            args.name or ("overhead_malloc_default" if args.malloc_default else "overhead"),
            {
                "results": results,
                "steps_per_window": args.steps,
                "threads": torch.get_num_threads(),
                "keep_freed_memory": kept,
            },
        ),
    )


if __name__ == "__main__":
    main()
