"""Autoencoders and VAEs: networks, losses, denoising, training, pictures, metrics, checkpoints."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from dlforge import CONF_DIR
from dlforge.checkpoint import load_model
from dlforge.models.autoencoder import VAE, Autoencoder, corrupt
from dlforge.models.base import GenerativeModule
from dlforge.nets import build_net
from dlforge.training import build_run, train
from tests.conftest import FAST
from tests.test_quality import classifier_run  # noqa: F401  (module fixture: a LeNet checkpoint)

MNIST = {
    "name": "mnist",
    "channels": 1,
    "height": 28,
    "width": 28,
    "num_classes": 10,
    "class_names": [str(k) for k in range(10)],
    "mean": [0.13],
    "std": [0.31],
}
CIFAR = {
    **MNIST,
    "name": "cifar10",
    "channels": 3,
    "height": 32,
    "width": 32,
    "mean": [0.5] * 3,
    "std": [0.25] * 3,
}
ADAM = {"_target_": "torch.optim.Adam", "lr": 1e-3}


def compose_cfg(data_dir: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.data_dir={data_dir}", *FAST, *overrides])
    cfg.paths.output_dir = str(out)
    return cfg


@pytest.mark.parametrize("spec", [MNIST, CIFAR], ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize(
    "net",
    [
        {"name": "mlp_autoencoder", "hidden": [64, 32]},
        {"name": "conv_autoencoder", "channels": [8, 16], "hidden": [32]},
        {"name": "conv_autoencoder", "channels": [8, 8, 8], "hidden": []},  # 28 -> 14 -> 7 -> 3 and back
    ],
    ids=["mlp", "conv", "conv3"],
)
@pytest.mark.parametrize("model_class", [Autoencoder, VAE])
def test_shapes_follow_the_data(model_class, net, spec) -> None:
    model = model_class(net=net, data=spec, latent_dim=5, optimizer=ADAM)
    images = torch.rand(4, spec["channels"], spec["height"], spec["width"])
    assert model.encode(images).shape == (4, 5)
    reconstructions = model(images)
    assert reconstructions.shape == images.shape
    assert reconstructions.min() >= 0 and reconstructions.max() <= 1
    out = model.losses(images)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])


def test_too_many_convolutions_for_the_image_size_fail_clearly() -> None:
    with pytest.raises(ValueError, match="fewer entries"):
        build_net("conv_autoencoder", in_channels=1, height=28, width=28, latent_dim=2, channels=[8] * 6)


def test_only_the_vae_is_generative() -> None:
    net = {"name": "mlp_autoencoder", "hidden": [16]}
    vae, ae = VAE(net=net, data=MNIST, latent_dim=3), Autoencoder(net=net, data=MNIST, latent_dim=3)
    assert isinstance(vae, GenerativeModule) and not isinstance(ae, GenerativeModule)
    samples = vae.sample(6, seed=0)
    assert samples.shape == (6, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    assert torch.equal(samples, vae.sample(6, seed=0))
    assert vae.hparams.beta == 1.0 and vae.hparams.latent_dim == 3  # the subclass's arguments are saved


def test_kl_is_positive_finite_and_exact() -> None:
    torch.manual_seed(0)
    vae = VAE(net={"name": "mlp_autoencoder", "hidden": [16]}, data=MNIST, latent_dim=4)
    images = torch.rand(8, 1, 28, 28)
    out = vae.losses(images, beta=2.0)
    assert torch.isfinite(out["kl"]) and out["kl"] > 0
    assert torch.allclose(out["loss"], out["recon"] + 2.0 * out["kl"])
    mean, logvar = vae.posterior(images)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    assert torch.allclose(out["kl"], expected, rtol=1e-5)


@pytest.mark.parametrize("noise", ["gaussian", "masking", "salt_and_pepper"])
def test_corruption_kinds(noise: str) -> None:
    images = torch.full((16, 1, 28, 28), 0.5)
    noisy = corrupt(images, noise, 0.3, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1
    changed = (noisy != images).float().mean()
    assert (0.2 < changed < 0.4) if noise != "gaussian" else changed > 0.9
    if noise == "masking":
        assert set(noisy.unique().tolist()) == {0.0, 0.5}
    if noise == "salt_and_pepper":
        assert set(noisy.unique().tolist()) == {0.0, 0.5, 1.0}
    assert corrupt(images, noise, 0.0) is images


def test_denoising_corrupts_the_inputs_and_keeps_the_targets_clean() -> None:
    torch.manual_seed(0)
    model = Autoencoder(
        net={"name": "mlp_autoencoder", "hidden": [16]},
        data=MNIST,
        latent_dim=2,
        noise="masking",
        noise_level=0.5,
    )
    seen: dict[str, torch.Tensor] = {}
    model.net.encoder.register_forward_hook(lambda module, args, out: seen.update(encoder_input=args[0]))
    score = model.reconstruction_loss
    model.reconstruction_loss = lambda logits, targets: seen.update(targets=targets) or score(logits, targets)
    images = torch.rand(8, 1, 28, 28) * 0.9 + 0.1  # no zeros: every masked pixel shows
    model.losses(images)
    encoder_saw = seen["encoder_input"] * model.std + model.mean  # undo the standardization
    masked = (encoder_saw.abs() < 1e-6).float().mean()
    assert 0.4 < masked < 0.6
    assert torch.equal(seen["targets"], images)


@pytest.mark.parametrize("model", ["autoencoder", "vae"])
def test_few_steps_lower_the_loss(data_dir: Path, tmp_path: Path, model: str) -> None:
    cfg = compose_cfg(
        data_dir,
        tmp_path,
        f"model={model}",
        "model.net.hidden=[64]",
        "model.pictures=null",
        "test=false",
        "trainer.max_epochs=3",
        "optimizer.lr=3e-3",
    )
    datamodule, module, trainer = build_run(cfg)
    images = datamodule.preprocess(datamodule.splits["val"].tensors[0][:32])

    def loss() -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return float(module.eval().losses(images)["loss"])

    before = loss()
    module.train()
    trainer.fit(module, datamodule=datamodule)
    assert loss() < 0.8 * before


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, data_dir, classifier_run):  # noqa: F811
    out = tmp_path_factory.mktemp("vae")
    overrides = [
        "model=conv_vae",
        "model.latent_dim=2",
        "model.net.channels=[8,16]",
        "model.net.hidden=[32]",
        "model.kl_warmup_epochs=1",
        "model.pictures.manifold_steps=5",
        f"quality_classifier={classifier_run[0]}",
        "quality_samples=48",
        "quality_every_n_epochs=100",  # FID at test only: faster
    ]
    cfg = compose_cfg(data_dir, out, *overrides)
    return out, train(cfg)


def test_vae_writes_its_pictures(vae_run) -> None:
    out, _ = vae_run
    row = 28 + 2  # make_grid: each image plus 2 pixels of padding, 2 more at the end
    assert Image.open(out / "reconstructions" / "epoch_000.png").size == (8 * row + 2, 2 * row + 2)
    assert (out / "reconstructions" / "epoch_001.png").is_file()
    assert Image.open(out / "reconstructions" / "test.png").size == (8 * row + 2, 2 * row + 2)
    assert Image.open(out / "manifold.png").size == (5 * 28, 5 * 28)  # 5 x 5 latent points, no padding
    assert Image.open(out / "interpolation.png").size == (
        12 * row + 2,
        6 * row + 2,
    )  # 6 pairs, 10 steps + ends
    assert Image.open(out / "latent_space.png").size[0] > 400
    assert (out / "samples" / "epoch_001.png").is_file() and (out / "samples" / "progress.gif").is_file()


def test_vae_test_metrics_and_sample_quality(vae_run) -> None:
    out, summary = vae_run
    metrics = summary["metrics"]
    assert {"test/recon", "test/kl", "test/elbo", "test/mse", "test/loss", "val/loss"} <= set(metrics)
    assert metrics["test/kl"] > 0
    assert metrics["test/elbo"] == pytest.approx(-(metrics["test/recon"] + metrics["test/kl"]), rel=1e-5)
    assert 0 < metrics["test/mse"] < 1
    assert metrics["test/fid"] > 0 and "test/kid" in metrics
    quality = json.loads((out / "sample_quality.json").read_text())
    assert quality["test"]["extractor"].startswith("last.ckpt (convnet on mnist")


def test_kl_warmup_ramps_beta_within_the_first_epoch(vae_run) -> None:
    out, _ = vae_run
    with open(out / "metrics.csv") as f:
        betas = [float(r["train/beta_step"]) for r in csv.DictReader(f) if r.get("train/beta_step")]
    assert betas == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0])  # 4 batches per epoch


def test_vae_checkpoint_reloads_weights_only(vae_run) -> None:
    _, summary = vae_run
    path = summary["last_checkpoint"]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["dlforge"]["model"] == "vae"
    model = load_model(path, VAE)
    assert isinstance(model, VAE) and model.latent_dim == 2
    assert set(model.state_dict()) == set(raw["state_dict"])
    assert torch.equal(model.state_dict()["head.weight"], raw["state_dict"]["head.weight"])
    assert model.sample(4, seed=1).shape == (4, 1, 28, 28)


def test_denoising_conv_autoencoder_on_cifar(data_dir: Path, tmp_path: Path) -> None:
    overrides = ["model=conv_autoencoder", "data=cifar10", "model.latent_dim=3", "model.noise_level=0.2"]
    small = ["model.net.channels=[8,16]", "model.net.hidden=[32]", "trainer.max_epochs=1"]
    cfg = compose_cfg(data_dir, tmp_path, *overrides, *small)
    summary = train(cfg)
    assert {"test/recon", "test/mse"} <= set(summary["metrics"]) and "test/kl" not in summary["metrics"]
    row = 32 + 2
    assert Image.open(tmp_path / "reconstructions" / "test.png").size == (
        8 * row + 2,
        3 * row + 2,
    )  # clean/noisy/out
    assert (tmp_path / "latent_space.png").is_file() and (tmp_path / "interpolation.png").is_file()
    assert not (tmp_path / "samples").exists() and not (tmp_path / "manifold.png").exists()  # not generative
    model = load_model(summary["last_checkpoint"])
    assert type(model) is Autoencoder and model.hparams.noise_level == 0.2


def test_evaluate_tests_a_vae_checkpoint_and_draws_its_pictures(vae_run, make_cfg, tmp_path: Path) -> None:
    from dlforge.evaluate import evaluate

    _, summary = vae_run
    cfg = make_cfg(
        f"ckpt_path={summary['last_checkpoint']}",
        "trainer=cpu",
        "trainer.limit_test_batches=1",
        config_name="evaluate",
    )
    metrics = evaluate(cfg)["metrics"]
    assert metrics["test/kl"] > 0 and metrics["test/elbo"] < 0
    out = Path(cfg.paths.output_dir)
    assert (out / "latent_space.png").is_file() and (out / "manifold.png").is_file()
