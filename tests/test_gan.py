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
from dlforge.export import export
from dlforge.models import GAN
from dlforge.nets import build_net
from dlforge.nets.gan import PixelClusters, cluster_of, coded, latent_code
from dlforge.training import build_run, train
from tests.app_fixtures import export_cfg
from tests.conftest import FAST
from tests.test_export import run_onnx
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


def test_generator_features_widen_the_generator_alone() -> None:
    convolutions = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)

    def widths(**options: int) -> list[list[int]]:
        net = build_net("dcgan", in_channels=1, height=28, width=28, num_classes=10, **options)
        return [
            [m.out_channels for m in part.modules() if isinstance(m, convolutions)]
            for part in (net.generator, net.discriminator)
        ]

    assert widths(features=8) == [[16, 8, 1], [8, 16, 1]]
    assert widths(features=8, generator_features=32) == [[64, 32, 1], [8, 16, 1]]


def test_conditional_generator_follows_its_label() -> None:
    net = build_net("cgan", in_channels=1, height=28, width=28, num_classes=10).eval()
    z = torch.randn(2, 100)
    sevens, threes = net.generator(z, torch.tensor([7, 7])), net.generator(z, torch.tensor([3, 3]))
    assert not torch.allclose(sevens, threes)
    one_hot = torch.nn.functional.one_hot(torch.tensor([7, 7]), 10).float()
    assert torch.allclose(net.generator(z, one_hot), sevens)  # class vectors work as labels


def test_a_latent_code_enters_the_generator_as_the_one_hot_of_its_argmax_and_is_read_back() -> None:
    net = build_net("dcgan", in_channels=1, height=28, width=28, num_classes=10, features=8, codes=4).eval()
    z = torch.randn(3, 100)
    z[:, :4] = torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, 0.0, 0.0, 0.0], [0.0, 0.0, -2.0, 0.1]])
    assert latent_code(z, 4).tolist() == [1, 0, 3]
    assert coded(z, 4)[:, :4].tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    assert torch.equal(coded(z, 4)[:, 4:], z[:, 4:])
    same_code = z.clone()
    same_code[:, :4] *= 5  # other values, the same argmax: the same images
    assert torch.allclose(net.generator(same_code), net.generator(z))
    other_code = z.clone()
    other_code[:, :4] = other_code[:, :4].roll(1, dims=1)  # another argmax: other images
    assert not torch.allclose(net.generator(other_code), net.generator(z))
    logits, code_logits = net.discriminator(net.generator(z), None, read_code=True)
    assert logits.shape == (3,) and code_logits.shape == (3, 4)
    assert torch.allclose(net.discriminator(net.generator(z)), logits)  # the same adversarial logit
    with pytest.raises(ValueError, match="reads no latent code"):
        uncoded = build_net("dcgan", in_channels=1, height=28, width=28, num_classes=10)
        uncoded.discriminator(torch.zeros(1, 1, 28, 28), None, read_code=True)
    for name, codes in (("cgan", 10), ("dcgan", 1), ("dcgan", 101), ("gan_seed002", 10)):
        with pytest.raises(ValueError, match=f"codes={codes}"):
            build_net(name, in_channels=1, height=28, width=28, num_classes=10, codes=codes)


def test_the_latent_code_is_learned_its_cross_entropy_falls_and_samples_need_no_code(make_cfg) -> None:
    every_batch = ("trainer.max_epochs=3", "trainer.limit_train_batches=1.0", "test=false")
    cfg = make_cfg(*FAST, NARROW, "model.net.codes=4", "model.net.clusters=0", *every_batch)
    summary = train(cfg)
    info = logged(Path(cfg.paths.output_dir) / "metrics.csv", "train/info_step")
    assert len(info) == 39 and all(map(math.isfinite, info))  # 3 epochs of 13 batches (the synthetic set)
    assert abs(info[0] - math.log(4)) < 0.3  # the code head starts at chance
    assert sum(info[-8:]) / 8 < 0.7 * info[0]  # and learns to read the code back (0.73 against 1.38)
    model = load_model(summary["last_checkpoint"])
    assert model.codes == 4 and model.sample(3, seed=0).shape == (3, 1, 28, 28)


