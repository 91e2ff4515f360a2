"""The GAN family's stabilizers, measured: FID, class balance and CPU-minutes of each recipe.

Every run goes through `train.py`'s own path (`dlforge.training.train` on the composed config) and is
scored with the docs' one FID recipe: the penultimate layer of seed 002's LeNet trained 20 epochs on
the same data set (`benchmarks/sample_quality.py` trains it once), 10,000 samples against the 10,000
test images. A case also reports the share of each class among the samples, as that LeNet reads them,
and for a conditional GAN the share of samples recognized as the class asked for.

    DATA_DIR=../shared/data python -m benchmarks.gan_recipes [--cases default no_ema ...] [--seeds 0 1 2]
    python -m benchmarks.gan_recipes --table        # the docs' tables from the JSON

Cases with ``curve`` save a checkpoint every ``--curve-every`` generator steps and score each, for the
FID-against-minutes figure (the clock stops while a checkpoint is saved). Results go to
benchmarks/results/gan_recipes.json after every run (rerun-safe: a case and seed already there is
skipped; one stopped before it was recorded resumes from its last epoch's checkpoint). Run dirs:
outputs/gan_recipes/.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from benchmarks.common import machine, table
from benchmarks.sample_quality import config, extractor
from dlforge.checkpoint import load_model
from dlforge.data import FashionMNISTDataModule, MNISTDataModule
from dlforge.quality import SampleQuality
from dlforge.training import train

RESULTS = Path(__file__).resolve().parent / "results" / "gan_recipes.json"
RUNS = Path("outputs/gan_recipes")
SAMPLES = 10_000
#: a sample the LeNet gives at least this probability is one it is sure of (``--sure``)
SURE = 0.9


def same_lr(lr: float) -> tuple[str, str]:
    """The same learning rate for G and D."""
    return (f"model.optimizer_g.lr={lr:g}", f"model.optimizer_d.lr={lr:g}")


#: the defaults before this study: BCE + batch-norm discriminator, raw generator, 64 channels
OLD_DEFAULT = (
    "model.loss=non_saturating",
    "model.net.spectral_norm=false",
    "model.ema_decay=0",
    "model.net.features=64",
    "model.optimizer_g.lr=2e-4",
    "model.optimizer_d.lr=2e-4",
    "model.optimizer_g.betas=[0.5,0.999]",
    "model.optimizer_d.betas=[0.5,0.999]",
)
#: the default before issue 28's measurement chose today's (conf/model/dcgan.yaml): DCGAN's batch-norm
#: discriminator and BCE, with the weight average, 6 epochs. The cases in ``BEFORE`` were measured then:
#: their overrides are relative to it, and a rerun puts it first
PREVIOUS = (
    "model.net.clusters=0",
    *same_lr(2e-4),
    "model.loss=non_saturating",
    "model.net.spectral_norm=false",
    "model.net.minibatch_std=false",
    "trainer.max_epochs=6",
)
#: the first candidate default, around which the ablation was measured: hinge loss and a spectrally
#: normalized discriminator (with the weight average and 32 channels, as today's default)
HINGE_SN = ("model.loss=hinge", "model.net.spectral_norm=true")
#: the issue's budget: 10 epochs (8,600 generator steps) are about 5 minutes of the default alone on
#: 2 cores (default_alone: 5,000 steps in 2.85 minutes); a fixed step count, as minutes on a shared CPU vary
TEN_EPOCHS = ("trainer.max_epochs=10",)
#: the three single options that helped, together: least squares, spectral norm, minibatch std
LS_MBSTD = ("model.loss=least_squares", "model.net.minibatch_std=true")
SN_LS_MBSTD = ("model.net.spectral_norm=true", *LS_MBSTD)


#: the ablation from today's default: each case turns one option off, swaps the loss or turns one on
ABLATION: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "abl_default": ("mnist", (), False),
    "abl_no_clusters": ("mnist", ("model.net.clusters=0",), False),
    "abl_no_ema": ("mnist", ("model.ema_decay=0",), False),
    "abl_batchnorm_d": ("mnist", ("model.net.spectral_norm=false",), False),
    "abl_no_mbstd": ("mnist", ("model.net.minibatch_std=false",), False),
    "abl_non_saturating": ("mnist", ("model.loss=non_saturating",), False),
    "abl_hinge": ("mnist", ("model.loss=hinge",), False),
    "abl_wgan_gp": ("mnist", ("model.loss=wgan_gp",), False),
    "abl_r1": ("mnist", ("model.r1_gamma=1",), False),
    "abl_lazy_r1": ("mnist", ("model.r1_gamma=1", "model.r1_every=16"), False),  # StyleGAN2's lazy R1
    # the same 6 epochs in batches of 32 (twice the steps, each about half the cost) or 128
    "abl_batch32": ("mnist", ("data.batch_size=32",), False),
    "abl_batch128": ("mnist", ("data.batch_size=128",), False),
    # Adam without momentum (beta1 0, beta2 0.99: StyleGAN's and BigGAN's) in place of DCGAN's 0.5/0.999
    "abl_adam_beta0": (
        "mnist",
        ("model.optimizer_g.betas=[0,0.99]", "model.optimizer_d.betas=[0,0.99]"),
        False,
    ),
    "abl_ttur": ("mnist", ("model.optimizer_g.lr=1.6e-3",), False),  # D's rate twice G's
    "abl_diffaugment": ("mnist", ("model.diffaugment=[translation,cutout]",), False),
}
#: the conditional GAN's recipe (conf/model/cgan.yaml: hinge, 10 epochs) against the loss that won the
#: DCGAN's ablation: least squares
CGAN_ABLATION: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "cgan_abl_default": ("mnist", ("model=cgan",), False),
    "cgan_abl_least_squares": ("mnist", ("model=cgan", "model.loss=least_squares"), False),
}

#: name -> (data set, overrides after data=<data set>, with the FID-against-minutes curve)
CASES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    # the previous default (PREVIOUS): DCGAN's batch-norm discriminator and BCE, weight average, 6 epochs
    "default": ("mnist", (), False),
    "default_alone": ("mnist", (), True),  # run alone on both cores: a user's minutes
    "default_long": ("mnist", ("trainer.max_epochs=16",), True),  # where the default's curve goes
    "default_xlong": ("mnist", ("trainer.max_epochs=60",), True),  # ... and goes on going
    "fashion": ("fashion_mnist", (), False),
    "old_default": ("mnist", OLD_DEFAULT, True),
    # the ablation: one option at a time turned on or off from HINGE_SN
    "hinge_sn": ("mnist", HINGE_SN, True),
    "hinge_sn_alone": ("mnist", HINGE_SN, True),  # run alone on both cores: a user's minutes
    "hinge_sn_no_ema": ("mnist", (*HINGE_SN, "model.ema_decay=0"), False),
    "hinge_bn": ("mnist", ("model.loss=hinge",), False),
    "sn_non_saturating": ("mnist", ("model.net.spectral_norm=true",), False),
    "sn_least_squares": ("mnist", ("model.net.spectral_norm=true", "model.loss=least_squares"), False),
    "sn_wgan_gp": ("mnist", ("model.net.spectral_norm=true", "model.loss=wgan_gp"), False),
    "hinge_sn_ttur": ("mnist", (*HINGE_SN, "model.optimizer_g.lr=1e-4", "model.optimizer_d.lr=4e-4"), False),
    "hinge_sn_r1": ("mnist", (*HINGE_SN, "model.r1_gamma=1"), False),
    "hinge_sn_minibatch_std": ("mnist", (*HINGE_SN, "model.net.minibatch_std=true"), False),
    "hinge_sn_diffaugment": ("mnist", (*HINGE_SN, "model.diffaugment=[translation,cutout]"), False),
    "fashion_hinge_sn": ("fashion_mnist", HINGE_SN, False),
    "fashion_sn_least_squares": (
        "fashion_mnist",
        ("model.net.spectral_norm=true", "model.loss=least_squares"),
        False,
    ),
    # the conditional GAN (conf/model/cgan.yaml: HINGE_SN with a projection discriminator)
    "cgan": ("mnist", ("model=cgan",), False),
    "cgan_input_channels": ("mnist", ("model=cgan", "model.net.projection=false"), False),
    "seed002": ("mnist", ("model=gan_seed002",), False),
    # combinations the one-at-a-time ablation suggests, each given the budget (TEN_EPOCHS)
    "default_10ep": ("mnist", TEN_EPOCHS, True),
    "sn_ls_mbstd_10ep": ("mnist", (*TEN_EPOCHS, *SN_LS_MBSTD), True),
    "ls_mbstd_10ep": ("mnist", (*TEN_EPOCHS, *LS_MBSTD), True),
    "sn_ls_mbstd_r1_10ep": ("mnist", (*TEN_EPOCHS, *SN_LS_MBSTD, "model.r1_gamma=1"), True),
    # the new default (SN_LS_MBSTD, 7 epochs: its steps cost more, so 7 epochs fit the 5 minutes)
    "sn_ls_mbstd_7ep": ("mnist", ("trainer.max_epochs=7", *SN_LS_MBSTD), False),
    # that default (SEVEN_EPOCHS), run alone on both cores: a user's minutes, with its curve
    "new_default_alone": ("mnist", (), True),
    # after the minibatch-std speed-up (a step costs 34 ms, not 66), what 10 epochs (5 minutes) give
    # with learning rates doubled from 2e-4 (one seed each), and with a generator twice as wide
    "lr4e4_10ep": ("mnist", (*TEN_EPOCHS, *same_lr(4e-4)), True),
    "lr8e4_10ep": ("mnist", (*TEN_EPOCHS, *same_lr(8e-4)), True),
    "lr16e4_10ep": ("mnist", (*TEN_EPOCHS, *same_lr(1.6e-3)), True),
    "lr32e4_10ep": ("mnist", (*TEN_EPOCHS, *same_lr(3.2e-3)), True),
    "lr8e4_g64_10ep": ("mnist", (*TEN_EPOCHS, *same_lr(8e-4), "model.net.generator_features=64"), True),
    # lr32e4_10ep alone on both cores (a user's minutes): 5.3 minutes, so today's default trains 9 epochs
    "lr32e4_10ep_alone": ("mnist", (*TEN_EPOCHS, *same_lr(3.2e-3)), True),
    # today's default (lr 3.2e-3, 9 epochs): alone on both cores (a user's minutes), its curve further
    # on, Fashion-MNIST (10 epochs), and the conditional GAN at the same rate
    "default_now_alone": ("mnist", (), True),
    "default_now_20ep": ("mnist", ("trainer.max_epochs=20",), True),
    "fashion_default_now": ("fashion_mnist", TEN_EPOCHS, False),
    "cgan_lr32e4_10ep": ("mnist", ("model=cgan", *TEN_EPOCHS, *same_lr(3.2e-3)), False),
    # where the conditional GAN's curve goes, and one more doubling of the rate
    "cgan_20ep": ("mnist", ("model=cgan", "trainer.max_epochs=20"), True),
    "lr64e4_10ep": ("mnist", (*TEN_EPOCHS, *same_lr(6.4e-3)), True),
    # InfoGAN's categorical code (no labels): 10 categories, which can come to name the digits
    "info10": ("mnist", ("model.net.codes=10",), True),  # (clusters=0: UNCLUSTERED)
    # a generator twice as wide at today's rate (1.3x the CPU time a step), 10 epochs with its curve
    "g64_10ep": ("mnist", (*TEN_EPOCHS, "model.net.generator_features=64"), True),
    # self-conditioning (no labels): 20 to 200 online k-means clusters of the real images stand in for
    # the classes the conditional GAN is given, read by a projection discriminator
    "clusters20": ("mnist", ("model.net.clusters=20",), True),
    "clusters50": ("mnist", ("model.net.clusters=50",), True),
    "clusters100": ("mnist", ("model.net.clusters=100",), True),
    "clusters200": ("mnist", ("model.net.clusters=200",), True),
    # the self-conditioned default (conf/model/dcgan.yaml: 100 clusters, 6 epochs): alone on both cores
    # (a user's minutes), at the 9 epochs of the unclustered default alone, more seeds (at 1 thread),
    # its curve further on, and Fashion-MNIST at 10 epochs as fashion_default_now
    "clustered_alone": ("mnist", (), False),
    "clustered_9ep_alone": ("mnist", ("trainer.max_epochs=9",), True),
    "clustered": ("mnist", (), False),
    "clustered_20ep": ("mnist", ("trainer.max_epochs=20",), True),
    "fashion_clustered": ("fashion_mnist", TEN_EPOCHS, False),
    # the learning rate decayed to 0 over the run's epochs (cosine, stepped each epoch), so the last
    # epochs settle instead of ending mid-oscillation at 3.2e-3
    "cosine": ("mnist", ("scheduler=cosine",), True),
    # a shorter weight average (about 500 steps, not 1,000): the generator still improves fast at the
    # end, and a long average lags it; the training itself is the default's to the last bit. Measured:
    # no gain, as the average's warm-up, not ema_decay, sets its decay within 6 epochs (docs/gan.md)
    "ema998": ("mnist", ("model.ema_decay=0.998",), True),
    # where Fashion-MNIST's self-conditioned curve goes
    "fashion_clustered_20ep": ("fashion_mnist", ("trainer.max_epochs=20",), True),
    # ... and further: the 20-epoch run continued from its last checkpoint to 40 epochs (RESUMED), and
    # the conditional GAN's 10-epoch run (cgan_abl_default) continued to 40
    "fashion_clustered_40ep": ("fashion_mnist", ("trainer.max_epochs=40",), True),
    "cgan_40ep": ("mnist", ("model=cgan", "trainer.max_epochs=40"), True),
    # the conditional GAN's own recipe draws thicker, cleaner strokes: its loss (hinge), and its
    # discriminator without the minibatch std too, in place of today's default's, at 10 epochs
    "hinge_10ep": ("mnist", (*TEN_EPOCHS, "model.loss=hinge"), False),
    "hinge_no_mbstd_10ep": (
        "mnist",
        (*TEN_EPOCHS, "model.loss=hinge", "model.net.minibatch_std=false"),
        False,
    ),
    # the ablation around today's default (conf/model/dcgan.yaml, 6 epochs), seeds 0-2 where the
    # session's time allowed (--table lists each case's), all scored by the one-thread LeNet
    # (sample_quality.extractor): each option it has turned off, its loss swapped, each it leaves off
    # turned on
    **ABLATION,
    **CGAN_ABLATION,
}


#: cases that continue another case's run of the same seed from its last checkpoint (Lightning restores
#: the weights, the weight average, the clusters, the optimizers and the step counts; not the random
#: state, so the data order from there on differs from one uninterrupted run's); their curves' seconds
#: count from the resumption
RESUMED = {"fashion_clustered_40ep": "fashion_clustered_20ep", "cgan_40ep": "cgan_abl_default"}
#: the default of the morning of 2026-12-07 (SN_LS_MBSTD, lr 2e-4, 7 epochs), relative to which the cases
#: in AT_SEVEN_EPOCHS list their overrides (the lr* cases set both epochs and rate): a rerun puts it first
SEVEN_EPOCHS = ("trainer.max_epochs=7", *same_lr(2e-4), "model.net.clusters=0")
AT_SEVEN_EPOCHS = frozenset({"sn_ls_mbstd_7ep", "new_default_alone", "lr4e4_10ep", "lr8e4_10ep",
                             "lr16e4_10ep", "lr32e4_10ep", "lr8e4_g64_10ep", "lr32e4_10ep_alone",
                             "lr64e4_10ep"})  # fmt: skip
#: the conditional GAN's cases measured before it took dcgan's 3.2e-3 and 10 epochs, with their settings
CGAN_BEFORE = ("trainer.max_epochs=6", *same_lr(2e-4))
CGAN_AT_2E4 = frozenset({"cgan", "cgan_input_channels"})
#: the cases measured on 2026-12-07, relative to conf/model/dcgan.yaml as it is (self-conditioned) or
#: with every setting they need given; those in UNCLUSTERED ran before self-conditioning was the
#: default, and a rerun gives them NO_CLUSTERS first (model=cgan and model=gan_seed002 have none)
TODAY = frozenset({"seed002", "default_now_alone", "default_now_20ep", "fashion_default_now",
                   "cgan_lr32e4_10ep", "cgan_20ep", "info10", "g64_10ep",
                   "hinge_10ep", "hinge_no_mbstd_10ep", "clusters20", "clusters50",
                   "clusters100", "clusters200", "clustered_alone", "clustered_9ep_alone",
                   "clustered", "clustered_20ep", "fashion_clustered", "cosine", "ema998",
                   "fashion_clustered_20ep", *RESUMED, *ABLATION, *CGAN_ABLATION})  # fmt: skip
UNCLUSTERED = frozenset({"default_now_alone", "default_now_20ep", "fashion_default_now", "info10",
                         "g64_10ep", "hinge_10ep", "hinge_no_mbstd_10ep"})  # fmt: skip
NO_CLUSTERS = ("model.net.clusters=0", "trainer.max_epochs=9")  # the default then (a case's epochs win)
#: the cases measured against PREVIOUS (every other DCGAN case)
BEFORE = frozenset(CASES) - AT_SEVEN_EPOCHS - CGAN_AT_2E4 - TODAY
#: the cases whose samples the figure shows
GRIDS = ("default", "default_now_alone", "default_now_20ep", "clustered_alone", "clustered_20ep")
#: the cases whose FID-against-minutes curves it draws (those measured of them)
CURVES = ("default_alone", "default_xlong", "sn_ls_mbstd_10ep", "new_default_alone", "lr8e4_10ep",
          "lr32e4_10ep", "lr8e4_g64_10ep", "lr32e4_10ep_alone", "default_now_alone", "default_now_20ep",
          "cgan_20ep", "g64_10ep", "clusters20", "clusters50", "clustered_9ep_alone",
          "clustered_20ep")  # fmt: skip
#: what a case's overrides amount to, where listing them would not fit a table cell
LABELS = {
    "old_default": "the old default: raw weights, 64 channels (OLD_DEFAULT)",
    "default": "the previous default (PREVIOUS)",
    "default_alone": "the previous default (PREVIOUS)",
    "new_default_alone": "the 7-epoch default (SEVEN_EPOCHS: lr 2e-4, 7 epochs)",
    "cgan": "model=cgan (CGAN_BEFORE: lr 2e-4, 6 epochs)",
    "cgan_input_channels": "model=cgan model.net.projection=false (CGAN_BEFORE)",
    "default_now_alone": "the default before self-conditioning (NO_CLUSTERS: no clusters, 9 epochs)",
}


class TimedCheckpoints(Callback):
    """Saves ``step_NNNNN.ckpt`` every ``every`` optimizer steps and records the training seconds
    spent until then (the clock stops while saving)."""

    def __init__(self, folder: Path, every: int) -> None:
        self.folder, self.every = folder, every
        self.points: list[dict[str, Any]] = []
        self.start = self.paused = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start, self.paused = time.perf_counter(), 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step // 2  # generator steps: each batch steps both optimizers (d_steps=1)
        if step % self.every or any(p["generator_steps"] == step for p in self.points):
            return
        pause = time.perf_counter()
        path = self.folder / f"step_{step:06d}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        self.points.append(
            {
                "generator_steps": step,
                "seconds": round(pause - self.start - self.paused, 1),
                "ckpt": str(path),
            }
        )
        self.paused += time.perf_counter() - pause


def inked(images: torch.Tensor) -> torch.Tensor:
    """Each image's share of pixels brighter than half (its strokes' area; thin strokes ink less)."""
    return (images > 0.5).float().flatten(1).mean(dim=1)


class Scorer:
    """The docs' recipe: LeNet features of 10,000 samples against the 10,000 test images."""

    def __init__(self, data: str) -> None:
        self.quality = SampleQuality(extractor(data), kid_subset_size=1000)
        module = {"mnist": MNISTDataModule, "fashion_mnist": FashionMNISTDataModule}[data](
            data_dir=str(Path(config("floor", ()).paths.data_dir)), download=False
        )
        module.setup("fit")
        for part in module.splits["test"].tensors[0][:SAMPLES].split(1000):
            self.quality.update_real(module.preprocess(part))
        self.module = module
        self._floor: dict[str, Any] | None = None

    @torch.no_grad()
    def floor(self) -> dict[str, Any]:
        """The same measure for 10,000 real training images: the best a generator can do."""
        if self._floor is None:
            for part in self.module.splits["train"].tensors[0][:SAMPLES].split(1000):
                self.quality.update_fake(self.module.preprocess(part))
            self._floor = self.quality.compute()
            self.quality.reset_fake()
        return self._floor

    @staticmethod
    def samples(model: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The same 10,000 samples of ``model`` every time (seeded), 500 at a time, with the classes
        asked of a conditional GAN (else None)."""
        generator = torch.Generator().manual_seed(1234)
        for _ in range(SAMPLES // 500):
            z = model.sample_latent(500, generator)
            labels = (
                torch.randint(model.num_classes, (500,), generator=generator) if model.num_classes else None
            )
            yield model.decode_latent(z, labels), labels

    @torch.no_grad()
    def sure(self, ckpt: str, threshold: float = SURE) -> dict[str, Any]:
        """How many of the 10,000 samples the LeNet is sure of (top probability >= ``threshold``) and
        the FID of those alone: how much of a case's FID is samples between classes."""
        kept, ink, first = 0, [], None
        for images, _ in self.samples(load_model(ckpt).eval()):
            first = images if first is None else first
            ink.append(inked(images))
            images = images[self.quality.classifier(images).softmax(dim=1).amax(dim=1) >= threshold]
            self.quality.update_fake(images)
            kept += len(images)
        fid = self.quality.compute()["fid"]
        self.quality.reset_fake()
        real_ink = inked(self.module.preprocess(self.module.splits["test"].tensors[0][:SAMPLES]))
        return {
            "threshold": threshold,
            "sure_share": kept / SAMPLES,
            "fid_sure": fid,
            "ink": float(torch.cat(ink).mean()),
            "real_ink": float(real_ink.mean()),
            **self.nearest(first),
        }

    def nearest(self, samples: torch.Tensor) -> dict[str, float]:
        """Copies? The median pixel distance (L2, [0, 1] pixels) from each of the first 500 samples to
        its nearest training image, against the same for 500 test images (which no model has seen): a
        generator that copies its training images sits far below the test images' distance."""
        train = self.module.preprocess(self.module.splits["train"].tensors[0]).flatten(1)
        test = self.module.preprocess(self.module.splits["test"].tensors[0][: len(samples)]).flatten(1)

        def median_nearest(images: torch.Tensor) -> float:
            return float(torch.cdist(images.flatten(1).float(), train.float()).amin(dim=1).median())

        return {"nearest_train_sample": median_nearest(samples), "nearest_train_test": median_nearest(test)}

    @torch.no_grad()
    def __call__(self, ckpt: str) -> dict[str, Any]:
        model = load_model(ckpt).eval()
        asked, recognized = [], []
        for images, labels in self.samples(model):
            self.quality.update_fake(images)
            if labels is not None:
                asked.append(labels)
                recognized.append(self.quality.classifier(images).argmax(dim=1))
        result = self.quality.compute()
        self.quality.reset_fake()
        counts = torch.tensor(result["class_counts"], dtype=torch.float)
        result["class_shares"] = (counts / counts.sum()).tolist()  # class_entropy: SampleQuality's
        if asked:
            asked_t, got = torch.cat(asked), torch.cat(recognized)
            result["asked_class_acc"] = [
                float((got[asked_t == k] == k).float().mean()) for k in range(model.num_classes)
            ]
        return result


def run(
    name: str, seed: int, curve_every: int | None, scorers: dict[str, Scorer], threads: int | None = None
) -> dict[str, Any]:
    data, overrides, curve = CASES[name]
    run_name = f"{name}_seed{seed}"
    threading = (f"threads={threads}",) if threads else ()
    bases = (
        (BEFORE, PREVIOUS),
        (AT_SEVEN_EPOCHS, SEVEN_EPOCHS),
        (CGAN_AT_2E4, CGAN_BEFORE),
        (UNCLUSTERED, NO_CLUSTERS),
    )
    base = next((settings for cases, settings in bases if name in cases), ())
    resume = ()
    if name in RESUMED:
        last = last_checkpoint(RESUMED[name], seed)
        if not last.is_file():
            raise SystemExit(f"{name} continues {RESUMED[name]}: no {last}; run that case first")
        resume = (f"ckpt_path={last}",)
    elif (stopped := last_checkpoint(name, seed)).is_file() and not (
        RUNS / run_name / "metrics.json"
    ).is_file():
        # a run of this case stopped before training ended (train writes metrics.json at the end)
        resume = (f"ckpt_path={stopped}",)
        print(f"{run_name}: resuming from its last checkpoint (its fit_seconds will count from here)")
    cfg = config(
        run_name,
        (f"data={data}", *base, *overrides, f"seed={seed}", "test=false", *threading, *resume),
        runs=RUNS,
    )
    timed = None
    if curve and curve_every:
        timed = TimedCheckpoints(RUNS / run_name / "curve", curve_every)
    load_before = os.getloadavg()
    start = time.perf_counter()
    summary = train(cfg, [timed] if timed else ())
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    if data not in scorers:
        scorers[data] = Scorer(data)
        if data not in json.loads(RESULTS.read_text()).get("floors", {}) if RESULTS.is_file() else True:
            record(data, scorers[data].floor(), section="floors")
    result = {
        "data": data,
        "overrides": list(overrides),
        "seed": seed,
        "epochs": summary["epochs"],
        "global_step": summary["global_step"],
        "fit_seconds": summary["fit_seconds"],
        "threads": threads or torch.get_num_threads(),
        "run_seconds": round(seconds, 1),
        "loadavg_before": [round(x, 2) for x in load_before],  # 1, 5, 15 minutes
        "loadavg_after": [round(x, 2) for x in load_after],
        "quality": scorers[data](summary["last_checkpoint"]),
        **({"resumed_from": f"{RESUMED[name]}/seed{seed}"} if name in RESUMED else {}),
        **({"resumed": True} if resume and name not in RESUMED else {}),  # fit_seconds: the last part's
        # this machine's LeNet (trained on first use) scores real images against real ones so: a session
        # that trains it again gets other features, so FIDs compare as multiples of this
        "floor_fid": round(float(scorers[data].floor()["fid"]), 3),
    }
    if timed is not None:
        result["curve"] = [
            {**{k: v for k, v in p.items() if k != "ckpt"}, "fid": scorers[data](p["ckpt"])["fid"]}
            for p in timed.points
        ]  # the checkpoints' paths stay out of the JSON (they are this machine's)
    return result


def record(key: str, result: dict[str, Any], section: str = "runs") -> dict[str, Any]:
    """Add one run (or a floor) to the JSON, re-read under a lock: several workers may share the file."""
    RUNS.mkdir(parents=True, exist_ok=True)
    with open(RUNS / "gan_recipes.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"machine": machine(), "runs": {}}
        results.setdefault(section, {})[key] = result
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--curve-every", type=int, default=500, help="generator steps between curve points")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads of each run (default: all cores)"
    )
    parser.add_argument(
        "--sure", action="store_true", help="score the sure samples of the cases' seed-0 runs and stop"
    )
    parser.add_argument("--table", action="store_true", help="print the docs' tables of the JSON and stop")
    parser.add_argument(
        "--add-floors",
        action="store_true",
        help="record this machine's LeNet floor in the seed's runs of --cases that lack one, and stop",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        help="draw the FID-against-minutes figure (and samples; of --cases when given) and stop",
    )
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"machine": machine(), "runs": {}}
    if args.table:
        print(markdown(results))
        return
    if args.figure:
        figure(results, args.figure, args.cases if args.cases != list(CASES) else None)
        return
    scorers: dict[str, Scorer] = {}
    if args.add_floors:  # for runs scored by the LeNet on this machine before runs recorded their floor
        for seed in args.seeds:
            for name in args.cases:
                key, data = f"{name}/seed{seed}", CASES[name][0]
                if key not in results["runs"] or "floor_fid" in results["runs"][key]:
                    continue
                if data not in scorers:
                    scorers[data] = Scorer(data)
                floor_fid = round(float(scorers[data].floor()["fid"]), 3)
                results = record(key, {**results["runs"][key], "floor_fid": floor_fid})
                print(f"{key}: floor {floor_fid:.2f}", flush=True)
        return
    if args.sure:
        for name in args.cases:
            if f"{name}/seed0" not in results["runs"]:
                continue
            data = CASES[name][0]
            if data not in scorers:
                scorers[data] = Scorer(data)
            found = scorers[data].sure(str(last_checkpoint(name, 0)))
            record(name, found, section="sure")
            print(
                f"{name}: {100 * found['sure_share']:.1f}% sure, FID of those {found['fid_sure']:.1f}",
                flush=True,
            )
        return
    for seed in args.seeds:
        for name in args.cases:
            key = f"{name}/seed{seed}"
            if key in results["runs"]:
                print(f"{key}: done before, skipped", flush=True)
                continue
            results = record(key, run(name, seed, args.curve_every, scorers, args.threads))
            q = results["runs"][key]["quality"]
            shares = ", ".join(f"{100 * s:.1f}" for s in q["class_shares"])
            minutes = results["runs"][key]["fit_seconds"] / 60
            print(f"{key}: FID {q['fid']:.1f} in {minutes:.1f} min; classes % {shares}", flush=True)


