"""Sample quality of the generative models, every FID from ONE extractor recipe.

The extractor recipe (named beside every FID in the docs): the penultimate layer (500 features) of
seed 002's LeNet trained 20 epochs on the same data set (`experiment=seed002_lenet_mnist`, with
`data=fashion_mnist` for Fashion-MNIST), the checkpoint of its last epoch. Each case trains its model
through `train.py`'s own path, then `python -m dlforge.evaluate` measures FID, KID and the
inception-style score of 10,000 samples against the 10,000 test images; the floor is 10,000 real
training images against the same test images.

    DATA_DIR=../shared/data python -m benchmarks.sample_quality [--cases dcgan_mnist vae16_mnist ...]

Results go to benchmarks/results/sample_quality.json as each case finishes; a case already there is
skipped (rerun-safe: delete its entry to measure it again). Run dirs: outputs/sample_quality/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from benchmarks.common import machine, table
from dlforge import CONF_DIR
from dlforge.data import FashionMNISTDataModule, MNISTDataModule
from dlforge.evaluate import evaluate
from dlforge.quality import SampleQuality
from dlforge.speed import keep_freed_memory
from dlforge.training import train

RESULTS = Path(__file__).resolve().parent / "results" / "sample_quality.json"
RUNS = Path("outputs/sample_quality")
#: 250 steps an epoch, with the GAN recipe these rows were measured with (before benchmarks/gan_recipes.py
#: chose today's defaults: hinge loss, spectral normalization, the generator's weight average)
GAN = (
    "model.net.features=32",
    "trainer.limit_train_batches=250",
    "data.batch_size=64",
    "model.loss=non_saturating",
    "model.net.spectral_norm=false",
    "model.net.minibatch_std=false",
    "model.ema_decay=0",
    "model.optimizer_g.lr=2e-4",
    "model.optimizer_d.lr=2e-4",
)
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (data set, overrides of train.py after data=<data set>)
    "dcgan_mnist": ("mnist", ("model=dcgan", *GAN, "trainer.max_epochs=10")),
    "cgan_mnist": ("mnist", ("model=cgan", *GAN, "trainer.max_epochs=6")),
    "dcgan_fashion_mnist": ("fashion_mnist", ("model=dcgan", *GAN, "trainer.max_epochs=12")),
    "vae16_mnist": ("mnist", ("experiment=seed003_vae_mnist",)),
    "vae2_mnist": ("mnist", ("experiment=seed003_vae_mnist", "model.latent_dim=2", "trainer.max_epochs=10")),
    "vae16_fashion_mnist": ("fashion_mnist", ("experiment=seed003_vae_mnist",)),
    "vae2_fashion_mnist": (
        "fashion_mnist",
        ("experiment=seed003_vae_mnist", "model.latent_dim=2", "trainer.max_epochs=10"),
    ),
}
SAMPLES = 10_000


def config(
    name: str, overrides: tuple[str, ...], config_name: str = "train", runs: Path = RUNS
) -> DictConfig:
    """The composed config of a benchmark run, its run dir ``runs/name``."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=["trainer=cpu", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(runs / name)
    return cfg


def extractor(data: str) -> str:
    """The recipe's LeNet for ``data`` (trained once, then reused). It trains on one thread, so its sums,
    weights and floor repeat (MNIST's, trained twice so: floor 10.70 both times; trained at torch's
    default, a fresh checkout's came out with another floor, 9.88 against 7.78)."""
    ckpt = RUNS / f"lenet20_{data}" / "checkpoints" / "last.ckpt"
    if not (RUNS / f"lenet20_{data}" / "metrics.json").is_file():  # written when training completed
        threads = torch.get_num_threads()
        overrides = ("experiment=seed002_lenet_mnist", f"data={data}", "threads=1")
        summary = train(config(f"lenet20_{data}", overrides))
        torch.set_num_threads(threads)  # train() sets the process's threads
        print(f"extractor lenet20_{data}: test/acc {summary['metrics']['test/acc']:.4f}", flush=True)
    return str(ckpt)