def test_a_latent_draws_its_cluster_in_the_clusters_shares_from_its_first_number() -> None:
    cdf = torch.tensor([0.25, 0.5, 1.0])
    z = torch.zeros(4, 3)
    z[:, 0] = torch.distributions.Normal(0, 1).icdf(torch.tensor([0.1, 0.3, 0.6, 0.99]))
    assert cluster_of(z, cdf).tolist() == [0, 1, 2, 2]
    many = torch.randn(100_000, 3, generator=torch.Generator().manual_seed(0))
    shares = torch.bincount(cluster_of(many, cdf), minlength=3) / len(many)
    assert torch.allclose(shares, torch.tensor([0.25, 0.25, 0.5]), atol=0.01)


def test_online_k_means_finds_separated_groups_in_their_shares() -> None:
    torch.manual_seed(0)
    means = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [0.0, 1.0]])
    clusters = PixelClusters(3, 2)
    for _ in range(60):
        group = torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), 64, replacement=True)
        found = clusters.update(means[group] + 0.1 * torch.randn(64, 2))
        # one cluster per group, whatever its number
        assert len({(int(g), int(f)) for g, f in zip(group, found, strict=True)}) == 3
    order = torch.cdist(means, clusters.centres).argmin(dim=1)
    assert sorted(order.tolist()) == [0, 1, 2]
    assert torch.allclose(clusters.centres[order], means, atol=0.03)
    shares = clusters.counts[order] / clusters.counts.sum()
    assert torch.allclose(shares, torch.tensor([0.5, 0.3, 0.2]), atol=0.03)
    assert torch.allclose(clusters.cdf(), (clusters.counts / clusters.counts.sum()).cumsum(0))
    small = PixelClusters(5, 2)  # more clusters than a batch has images: seeded over batches
    for batch, seeded in ((means[:2], 2), (means[2:], 3), (means, 3), (torch.ones(4, 2), 4)):
        small.update(batch)
        assert int(small.seeded) == seeded and small.counts[seeded:].sum() == 0  # never drawn unseeded
    assert small.cdf()[3:].tolist() == [1.0, 1.0]


def test_a_self_conditioned_generator_needs_z_alone_and_its_cluster_changes_the_image() -> None:
    net = build_net("dcgan", in_channels=1, height=28, width=28, num_classes=10, features=8, clusters=4)
    net.eval()
    assert net.clusters.k == 4 and net.discriminator.projection and not net.conditional
    z = torch.zeros(2, 100)
    z[:, 0] = torch.tensor([-2.0, 2.0])  # uniform shares: clusters 0 and 3
    assert cluster_of(z, net.generator.cluster_cdf).tolist() == [0, 3]
    images = net.generator(z)
    net.generator.cluster_cdf.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # every latent draws cluster 3
    redrawn = net.generator(z)
    assert not torch.allclose(redrawn[0], images[0]) and torch.allclose(redrawn[1], images[1])
    logits = net.discriminator(images, torch.tensor([0, 3]))
    assert not torch.allclose(logits, net.discriminator(images, torch.tensor([1, 2])))  # reads the cluster
    for name, options in (("cgan", {}), ("dcgan", {"codes": 4}), ("dcgan", {}), ("gan_seed002", {})):
        clusters = 1 if name == "dcgan" and not options else 4
        with pytest.raises(ValueError, match=f"clusters={clusters}"):
            build_net(name, in_channels=1, height=28, width=28, num_classes=10, clusters=clusters, **options)


