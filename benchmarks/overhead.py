"""Framework overhead: training throughput of dlforge's Lightning path vs a hand-written PyTorch loop.

    DATA_DIR=../shared/data python -m benchmarks.overhead [--cases lenet textcnn dcgan] [--steps 50]

Same network, data, batch size and optimizer, in one process. The plain loop iterates the same
DataLoader, preprocesses like the data module and steps the optimizer; the Lightning path is
``trainer.fit`` on the model as ``train.py`` builds it, measured two ways: "lean" (no logger,
progress bar or checkpointing) and "default" (the CSV logger and rich progress bar of a normal run).
Throughput is samples/s, the median of timed windows of ``--steps`` steps after a warm-up window;
the cases alternate plain / lean / default to share the machine's drift.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from pytorch_lightning.callbacks import Callback

from benchmarks.common import table, write
from dlforge import CONF_DIR
from dlforge.train import build_run

GLOVE = "${paths.data_dir}/glove/glove.6B.50d.top50k.txt"  # the shared copy; the config's default is 300-d
CASES = {
    "lenet": ["model=lenet", "data=mnist", "data.batch_size=128"],
    "textcnn": ["model=textcnn_seed000", "data=mr", "data.batch_size=100", f"data.glove.path={GLOVE}"],
    "dcgan": ["model=dcgan", "data=mnist", "data.batch_size=128"],
}


class StepTimes(Callback):
    """Timestamps at the end of every training step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.times.append(time.perf_counter())


def window_rates(times: list[float], steps: int, batch: int) -> list[float]:
    """Samples/s of consecutive windows of ``steps`` steps, the first window (warm-up) dropped."""
    marks = times[::steps]
    return [steps * batch / (b - a) for a, b in itertools.pairwise(marks[1:])]


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
    return cfg.model._target_.endswith(".GAN")


def lightning_rates(cfg: Any, windows: int, steps: int, default_callbacks: bool) -> list[float]:
    pl.seed_everything(0, verbose=False)
    datamodule, model, _ = build_run(cfg)
    timer = StepTimes()
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
        callbacks=[timer, *([pl.callbacks.RichProgressBar()] if default_callbacks else [])],
        default_root_dir=cfg.paths.output_dir,
    )
    trainer.fit(model, datamodule=datamodule)
    return window_rates(timer.times, steps, datamodule.batch_size)


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


def plain_rates(cfg: Any, windows: int, steps: int) -> list[float]:
    pl.seed_everything(0, verbose=False)
    datamodule, model, _ = build_run(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).train()
    make_step = plain_gan_step if is_gan(cfg) else plain_classifier_step
    step = make_step(model, datamodule, device)
    times: list[float] = []
    loader = datamodule.train_dataloader()
    while len(times) < (windows + 1) * steps + 1:
        for batch in loader:
            step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())
            if len(times) >= (windows + 1) * steps + 1:
                break
    return window_rates(times, steps, datamodule.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=50, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of plain / lean / default")
    args = parser.parse_args()
    rows, results = [], []
    for case in args.cases:
        cfg = compose_case(CASES[case])
        rates: dict[str, list[float]] = {"plain": [], "lean": [], "default": []}
        for _ in range(args.rounds):
            rates["plain"] += plain_rates(cfg, args.windows, args.steps)
            rates["lean"] += lightning_rates(cfg, args.windows, args.steps, default_callbacks=False)
            rates["default"] += lightning_rates(cfg, args.windows, args.steps, default_callbacks=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        for name in ("lean", "default"):
            overhead = 100 * (med["plain"] / med[name] - 1)
            rows.append([case, name, med["plain"], med[name], f"{overhead:+.1f}%"])
        results.append({"case": case, "overrides": CASES[case], "samples_per_s": rates, "median": med})
        print(rows[-2:], flush=True)
    print(table(["case", "lightning path", "plain loop samples/s", "lightning samples/s", "overhead"], rows))
    print("wrote", write("overhead", {"results": results, "steps_per_window": args.steps}))


if __name__ == "__main__":
    main()