def grouped(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The runs of each case (all seeds), in CASES' order."""
    cases: dict[str, list[dict[str, Any]]] = {}
    for key, result in results["runs"].items():
        cases.setdefault(key.split("/")[0], []).append(result)
    return {name: cases[name] for name in [*CASES, *cases] if name in cases}


def spread(values: list[float], digits: int = 1) -> str:
    """``mean ± std`` over seeds (the value alone for one seed)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The docs' tables, straight from the JSON: the ablation, the FID-against-minutes points and
    (``--sure``) the share and FID of the samples the LeNet is sure of."""
    rows = []

    def floor_of(run: dict[str, Any]) -> float:  # its LeNet's floor (runs that do not record it: floors)
        return run.get("floor_fid") or results["floors"][run["data"]]["fid"]

    for name, runs in grouped(results).items():
        shares = [r["quality"]["class_shares"] for r in runs]
        asked = [min(r["quality"]["asked_class_acc"]) for r in runs if "asked_class_acc" in r["quality"]]
        rows.append([
            name,
            runs[0]["data"],
            LABELS.get(name) or " ".join(runs[0]["overrides"]) or "(the default)",
            str(len(runs)),
            spread([r["quality"]["fid"] for r in runs]),
            f"{floor_of(runs[0]):.1f}",
            spread([r["quality"]["fid"] / floor_of(r) for r in runs]),
            spread([100 * min(s) for s in shares]) + " / " + spread([100 * max(s) for s in shares]),
            spread([r["quality"]["class_entropy"] for r in runs], 3),
            spread([100 * a for a in asked]) if asked else "-",
            spread([r["fit_seconds"] / 60 for r in runs]),
            str(runs[0]["threads"]),
        ])  # fmt: skip
    head = ["case", "data", "overrides", "seeds", "FID", "floor", "x floor", "rarest / commonest class %",
            "class entropy",
            "worst asked-class acc %", "train min", "threads"]  # fmt: skip
    curve_rows = [
        [name, str(p["generator_steps"]), f"{p['seconds'] / 60:.2f}", f"{p['fid']:.1f}"]
        for name, runs in grouped(results).items()
        for run in runs[:1]
        for p in run.get("curve", [])
    ]
    sure_rows = [
        [name, f"{results['runs'][f'{name}/seed0']['quality']['fid']:.1f}",
         f"{100 * found['sure_share']:.1f}", f"{found['fid_sure']:.1f}",
         f"{100 * found['ink']:.1f} ({100 * found['real_ink']:.1f})" if "ink" in found else "-",
         f"{found['nearest_train_sample']:.2f} ({found['nearest_train_test']:.2f})"
         if "nearest_train_sample" in found else "-"]
        for name, found in results.get("sure", {}).items()
    ]  # fmt: skip
    sure_head = ["case (seed 0)", "FID", f"sure samples (p >= {SURE}) %", "FID of the sure ones",
                 "inked pixels % (real)", "nearest training image (test images)"]  # fmt: skip
    return "\n\n".join([
        table(head, rows),
        *([ablation_table(results)] if "abl_default/seed0" in results["runs"] else []),
        *(
            [ablation_table(results, CGAN_ABLATION, "cgan_abl_default")]
            if "cgan_abl_default/seed0" in results["runs"]
            else []
        ),
        table(["case", "generator steps", "train min", "FID"], curve_rows),
        *([table(sure_head, sure_rows)] if sure_rows else []),
    ])  # fmt: skip


def ablation_table(
    results: dict[str, Any],
    cases: dict[str, tuple[str, tuple[str, ...], bool]] = ABLATION,
    base: str = "abl_default",
) -> str:
    """An ablation around a default (``base``): each case's FID over its seeds and its change from the
    default's run of the same seed (paired: a seed's runs share data order and first weights); for a
    conditional GAN also the worst asked-class accuracy."""
    runs = results["runs"]
    rows = []
    conditional = any("asked_class_acc" in runs[k]["quality"] for k in runs if k.split("/")[0] in cases)
    for name, (_, overrides, _) in cases.items():
        seeds = sorted(int(k.split("seed")[1]) for k in runs if k.split("/")[0] == name)
        if not seeds:
            continue
        fid = [runs[f"{name}/seed{s}"]["quality"]["fid"] for s in seeds]
        paired = {s: runs[f"{base}/seed{s}"]["quality"]["fid"] for s in seeds if f"{base}/seed{s}" in runs}
        change = [f - paired[s] for f, s in zip(fid, seeds, strict=True) if s in paired]
        quality = [runs[f"{name}/seed{s}"]["quality"] for s in seeds]
        shares = [q["class_shares"] for q in quality]
        rows.append([
            name, " ".join(overrides) or "(the default)", " ".join(map(str, seeds)), spread(fid),
            spread([f / runs[f"{name}/seed{s}"]["floor_fid"] for f, s in zip(fid, seeds, strict=True)]),
            spread(change) if name != base and change else "-",
            spread([100 * min(x) for x in shares]) + " / " + spread([100 * max(x) for x in shares]),
            *([spread([100 * min(q["asked_class_acc"]) for q in quality])] if conditional else []),
            spread([runs[f"{name}/seed{s}"]["fit_seconds"] / 60 for s in seeds]),
        ])  # fmt: skip
    head = ["case", "change from the default", "seeds", "FID", "x floor", "FID change (paired by seed)",
            "rarest / commonest class %", *(["worst asked-class %"] if conditional else []),
            "train min (1 thread)"]  # fmt: skip
    return table(head, rows)


def last_checkpoint(name: str, seed: int) -> Path:
    return RUNS / f"{name}_seed{seed}" / "checkpoints" / "last.ckpt"


def figure(results: dict[str, Any], path: Path, names: list[str] | None = None) -> None:
    """FID against training minutes for the cases with a curve, and samples of the last checkpoint of
    each case in ``GRIDS``; or, given ``names``, the curves of those and samples of those whose
    checkpoint is on this machine."""
    import matplotlib
    from matplotlib.figure import Figure
    from torchvision.utils import make_grid

    cases = grouped(results)
    chosen = names or CURVES
    curves = {name: cases[name][0] for name in chosen if name in cases and cases[name][0].get("curve")}
    grids = [name for name in GRIDS if name in cases]
    if names:
        grids = [n for n in names if n in cases and last_checkpoint(n, cases[n][0]["seed"]).is_file()]
    fig = Figure(figsize=(5.5 * bool(curves) + 2.4 * len(grids), 3.8), layout="constrained")
    widths = [2.2] * bool(curves) + [1] * len(grids)
    axes = list(fig.subplots(1, len(widths), width_ratios=widths, squeeze=False)[0])
    if curves:  # (a figure of sample grids alone has no curve panel)
        plot = axes.pop(0)
        colours = matplotlib.colormaps["tab20"].colors  # one colour per curve (the default cycle has 10)
        for (name, run), colour in zip(curves.items(), colours[::2] + colours[1::2], strict=False):
            points = run["curve"]
            label = f"{name} ({run['threads']} thread{'s' * (run['threads'] > 1)})"
            minutes, fids = [p["seconds"] / 60 for p in points], [p["fid"] for p in points]
            plot.plot(minutes, fids, marker="o", color=colour, label=label)
        floor = results["floors"]["mnist"]["fid"]
        plot.axhline(3 * floor, color="grey", linestyle="--", label=f"goal: 3x the floor ({3 * floor:.1f})")
        plot.axhline(2 * floor, color="grey", linestyle="-.", label=f"cgan's goal: 2x ({2 * floor:.1f})")
        plot.axvline(5, color="grey", linestyle=":", label="5 minutes")
        plot.set(xlabel="training minutes", ylabel="FID (LeNet features)", yscale="log",
                 title="MNIST: FID of 10,000 samples")  # fmt: skip
        plot.legend(fontsize=7)
    for ax, name in zip(axes, grids, strict=True):
        run = cases[name][0]
        ckpt = last_checkpoint(name, run["seed"])
        ax.imshow(make_grid(load_model(ckpt).eval().sample(36, seed=0), nrow=6).permute(1, 2, 0).numpy())
        ax.set_title(
            f"{name}\n{run['global_step'] // 2} G steps, FID {run['quality']['fid']:.0f}", fontsize=8
        )
        ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