def floor(data: str, classifier: str) -> dict[str, Any]:
    """FID etc. of real training images against the test images, with the same extractor."""
    module = {"mnist": MNISTDataModule, "fashion_mnist": FashionMNISTDataModule}[data](
        data_dir=str(Path(config("floor", ()).paths.data_dir)), download=False
    )
    module.setup("fit")
    quality = SampleQuality(classifier, kid_subset_size=1000)
    test = module.splits["test"].tensors[0][:SAMPLES]
    train_images = module.splits["train"].tensors[0][:SAMPLES]
    for part in test.split(1000):
        quality.update_real(module.preprocess(part))
    for part in train_images.split(1000):
        quality.update_fake(module.preprocess(part))
    return quality.compute()


def measure(name: str, data: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    classifier = extractor(data)
    start = time.perf_counter()
    summary = train(config(name, (f"data={data}", *overrides, "test=false")))
    train_s = time.perf_counter() - start
    eval_cfg = config(
        f"{name}_eval",
        (
            f"ckpt_path={summary['last_checkpoint']}",
            f"data={data}",
            f"quality_classifier={classifier}",
            f"quality_samples={SAMPLES}",
        ),
        config_name="evaluate",
    )
    metrics = evaluate(eval_cfg)["metrics"]
    quality = json.loads((RUNS / f"{name}_eval" / "sample_quality.json").read_text())["test"]
    return {
        "data": data,
        "overrides": list(overrides),
        "epochs": summary["epochs"],
        "global_step": summary["global_step"],
        "train_seconds": round(train_s, 1),
        "extractor": f"LeNet, 20 epochs (experiment=seed002_lenet_mnist data={data}): {quality['extractor']}",
        "samples": SAMPLES,
        "test": {k: v for k, v in metrics.items() if k.startswith("test/")},
        "quality": quality,
    }


def markdown(results: dict[str, Any]) -> str:
    """The docs' tables, straight from the JSON: the GANs with the floors, then the VAEs."""

    def quality(q: dict[str, Any]) -> list[str]:
        return [
            f"{q['fid']:.1f}",
            f"{q['kid']:.3f} ± {q['kid_std']:.3f}",
            f"{q['inception_score']:.2f} ± {q['inception_score_std']:.2f}",
            ", ".join(map(str, q["class_counts"])),
        ]

    def training(case: dict[str, Any]) -> list[str]:
        return [
            case["data"],
            str(case["epochs"]),
            str(case["global_step"]),
            f"{case['train_seconds'] / 60:.1f}",
        ]

    cases = results["cases"]
    tail = ["FID", "KID", "inception-style score", "samples per class 0-9"]
    gans = [
        [name, *training(case), *quality(case["quality"])] for name, case in cases.items() if "gan" in name
    ] + [
        [name, case["data"], "-", "-", "-", *quality(case["quality"])]
        for name, case in cases.items()
        if "floor" in name
    ]

    def losses(case: dict[str, Any]) -> list[str]:
        return [f"{case['test'][f'test/{k}']:.4g}" for k in ("recon", "kl", "elbo", "mse")]

    vaes = [
        [name, *training(case), *losses(case), *quality(case["quality"])]
        for name, case in cases.items()
        if "vae" in name
    ]
    head = ["case", "data", "epochs", "optimizer steps", "train min"]
    return "\n\n".join([
        table([*head, *tail], gans),
        table([*head, "test recon", "test KL", "test ELBO", "test MSE/pixel", *tail], vaes),
    ])  # fmt: skip


def main() -> None:
    keep_freed_memory()  # as train.py's main does by default: timings comparable with earlier runs
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=[*CASES, "floor_mnist", "floor_fashion_mnist"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--table", action="store_true", help="print the docs' table of the JSON and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"machine": machine(), "cases": {}}
    results.setdefault("extractors", {})
    for name in args.cases:
        if name in results["cases"]:
            print(f"{name}: done before, skipped", flush=True)
            continue
        if name.startswith("floor_"):
            data = name.removeprefix("floor_")
            results["cases"][name] = {"data": data, "quality": floor(data, extractor(data))}
        else:
            results["cases"][name] = measure(name, *CASES[name])
        data = results["cases"][name]["data"]
        run = json.loads((RUNS / f"lenet20_{data}" / "metrics.json").read_text())
        results["extractors"][data] = {"test/acc": run["metrics"]["test/acc"], "epochs": run["epochs"]}
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")  # after every case: a cut run keeps them
        quality = results["cases"][name]["quality"]
        print(
            f"{name}: FID {quality['fid']:.1f}, KID {quality['kid']:.3f}, IS {quality['inception_score']:.2f}"
        )


if __name__ == "__main__":
    main()
