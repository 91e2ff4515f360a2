"""GANs: the networks' shapes, adversarial training of both networks, checkpoints, precision, DDP."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from dlforge.checkpoint import load_model
from dlforge.errors import DlforgeError
from dlforge.models import GAN
from dlforge.nets import build_net
from dlforge.train import build_run, train
from tests.conftest import FAST
from tests.test_quality import classifier_run  # noqa: F401  (module fixture)

#: narrower DCGANs (16 channels where the paper has 64): the same code paths, a fraction of the time
NARROW = "model.net.features=16"


def logged(metrics_csv: Path, key: str) -> list[float]:
    with open(metrics_csv) as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


@pytest.mark.parametrize("name", ["dcgan", "cgan", "gan_seed002"])
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (1, 32), (3, 28)])
def test_nets_make_images_of_the_data_shape_and_one_logit_each(name: str, channels: int, size: int) -> None:
    widths = {} if name == "gan_seed002" else {"features": 8}
    net = build_net(
        name, in_channels=channels, height=size, width=size, num_classes=10, latent_dim=16, **widths
    )
    labels = torch.tensor([0, 3, 9])
    images = net.generator(torch.randn(3, 16), labels)
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    assert net.discriminator(images, labels).shape == (3,)
    assert net.conditional == (name == "cgan")


def test_conditional_generator_follows_its_label() -> None:
    net = build_net("cgan", in_channels=1, height=28, width=28, num_classes=10).eval()
    z = torch.randn(2, 100)
    sevens, threes = net.generator(z, torch.tensor([7, 7])), net.generator(z, torch.tensor([3, 3]))
    assert not torch.allclose(sevens, threes)
    one_hot = torch.nn.functional.one_hot(torch.tensor([7, 7]), 10).float()
    assert torch.allclose(net.generator(z, one_hot), sevens)  # class vectors work as labels


def test_nets_refuse_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="even sides"):
        build_net("dcgan", in_channels=1, height=27, width=27, num_classes=10)
    with pytest.raises(ValueError, match="class labels"):
        build_net("cgan", in_channels=1, height=28, width=28, num_classes=0)


def test_default_model_of_train_is_dcgan(make_cfg) -> None:
    cfg = make_cfg()
    assert cfg.model.kind == "gan" and cfg.model.net.name == "dcgan"
    assert cfg.model.optimizer_g.lr == 2e-4 and list(cfg.model.optimizer_d.betas) == [0.5, 0.999]


@pytest.mark.parametrize(
    ("model", "data"), [("dcgan", "mnist"), ("gan_seed002", "fashion_mnist"), ("cgan", "cifar10")]
)
def test_training_moves_both_losses_and_changes_both_networks(make_cfg, model: str, data: str) -> None:
    narrow = () if model == "gan_seed002" else (NARROW,)
    cfg = make_cfg(f"model={model}", f"data={data}", *FAST, *narrow, "trainer.max_epochs=1", "test=false")
    summary = train(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    _, initial, _ = build_run(cfg)  # the same seed: the weights train() started from
    trained = torch.load(summary["last_checkpoint"], weights_only=True)["state_dict"]
    for name, before in initial.state_dict().items():
        if name.endswith((".weight", ".bias")):
            assert not torch.equal(before, trained[name]), f"{name} did not change"
    assert any(k.startswith("generator.") for k in trained)
    assert any(k.startswith("discriminator.") for k in trained)
    out = Path(cfg.paths.output_dir)
    for key in ("train/d_loss_step", "train/g_loss_step"):
        values = logged(out / "metrics.csv", key)
        assert len(values) == 4 and len(set(values)) > 1, key
    # D(x), D(G(z)) are batch means of sigmoids, so by Jensen the discriminator's BCE loss is at least
    # -log D(x) - log(1 - D(G(z))): fails if they are logits, swapped, or from another batch
    d_loss, d_real, d_fake = (
        logged(out / "metrics.csv", f"train/{k}_step") for k in ("d_loss", "d_real", "d_fake")
    )
    assert len(d_real) == len(d_fake) == len(d_loss) == 4
    for loss, real, fake in zip(d_loss, d_real, d_fake, strict=True):
        assert 0 < real < 1 and 0 < fake < 1 and loss >= -math.log(real) - math.log(1 - fake) - 1e-4
    accuracies = logged(out / "metrics.csv", "val/d_acc")
    assert len(accuracies) == 1 and 0 <= accuracies[0] <= 1  # one validation: one value
    assert (out / "samples" / "epoch_000.png").is_file() and (out / "samples" / "progress.gif").is_file()


def test_k_discriminator_steps_smoothing_noise_and_schedule(make_cfg) -> None:
    cfg = make_cfg(
        *FAST,
        NARROW,
        "test=false",
        "model.d_steps=2",
        "model.label_smoothing=0.1",
        "model.instance_noise=0.2",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=0.5",
    )
    datamodule, model, trainer = build_run(cfg)
    trainer.fit(model, datamodule=datamodule)
    opt_g, opt_d = model.optimizers()
    steps = {
        name: next(iter(opt.state.values()))["step"].item() for name, opt in (("g", opt_g), ("d", opt_d))
    }
    assert steps == {"g": 4, "d": 8}  # 2 epochs x 4 batches; the generator on every 2nd batch
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5**2)
    noise = logged(Path(cfg.paths.output_dir) / "metrics.csv", "train/instance_noise_epoch")
    assert len(noise) == 2 and 0 < noise[1] < noise[0] < 0.2  # annealed towards 0


def test_plateau_scheduler_without_a_monitored_metric_is_refused_with_a_hint(make_cfg) -> None:
    _, model, _ = build_run(make_cfg("scheduler=plateau", "data.val_size=32"))  # a GAN monitors nothing
    with pytest.raises(DlforgeError, match=r"scheduler\.monitor=<logged metric>"):
        model.configure_optimizers()


@pytest.mark.parametrize(
    ("model", "monitor", "extra"),
    [
        ("dcgan", "val/g_loss", (NARROW,)),
        ("pix2pix", "val/l1", ("data=edges2mnist", "model.generator.channels=8", "model.generator.depth=3")),
    ],
)
def test_manual_optimization_models_step_plateau_schedulers_on_their_metric(
    make_cfg, model: str, monitor: str, extra: tuple
) -> None:
    # a threshold no epoch can beat: the plateau scheduler halves both learning rates after every epoch
    cfg = make_cfg(f"model={model}", *FAST, *extra, f"model.monitor={monitor}", "scheduler=plateau",
                   "scheduler.patience=0", "scheduler.threshold=1e9", "test=false")  # fmt: skip
    datamodule, module, trainer = build_run(cfg)
    trainer.fit(module, datamodule=datamodule)
    lrs = [opt.param_groups[0]["lr"] for opt in module.optimizers()]
    assert lrs == pytest.approx([2e-4 * 0.5**2] * 2)  # 2 epochs, generator and discriminator alike


def test_checkpoint_reloads_weights_only_and_generates_the_same(make_cfg) -> None:
    cfg = make_cfg("model=cgan", *FAST, NARROW, "trainer.max_epochs=1", "test=false")
    summary = train(cfg)
    raw = torch.load(summary["last_checkpoint"], weights_only=True)
    assert raw["dlforge"]["model"] == "gan" and raw["hyper_parameters"]["net"]["name"] == "cgan"
    model = load_model(summary["last_checkpoint"])
    assert isinstance(model, GAN) and model.num_classes == 10 and model.latent_dim == 100
    _, fresh, _ = build_run(cfg)
    fresh.load_state_dict(raw["state_dict"])
    fresh.eval()
    z, labels = torch.randn(4, 100), torch.tensor([1, 2, 3, 7])
    images = model.decode_latent(z, labels)
    assert images.shape == (4, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert torch.allclose(images, fresh.decode_latent(z, labels))
    assert torch.equal(
        model.sample(5, seed=3, labels=labels[:1].repeat(5)),
        model.sample(5, seed=3, labels=labels[:1].repeat(5)),
    )


def test_bf16_mixed_precision_runs_on_cpu(make_cfg) -> None:
    summary = train(make_cfg(*FAST, NARROW, "trainer.precision=bf16-mixed", "trainer.max_epochs=1"))
    metrics = summary["metrics"]
    assert summary["precision"] == "bf16-mixed"
    assert set(metrics) >= {"train/d_loss_epoch", "train/g_loss_epoch", "test/d_acc"}
    assert all(math.isfinite(metrics[k]) for k in ("train/d_loss_epoch", "train/g_loss_epoch", "test/d_acc"))


def test_quality_classifier_scores_samples_and_picks_the_best_by_fid(make_cfg, classifier_run) -> None:  # noqa: F811
    ckpt, _ = classifier_run
    cfg = make_cfg(
        *FAST,
        NARROW,
        "trainer.max_epochs=1",
        f"quality_classifier={ckpt}",
        "quality_samples=32",
        "model.monitor=val/fid",
        "test=false",
    )
    summary = train(cfg)
    assert summary["metrics"]["val/fid"] > 0 and summary["best_checkpoint"].endswith(".ckpt")
    report = json.loads((Path(cfg.paths.output_dir) / "sample_quality.json").read_text())
    assert report["val"]["extractor"].startswith("last.ckpt (convnet on mnist")
    assert sum(report["val"]["class_counts"]) == 32


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("dcgan", (NARROW,)),
        ("pix2pix", ("data=edges2mnist", "model.generator.channels=8", "model.generator.depth=3")),
    ],
)
def test_cli_ddp_trains_every_multi_network_model_on_two_cpu_processes(
    run_cli, tmp_path: Path, model: str, extra: tuple
) -> None:
    # each optimizer's backward leaves the other network unused: the run picks Lightning's
    # ddp_find_unused_parameters_true strategy for such models by itself
    result = run_cli(
        "train.py",
        f"model={model}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        *[o for o in FAST if not o.startswith("trainer=")],
        *extra,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "test=false",
        "callbacks.progress_bar=null",
        "hydra.run.dir=outputs/ddp",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "outputs" / "ddp" / "metrics.json").read_text())
    assert summary["model"] == model and summary["device"] == "cpu x2"
    assert math.isfinite(summary["metrics"]["train/g_loss_epoch"])
    assert load_model(summary["last_checkpoint"]).kind == summary["kind"]


def test_validation_judges_with_batch_statistics_and_leaves_running_ones_alone() -> None:
    from dlforge.models.gan import batch_statistics

    net = build_net("dcgan", in_channels=1, height=28, width=28, num_classes=10, features=8)
    discriminator = net.discriminator
    discriminator.train()
    discriminator(torch.randn(16, 1, 28, 28))  # running statistics now differ from any batch's
    discriminator.eval()
    state = {k: v.clone() for k, v in discriminator.state_dict().items()}
    images = torch.randn(8, 1, 28, 28) * 3 + 1
    with batch_statistics(discriminator):
        judged = discriminator(images)
    assert all(torch.equal(state[k], v) for k, v in discriminator.state_dict().items())
    assert not discriminator.training and not torch.allclose(judged, discriminator(images))
    assert torch.allclose(judged, discriminator.train()(images))  # what training sees