def test_self_conditioning_learns_clusters_draws_them_in_their_shares_and_exports(
    make_cfg, data_dir: Path, tmp_path: Path
) -> None:
    cfg = make_cfg(*FAST, NARROW, "model.net.clusters=4", "test=false")
    summary = train(cfg)
    for key in ("train/d_loss_step", "train/g_loss_step"):
        values = logged(Path(cfg.paths.output_dir) / "metrics.csv", key)
        assert len(set(values)) > 1 and all(map(math.isfinite, values))
    model = load_model(summary["last_checkpoint"]).eval()
    counts = model.clusters.counts
    assert counts.sum() == 2 * 4 * cfg.data.batch_size  # every real image of 2 epochs of 4 batches
    cdf = (counts / counts.sum()).cumsum(0)
    assert torch.allclose(model.generator.cluster_cdf, cdf)
    assert torch.allclose(model.generator_ema.module.cluster_cdf, cdf)  # samples draw the same shares
    assert model.num_classes == 0 and model.sample(3, seed=0).shape == (3, 1, 28, 28)
    output = tmp_path / "clustered.onnx"
    export(export_cfg(data_dir, summary["last_checkpoint"], output))
    z = torch.randn(64, 100, generator=torch.Generator().manual_seed(1))
    (images,) = run_onnx(output, z.numpy())
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(images), model.decode_latent(z), atol=1e-5)


def test_nets_refuse_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="even sides"):
        build_net("dcgan", in_channels=1, height=27, width=27, num_classes=10)
    with pytest.raises(ValueError, match="class labels"):
        build_net("cgan", in_channels=1, height=28, width=28, num_classes=0)


def test_default_model_of_train_is_dcgan(make_cfg) -> None:
    cfg = make_cfg()
    assert cfg.model.kind == "gan" and cfg.model.net.name == "dcgan"
    assert cfg.model.optimizer_g.lr == cfg.model.optimizer_d.lr == 3.2e-3  # measured (docs/gan.md)
    assert list(cfg.model.optimizer_d.betas) == [0.5, 0.999]
    assert make_cfg("model=cgan").model.optimizer_g.lr == 3.2e-3  # dcgan's, measured for it too
    assert make_cfg("model=gan_seed002").model.optimizer_d.lr == 2e-4  # its seed's
    recipe = (cfg.model.loss, cfg.model.net.spectral_norm, cfg.model.ema_decay)
    assert recipe == ("least_squares", True, 0.999) and cfg.model.net.minibatch_std
    assert cfg.model.net.clusters == 100  # self-conditioned (docs/gan.md); cgan and seed 002 are not
    assert make_cfg("model=cgan").model.net.clusters == make_cfg("model=gan_seed002").model.net.clusters == 0


def test_a_model_brings_its_own_training_length_and_the_command_line_still_wins(make_cfg) -> None:
    assert make_cfg().trainer.max_epochs == 6  # conf/trainer/model/dcgan.yaml
    assert make_cfg("model=cgan", "trainer=cpu").trainer.max_epochs == 10
    assert make_cfg("model=lenet").trainer.max_epochs == 10  # no file of its own: trainer/default.yaml
    assert make_cfg("trainer.max_epochs=2").trainer.max_epochs == 2
    assert make_cfg("experiment=dcgan_mnist").trainer.max_epochs == 10  # an experiment sets its own
    seed002 = make_cfg("model=gan_seed002").model  # a reproduction keeps its seed's training
    assert (seed002.loss, seed002.net.spectral_norm, seed002.ema_decay, seed002.net.features) == (
        "non_saturating",
        False,
        0.0,
        64,
    )


def test_label_smoothing_is_refused_with_losses_it_does_not_smooth(make_cfg) -> None:
    with pytest.raises(DlforgeError, match="use it with loss=non_saturating, not loss=hinge"):
        build_run(make_cfg("model.loss=hinge", "model.label_smoothing=0.1", "data.val_size=32"))


