"""``python -m dlforge.generate``: grids, single images, labels, interpolation, latent arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from dlforge.checkpoint import load_model
from dlforge.errors import CheckpointError, DlforgeError
from dlforge.generate import generate
from dlforge.models import GenerativeModule
from dlforge.serving.generative import (
    grid_samples,
    grouped_codes,
    interpolation,
    load_classifier,
    seed_latents,
    slerp,
    vector_arithmetic,
)
from dlforge.training import train
from tests.conftest import FAST
from tests.test_quality import classifier_run  # noqa: F401  (module fixture)


def grid_size(rows: int, columns: int, side: int = 28, padding: int = 2) -> tuple[int, int]:
    """(width, height) of a torchvision grid of ``rows`` x ``columns`` images of ``side`` pixels."""
    return columns * (side + padding) + padding, rows * (side + padding) + padding


def tiny_gan(tmp_path_factory, data_dir: Path, model: str) -> str:
    from hydra import compose, initialize_config_dir

    from dlforge import CONF_DIR

    out = tmp_path_factory.mktemp(model)
    overrides = [f"paths.data_dir={data_dir}", f"model={model}", *FAST, "model.net.features=16"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "trainer.max_epochs=1", "test=false"])
    cfg.paths.output_dir = str(out)
    return train(cfg)["last_checkpoint"]


@pytest.fixture(scope="module")
def dcgan_ckpt(tmp_path_factory, data_dir: Path) -> str:
    return tiny_gan(tmp_path_factory, data_dir, "dcgan")


@pytest.fixture(scope="module")
def cgan_ckpt(tmp_path_factory, data_dir: Path) -> str:
    return tiny_gan(tmp_path_factory, data_dir, "cgan")


def printed_path(stdout: str) -> Path:
    return Path(stdout.strip().splitlines()[-1])


# --- the command line, as a user types it ------------------------------------------------------


def test_cli_grid_and_single_images(run_cli, dcgan_ckpt: str, tmp_path: Path) -> None:
    result = run_cli("-m", "dlforge.generate", f"ckpt_path={dcgan_ckpt}", "n=12", "nrow=4", "singles=true")
    assert result.returncode == 0, result.stderr[-3000:]
    path = tmp_path / printed_path(result.stdout)
    assert path.name == "samples.png" and path.parent.parent == tmp_path / "outputs" / "generate"
    assert Image.open(path).size == grid_size(3, 4)
    singles = sorted((path.parent / "samples").glob("*.png"))
    assert len(singles) == 12 and Image.open(singles[0]).size == (28, 28)


def test_cli_interpolation_strip(run_main, dcgan_ckpt: str, tmp_path: Path) -> None:
    result = run_main(
        "-m", "dlforge.generate", f"ckpt_path={dcgan_ckpt}", "mode=interpolate", "seeds=[3,5,8]", "steps=6",
        "output=strips/walk.png",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert printed_path(result.stdout) == Path("strips/walk.png")
    assert Image.open(tmp_path / "strips" / "walk.png").size == grid_size(2, 6)  # one row per pair of seeds


def test_cli_arithmetic_with_a_classifier(
    run_main,
    dcgan_ckpt: str,
    classifier_run,  # noqa: F811
    tmp_path: Path,
) -> None:
    classifier_ckpt, _ = classifier_run
    model = load_model(dcgan_ckpt, GenerativeModule, what="a generative model")
    _, classes = grouped_codes(model, 300, 0, load_classifier(classifier_ckpt, model))
    present = (torch.bincount(classes, minlength=10) >= 2).nonzero().flatten().tolist()
    a, b, c = (present[k % len(present)] for k in (0, -1, 1))  # classes the barely trained GAN draws
    result = run_main(
        "-m", "dlforge.generate", f"ckpt_path={dcgan_ckpt}", "mode=arithmetic", f"arithmetic.a={a}",
        f"arithmetic.b={b}", f"arithmetic.c={c}", f"arithmetic.classifier={classifier_ckpt}",
        "arithmetic.pool=300", "arithmetic.min_confidence=0", "arithmetic.rows=3", "arithmetic.group_size=2",
        "output=arith.png",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / "arith.png").size == grid_size(3, 4)  # rows of A, B, C, A - B + C
    summary = json.loads((tmp_path / "arith.json").read_text())
    assert summary["expression"] == f"{a} - {b} + {c}" and sum(summary["result_classes"].values()) == 3
    assert summary["grouped_by"].startswith("classifier")


# --- the pieces ---------------------------------------------------------------------------------


def generate_cfg(make_cfg, ckpt: str, *overrides: str):
    return make_cfg(f"ckpt_path={ckpt}", *overrides, config_name="generate")


def test_same_seed_same_samples_and_conditional_labels(cgan_ckpt: str, dcgan_ckpt: str) -> None:
    dcgan = load_model(dcgan_ckpt, GenerativeModule, what="a generative model")
    first, nrow = grid_samples(dcgan, 6, seed=4, label=None, nrow=3)
    assert nrow == 3 and torch.equal(first, grid_samples(dcgan, 6, seed=4, label=None, nrow=3)[0])
    assert not torch.equal(first, grid_samples(dcgan, 6, seed=5, label=None, nrow=3)[0])

    cgan = load_model(cgan_ckpt, GenerativeModule, what="a generative model")
    sevens, _ = grid_samples(cgan, 4, seed=0, label=7, nrow=4)
    z = cgan.sample_latent(4, torch.Generator().manual_seed(0))
    assert torch.allclose(sevens, cgan.decode_latent(z, torch.full((4,), 7)))
    table, nrow = grid_samples(cgan, 20, seed=0, label=None, nrow=8)  # rows: one latent, every class
    row_latent = cgan.sample_latent(2, torch.Generator().manual_seed(0))[1:].repeat(10, 1)
    assert nrow == 10 and torch.allclose(table[10:], cgan.decode_latent(row_latent, torch.arange(10)))


def test_only_generative_checkpoints(classifier_run) -> None:  # noqa: F811
    with pytest.raises(CheckpointError, match="generative"):
        load_model(classifier_run[0], GenerativeModule, what="a generative model")


def test_label_names_and_wrong_labels(make_cfg, cgan_ckpt: str, dcgan_ckpt: str) -> None:
    out = generate(generate_cfg(make_cfg, cgan_ckpt, "label=7", "n=5", "nrow=5"))
    assert Image.open(out).size == grid_size(1, 5)
    with pytest.raises(DlforgeError, match="not a class"):
        generate(generate_cfg(make_cfg, cgan_ckpt, "label=12"))
    with pytest.raises(DlforgeError, match="not conditional"):
        generate(generate_cfg(make_cfg, dcgan_ckpt, "label=7"))
    with pytest.raises(DlforgeError, match="pass label"):
        generate(generate_cfg(make_cfg, cgan_ckpt, "mode=interpolate"))


def test_slerp_ends_at_both_latents_and_keeps_their_norm() -> None:
    z0, z1 = torch.randn(2, 100)
    path = slerp(z0, z1, torch.linspace(0, 1, 7))
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    middle = path[3].norm()
    assert middle > (z0 + z1).norm() / 2  # a straight line would cut through the low-norm middle


def test_interpolation_runs_from_one_seeds_sample_to_the_next(dcgan_ckpt: str) -> None:
    model = load_model(dcgan_ckpt, GenerativeModule, what="a generative model")
    strip = interpolation(model, [3, 5], steps=4, label=None)
    ends = model.decode_latent(seed_latents(model, [3, 5]))
    assert strip.shape == (4, 1, 28, 28)
    assert torch.allclose(strip[0], ends[0], atol=1e-5) and torch.allclose(strip[-1], ends[1], atol=1e-5)


def test_arithmetic_by_label_for_a_conditional_gan(make_cfg, cgan_ckpt: str, tmp_path: Path) -> None:
    cfg = generate_cfg(
        make_cfg, cgan_ckpt, "mode=arithmetic", "arithmetic.a=7", "arithmetic.b=1", "arithmetic.c=3",
        "arithmetic.pool=200", "arithmetic.rows=2", f"output={tmp_path / 'cgan_arith.png'}",
    )  # fmt: skip
    out = generate(cfg)
    assert Image.open(out).size == grid_size(2, 4)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["grouped_by"] == "label" and set(summary["group_sizes"]) == {"7", "1", "3"}

    model = load_model(cgan_ckpt, GenerativeModule, what="a generative model")
    codes, classes = grouped_codes(model, 200, 0)
    assert codes.shape == (200, 100 + 10)  # latent + one-hot class
    assert torch.equal(codes[:, 100:].argmax(1), classes)
    rows = vector_arithmetic(
        codes, classes, (7, 1, 3), rows=2, group_size=3, seed=0, names=list("0123456789")
    )
    a, b, c, result = rows[:4]
    assert torch.allclose(result, a - b + c)
    one_hot = torch.eye(10)
    assert torch.allclose(result[100:], one_hot[7] - one_hot[1] + one_hot[3])  # the class part too