@pytest.mark.parametrize(
    ("model", "data"), [("dcgan", "mnist"), ("gan_seed002", "fashion_mnist"), ("cgan", "cifar10")]
)
def test_training_moves_both_losses_and_changes_both_networks(make_cfg, model: str, data: str) -> None:
    narrow = () if model == "gan_seed002" else (NARROW,)
    # binary cross-entropy, for the bound below (under the default hinge loss, D's last bias has no
    # gradient while every logit is inside the margin: -P(D(x) < 1) + P(D(G(z)) > -1) = 0)
    bce = "model.loss=non_saturating"
    cfg = make_cfg(
        f"model={model}", f"data={data}", *FAST, *narrow, bce, "trainer.max_epochs=1", "test=false"
    )
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
        "model.loss=non_saturating",
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
    assert opt_g.param_groups[0]["lr"] == pytest.approx(cfg.model.optimizer_g.lr * 0.5**2)
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
    start = [cfg.model.optimizer_g.lr, cfg.model.optimizer_d.lr]
    assert lrs == pytest.approx([lr * 0.5**2 for lr in start])  # 2 epochs, generator and discriminator alike


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


def test_quality_classifier_scores_samples_and_picks_the_best_by_fid(
    make_cfg,
    classifier_run,  # noqa: F811
    caplog,
) -> None:
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
    with caplog.at_level("WARNING", logger="dlforge.callbacks.generative"):
        summary = train(cfg)
    assert summary["metrics"]["val/fid"] > 0 and summary["best_checkpoint"].endswith(".ckpt")
    report = json.loads((Path(cfg.paths.output_dir) / "sample_quality.json").read_text())
    assert report["val"]["extractor"].startswith("last.ckpt (convnet on mnist")
    counts = report["val"]["class_counts"]
    assert sum(counts) == 32
    # mode collapse shows while training: the class entropy, and one line naming the rare classes
    shares = torch.tensor(counts, dtype=torch.float64) / 32
    expected = -(shares[shares > 0] * shares[shares > 0].log()).sum() / math.log(10)
    assert summary["metrics"]["val/class_entropy"] == pytest.approx(expected.item(), abs=1e-4)
    rare = [k for k, n in enumerate(counts) if n < 0.02 * 32]  # 4 steps of training: some class is missing
    warnings = [r.getMessage() for r in caplog.records if "mode collapse?" in r.getMessage()]
    assert rare and len(warnings) == 1  # one validation, one line
    assert f"{sum(counts[k] for k in rare)} of 32 samples" in warnings[0]
    assert all(f"{k} ({counts[k]})" in warnings[0] for k in rare)


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


# --- the stabilizers: each option's meaning, pinned ---------------------------------------------


def test_textbook_losses_on_known_logits() -> None:
    from dlforge.models.gan import discriminator_loss, generator_loss

    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # hinge: mean relu(1 - [2, .5]) = .25, mean relu(1 + [-2, .5]) = .75; G: -mean D(G(z)) = .75
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(1.0)
    assert generator_loss("hinge", fake).item() == pytest.approx(0.75)
    # least squares (a=0, b=c=1): ((1 + .25) / 2 + (4 + .25) / 2) / 2; G: ((9 + .25) / 2) / 2
    assert discriminator_loss("least_squares", real, fake).item() == pytest.approx(1.375)
    assert generator_loss("least_squares", fake).item() == pytest.approx(2.3125)
    # Wasserstein critic: mean D(G(z)) - mean D(x) = -.75 - 1.25
    assert discriminator_loss("wgan_gp", real, fake).item() == pytest.approx(-2.0)
    assert generator_loss("wgan_gp", fake).item() == pytest.approx(0.75)
    # non-saturating: -log sigmoid(x) - log(1 - sigmoid(x')), with one-sided smoothing of the real target
    bce = -(torch.sigmoid(real).log().mean() + (1 - torch.sigmoid(fake)).log().mean())
    assert discriminator_loss("non_saturating", real, fake).item() == pytest.approx(bce.item(), rel=1e-5)
    smoothed = -(0.9 * torch.sigmoid(real).log() + 0.1 * (1 - torch.sigmoid(real)).log()).mean()
    expected = smoothed - (1 - torch.sigmoid(fake)).log().mean()
    assert discriminator_loss("non_saturating", real, fake, 0.1).item() == pytest.approx(
        expected.item(), rel=1e-5
    )
    assert generator_loss("non_saturating", fake).item() == pytest.approx(
        -torch.sigmoid(fake).log().mean().item(), rel=1e-5
    )


def test_r1_and_gradient_penalty_equal_their_closed_forms() -> None:
    from dlforge.models.gan import gradient_penalty, r1_penalty

    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 4)
    images = torch.randn(5, 3, 4, 4)

    def linear(x: torch.Tensor) -> torch.Tensor:  # d/dx <w, x> = w for every image
        return (x * w).flatten(1).sum(dim=1)

    def square(x: torch.Tensor) -> torch.Tensor:  # d/dx |x|^2 = 2x
        return x.square().flatten(1).sum(dim=1)

    assert r1_penalty(linear, images, gamma=3.0).item() == pytest.approx(
        1.5 * w.square().sum().item(), rel=1e-5
    )
    expected = 0.5 * (4 * images.square().flatten(1).sum(dim=1)).mean()
    assert r1_penalty(square, images, gamma=1.0).item() == pytest.approx(expected.item(), rel=1e-5)
    gp = gradient_penalty(linear, images, torch.randn_like(images), weight=10.0)
    assert gp.item() == pytest.approx(10 * (w.norm().item() - 1) ** 2, rel=1e-4)
    # the penalty is differentiable: it trains the critic's weights
    w.requires_grad_(True)
    r1_penalty(linear, images, gamma=1.0).backward()
    assert torch.allclose(w.grad, w.detach())  # d/dw (|w|^2 / 2) = w


def test_lazy_r1_applies_on_every_kth_batch_times_k(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    import dlforge.models.gan as gan

    calls: list[float] = []

    def half(critic, real: torch.Tensor, gamma: float) -> torch.Tensor:  # a known penalty, counted
        calls.append(gamma)
        return critic(real).sum() * 0 + 0.5

    monkeypatch.setattr(gan, "r1_penalty", half)
    cfg = make_cfg(
        *FAST, NARROW, "model.r1_gamma=2", "model.r1_every=3", "trainer.max_epochs=1", "test=false"
    )
    train(cfg)
    out = Path(cfg.paths.output_dir)
    assert len(logged(out / "metrics.csv", "train/d_loss_step")) == 4  # batches 0-3: R1 on 0 and 3
    assert calls == [2.0, 2.0]
    assert logged(out / "metrics.csv", "train/r1_step") == [1.5, 0.0, 0.0, 1.5]  # 3 x the penalty, or none
    assert logged(out / "metrics.csv", "train/r1_epoch") == [0.75]


def test_spectral_norm_holds_each_discriminator_layer_at_unit_largest_singular_value() -> None:
    torch.manual_seed(0)
    for name in ("dcgan", "gan_seed002"):
        widths = {"features": 8} if name == "dcgan" else {"features": 4}
        net = build_net(
            name, in_channels=1, height=28, width=28, num_classes=10, spectral_norm=True, **widths
        )
        discriminator = net.discriminator.train()
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules())
        for _ in range(30):  # each forward runs one power iteration
            discriminator(torch.randn(4, 1, 28, 28))
        layers = [m for m in discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert len(layers) >= 3
        for layer in layers:
            sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
            assert sigma == pytest.approx(1.0, abs=0.05), layer
        plain = build_net(name, in_channels=1, height=28, width=28, num_classes=10, **widths).discriminator
        sigmas = [torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() for m in plain.modules()
                  if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]  # fmt: skip
        assert not all(s == pytest.approx(1.0, abs=0.05) for s in sigmas)


def test_weight_average_follows_its_update_rule_and_differs_from_the_raw_generator(make_cfg) -> None:
    from pytorch_lightning.callbacks import Callback

    class Snapshots(Callback):
        def __init__(self) -> None:
            self.weights: list[list[torch.Tensor]] = []

        def on_train_start(self, trainer, module) -> None:
            self.weights.append([p.detach().clone() for p in module.generator.parameters()])

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.weights.append([p.detach().clone() for p in module.generator.parameters()])

    snapshots = Snapshots()
    cfg = make_cfg(*FAST, NARROW, "model.ema_decay=0.5", "test=false")
    summary = train(cfg, [snapshots])
    assert len(snapshots.weights) == 1 + 8  # the start, then 2 epochs x 4 generator steps
    expected = snapshots.weights[1]  # the first update copies the generator
    for n, current in enumerate(snapshots.weights[2:], start=1):  # then n updates averaged so far
        decay = min(0.5, (1 + n) / (10 + n))
        expected = [e + (1 - decay) * (c - e) for e, c in zip(expected, current, strict=True)]
    model = load_model(summary["last_checkpoint"])
    averaged = list(model.generator_ema.parameters())
    for e, a in zip(expected, averaged, strict=True):
        assert torch.allclose(e, a, atol=1e-6)
    assert not all(torch.equal(a, g) for a, g in zip(averaged, model.generator.parameters(), strict=True))
    # samples come from the average, with batch-norm statistics of its own activations
    z = torch.randn(6, 100)
    with torch.no_grad():
        assert torch.allclose(model.decode_latent(z), (model.generator_ema.eval()(z) + 1) / 2)
        assert not torch.allclose(model.decode_latent(z), (model.generator.eval()(z) + 1) / 2)
    assert int(model.generator_ema.n_averaged) == 8
    saved = {k: v.clone() for k, v in model.generator_ema.module.state_dict().items() if "running" in k}
    model.refresh_ema_statistics()  # the checkpoint held the refreshed statistics already
    now = model.generator_ema.module.state_dict()
    assert saved and all(torch.allclose(v, now[k]) for k, v in saved.items())
    assert not torch.allclose(saved[next(iter(saved))], model.generator.state_dict()[next(iter(saved))])


def test_a_checkpoint_of_the_weight_average_before_averaged_model_still_loads(
    make_cfg, tmp_path: Path
) -> None:
    """Checkpoints written before the average was torch's AveragedModel held ``generator_ema.net.*`` and
    no update count: they load, with the same averaged weights and a finished warm-up."""
    old_options = ("model.ema_decay=0.9", "model.net.clusters=0")  # such checkpoints had no clusters
    cfg = make_cfg(*FAST, NARROW, *old_options, "test=false", "trainer.max_epochs=1")
    summary = train(cfg)
    checkpoint = torch.load(summary["last_checkpoint"], weights_only=True)
    state = checkpoint["state_dict"]
    old = {key.replace("generator_ema.module.", "generator_ema."): value for key, value in state.items()}
    del old["generator_ema.n_averaged"]
    assert any(key.startswith("generator_ema.net.") for key in old)
    path = tmp_path / "old.ckpt"
    torch.save({**checkpoint, "state_dict": old}, path)
    model = load_model(path, GAN)
    for key, value in model.generator_ema.module.state_dict().items():
        assert torch.equal(value, state[f"generator_ema.module.{key}"]), key
    assert int(model.generator_ema.n_averaged) >= 10_000  # decay min(0.9, (1 + n) / (10 + n)) = 0.9


def test_diffaugment_shifts_and_cuts_each_image_and_lets_gradients_reach_the_generator() -> None:
    from dlforge.nets.gan import DiffAugment, cutout, translate

    torch.manual_seed(0)
    images = torch.rand(6, 2, 16, 16)
    moved = translate(images)
    for original, shifted in zip(images, moved, strict=True):  # some shift within 2 pixels, edges repeated
        rows, cols = torch.arange(16).view(16, 1), torch.arange(16).view(1, 16)
        candidates = [
            original[:, (rows + dy).clamp(0, 15), (cols + dx).clamp(0, 15)]
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        ]
        assert any(torch.equal(shifted, c) for c in candidates)
    assert not torch.equal(moved, images)
    cut = cutout(images + 1)  # no zero pixels before
    zeros = (cut == 0).all(dim=1).flatten(1).sum(dim=1)
    assert ((zeros > 0) & (zeros <= 64)).all()  # at most an 8x8 square, clipped at the edges
    assert torch.equal(cut[cut != 0], (images + 1)[cut != 0])

    net = build_net(
        "dcgan", in_channels=1, height=28, width=28, num_classes=10, features=8, spectral_norm=True
    )
    augment = DiffAugment(["translation", "cutout"])
    net.generator(torch.randn(4, 100)).mean()  # (batch-norm statistics)
    loss = -net.discriminator(augment(net.generator(torch.randn(4, 100)))).mean()
    loss.backward()
    grads = [p.grad for p in net.generator.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="choose from"):
        DiffAugment(["rotation"])


def test_minibatch_std_and_projection_discriminators() -> None:
    from dlforge.nets.gan import MinibatchStd

    same = torch.ones(8, 3, 4, 4)
    spread = torch.randn(8, 3, 4, 4)
    assert MinibatchStd()(same)[:, -1].max() < 1e-3
    assert MinibatchStd()(spread)[:, -1].min() > 0.5 and MinibatchStd()(spread).shape == (8, 4, 4, 4)
    # groups of 4: samples i and i + 2 of 8 share a group (the batch viewed as 4 x 2)
    expected = spread.view(4, 2, 3, 4, 4).var(dim=0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))
    torch.testing.assert_close(MinibatchStd()(spread)[:, -1, 0, 0], expected.repeat(4))
    net = build_net("cgan", in_channels=1, height=28, width=28, num_classes=10, features=8, projection=True,
                    spectral_norm=True, minibatch_std=True)  # fmt: skip
    discriminator = net.discriminator.eval()
    images = torch.randn(4, 1, 28, 28)
    three, seven = torch.full((4,), 3), torch.full((4,), 7)
    one_hot = torch.nn.functional.one_hot
    mixed = 0.25 * one_hot(three, 10).float() + 0.75 * one_hot(seven, 10).float()
    with torch.no_grad():
        d3, d7, dmix = (
            discriminator(images, three),
            discriminator(images, seven),
            discriminator(images, mixed),
        )
    assert not torch.allclose(d3, d7)
    assert torch.allclose(dmix, 0.25 * d3 + 0.75 * d7, atol=1e-5)  # the class enters linearly: projection


@pytest.mark.parametrize(
    "options",
    [
        ("model.loss=wgan_gp", "model.net.minibatch_std=true"),
        ("model.loss=least_squares", "model.r1_gamma=1", "model.diffaugment=[translation,cutout]"),
        ("model=cgan", "model.net.projection=true", "model.ema_decay=0.9"),
        (
            "model=gan_seed002",
            "model.net.features=8",
            "model.net.spectral_norm=true",
            "model.net.minibatch_std=true",
        ),
    ],
)
def test_every_stabilizer_trains_with_every_gan(make_cfg, options: tuple[str, ...]) -> None:
    narrow = () if "model=gan_seed002" in options else (NARROW,)
    cfg = make_cfg(*FAST, *options, *narrow, "trainer.max_epochs=1", "test=false")
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    d_loss, g_loss = (
        logged(out / "metrics.csv", "train/d_loss_step"),
        logged(out / "metrics.csv", "train/g_loss_step"),
    )
    assert (
        len(d_loss) == len(g_loss) == 4 and len(set(d_loss)) > 1 and all(map(math.isfinite, d_loss + g_loss))
    )
    penalty = "gp" if "model.loss=wgan_gp" in options else "r1" if "model.r1_gamma=1" in options else None
    if penalty:
        assert all(v > 0 for v in logged(out / "metrics.csv", f"train/{penalty}_step"))
    model = load_model(summary["last_checkpoint"])
    assert model.sample(3, seed=0).shape == (3, 1, 28, 28)
