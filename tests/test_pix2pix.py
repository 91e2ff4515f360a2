"""Pix2pix: paired data made on the device, U-Net / PatchGAN, training, metrics, grids, translate CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from dlforge.checkpoint import load_model
from dlforge.data.paired import edge_map, make_input, to_grey
from dlforge.errors import DlforgeError
from dlforge.models.pix2pix import Pix2Pix
from dlforge.nets.pix2pix import PatchDiscriminator, UNetGenerator
from dlforge.pix2pix import model_input, translate
from dlforge.training import train
from tests.conftest import FAST

TINY_NETS = (
    "model.generator.channels=8",
    "model.generator.depth=3",
    "model.discriminator.channels=8",
    "model.pictures.n=4",
)


@pytest.mark.parametrize(
    ("channels_in", "channels_out", "size"), [(1, 1, (28, 28)), (1, 3, (32, 32)), (3, 3, (20, 30))]
)
def test_unet_keeps_the_size_and_patchgan_gives_a_grid_of_logits(channels_in, channels_out, size) -> None:
    generator = UNetGenerator(channels_in, channels_out, *size, channels=8, depth=4)
    inputs = torch.rand(2, channels_in, *size) * 2 - 1
    outputs = generator(inputs)
    assert outputs.shape == (2, channels_out, *size) and outputs.abs().max() <= 1
    discriminator = PatchDiscriminator(channels_in, channels_out, *size, channels=8, layers=2)
    patches = discriminator(inputs, outputs)
    assert patches.shape[:2] == (2, 1) and min(patches.shape[-2:]) > 1  # one logit per overlapping patch


def test_unet_skip_connections_carry_fine_detail() -> None:
    generator = UNetGenerator(1, 1, 32, 32, channels=8, depth=5, dropout=0).eval()
    inputs = torch.zeros(1, 1, 32, 32, requires_grad=True)
    generator(inputs)[0, 0, 5, 5].backward()
    # the outermost skip makes output pixels depend most on the input pixels around them
    near, far = inputs.grad[0, 0, 3:8, 3:8].abs().sum(), inputs.grad[0, 0, 20:25, 20:25].abs().sum()
    assert near > 0 and near > far


def test_too_deep_a_patchgan_fails_clearly() -> None:
    with pytest.raises(ValueError, match="too many for 16x16"):
        PatchDiscriminator(1, 1, 16, 16, layers=4)


def test_edge_map_outlines_a_square_as_a_sketch() -> None:
    images = torch.zeros(1, 1, 16, 16)
    images[..., 4:12, 4:12] = 1.0
    edges = edge_map(images, threshold=0.2, thin=True, invert=True)
    assert edges.shape == (1, 1, 16, 16) and set(edges.unique().tolist()) == {0.0, 1.0}
    lines = edges[0, 0] == 0  # dark lines on white
    assert lines[4:12, 3:5].any() and lines[3:5, 4:12].any()  # along the square's border
    assert not lines[6:10, 6:10].any() and not lines[:2].any()  # not inside, not far outside
    thick = edge_map(images, threshold=0.2, thin=False, invert=False)
    assert thick.sum() > (1 - edges).sum()  # non-maximum suppression thins the lines


def test_grey_is_the_luminance() -> None:
    colours = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(to_grey(colours), torch.full((1, 1, 2, 2), 0.299))


@pytest.mark.parametrize(("data", "shapes"), [("edges2mnist", (1, 1, 28)), ("grey2cifar10", (1, 3, 32))])
def test_paired_batches_are_made_on_the_device(make_cfg, data, shapes) -> None:
    cfg = make_cfg(f"data={data}", "data.batch_size=8", "data.val_size=16")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch[0].dtype == torch.uint8  # the loader still serves the source's uint8 images
    inputs, targets = datamodule.on_after_batch_transfer(batch, 0)
    c_in, c_out, side = shapes
    assert inputs.shape == (8, c_in, side, side) and targets.shape == (8, c_out, side, side)
    assert torch.equal(inputs, make_input(targets, datamodule.spec))
    assert datamodule.model_kwargs()["data"]["task"] == data.split("2")[0]


def test_grey_needs_a_colour_source(make_cfg) -> None:
    cfg = make_cfg("data=grey2cifar10", "data.source=dlforge.data.MNISTDataModule", "data.val_size=16")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    with pytest.raises(DlforgeError, match="needs colour images"):
        datamodule.model_kwargs()


@pytest.fixture(scope="module")
def edges_run(tmp_path_factory, data_dir) -> dict:
    from hydra import compose, initialize_config_dir

    from dlforge import CONF_DIR

    out = tmp_path_factory.mktemp("pix2pix")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.data_dir={data_dir}",
                "model=pix2pix",
                "data=edges2mnist",
                "scheduler=cosine",
                *FAST,
                *TINY_NETS,
            ],
        )
    cfg.paths.output_dir = str(out)
    return {**train(cfg), "dir": out}


def test_colourization_keeps_the_input_luminance() -> None:
    spec = {"task": "grey", "in_channels": 1, "out_channels": 3, "height": 32, "width": 32}
    nets = {"generator": {"name": "unet_generator", "channels": 8, "depth": 3}}
    nets["discriminator"] = {"name": "patch_discriminator", "channels": 8}
    nets["optimizer_g"] = nets["optimizer_d"] = {"_target_": "torch.optim.Adam", "lr": 2e-4}
    inputs = torch.rand(2, 1, 32, 32) * 0.6 + 0.2
    kept = Pix2Pix(**nets, data=spec).eval()(inputs)
    inside = ((kept > 0) & (kept < 1)).all(dim=1, keepdim=True)
    assert kept.shape == (2, 3, 32, 32) and inside.float().mean() > 0.9
    assert torch.allclose(to_grey(kept)[inside], inputs[inside], atol=1e-5)
    free = Pix2Pix(**nets, data=spec, keep_luminance=False).eval()(inputs)
    assert not torch.allclose(to_grey(free), inputs, atol=1e-2)


def test_pix2pix_trains_and_its_losses_move(edges_run) -> None:
    with open(edges_run["dir"] / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("train/g_loss_step")]
    g_losses = [float(row["train/g_loss_step"]) for row in rows]
    d_losses = [float(row["train/d_loss_step"]) for row in rows]
    assert len(g_losses) == 8 and len(set(g_losses)) > 1 and len(set(d_losses)) > 1
    l1 = [float(row["train/l1_step"]) for row in rows]
    assert l1[-1] < l1[0]  # lambda = 100 makes the L1 term drive the first steps
    metrics = edges_run["metrics"]
    assert 0 < metrics["test/l1"] < 1 and metrics["test/psnr"] > 0 and "val/psnr" in metrics


def test_validation_grids_show_input_output_target(edges_run) -> None:
    folder = edges_run["dir"] / "translations"
    assert sorted(p.name for p in folder.glob("*.png")) == ["epoch_000.png", "epoch_001.png", "test.png"]
    assert Image.open(folder / "epoch_001.png").size == (3 * 30 + 2, 4 * 30 + 2)  # 4 rows of 3 pictures


def test_checkpoint_reloads_with_weights_only(edges_run) -> None:
    path = edges_run["last_checkpoint"]
    raw = torch.load(path, weights_only=True)
    assert raw["dlforge"]["model"] == "pix2pix" and raw["hyper_parameters"]["data"]["task"] == "edges"
    assert [s["last_epoch"] for s in raw["lr_schedulers"]] == [2, 2]  # both schedulers stepped each epoch
    model = load_model(path, Pix2Pix)
    again = load_model(path, Pix2Pix)
    inputs = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(inputs), again(inputs))


def test_sketch_inputs_keep_thin_lines_when_shrunk() -> None:
    spec = {"task": "edges", "edges": {"invert": True}, "height": 28, "width": 28, "out_channels": 1}
    drawing = torch.ones(1, 3, 280, 280)
    drawing[..., 140, 40:240] = 0  # a one-pixel pencil line on white paper
    seen = model_input(drawing, spec, sketch=True)
    assert seen.shape == (1, 1, 28, 28) and (seen == 0).sum() >= 18  # the line survives as dark pixels


def test_translate_cli_writes_an_image_of_the_right_size(
    edges_run, run_cli, make_cfg, tmp_path: Path
) -> None:
    picture = tmp_path / "photo.png"
    drawing = Image.new("RGB", (50, 40), "white")
    drawing.paste((0, 0, 0), (10, 10, 40, 30))
    drawing.save(picture)
    ckpt = edges_run["last_checkpoint"]
    result = run_cli(
        "-m",
        "dlforge.pix2pix",
        f"ckpt_path={ckpt}",
        f"input={picture}",
        "output=out.png",
        "hydra.run.dir=outputs/translate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / "out.png").size == (28, 28)  # the model's size
    seen = Image.open(tmp_path / "outputs" / "translate" / "model_input.png")
    assert seen.size == (28, 28) and 0 < (torch.tensor(list(seen.getdata())) < 128).sum() < 28 * 28 / 2
    kept = translate(
        make_cfg(
            f"ckpt_path={ckpt}", f"input={picture}", "keep_size=true", "sketch=true", config_name="pix2pix"
        )
    )
    assert Image.open(kept).size == (50, 40)
    with pytest.raises(DlforgeError, match="no picture at"):
        translate(make_cfg(f"ckpt_path={ckpt}", "input=missing.png", config_name="pix2pix"))


def test_grey_to_colour_trains_on_cifar_and_writes_colour_translations(make_cfg) -> None:
    cfg = make_cfg(
        "model=pix2pix", "data=grey2cifar10", *FAST, *TINY_NETS, "trainer.max_epochs=3", "test=false"
    )
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    with open(out / "metrics.csv") as f:
        l1 = [float(row["train/l1_step"]) for row in csv.DictReader(f) if row.get("train/l1_step")]
    assert len(l1) == 12 and sum(l1[-3:]) < sum(l1[:3])  # the L1 term (weight 100) falls
    model = load_model(summary["last_checkpoint"], Pix2Pix)
    assert model.hparams.data["task"] == "grey" and model.hparams.data["out_channels"] == 3
    grid = Image.open(out / "translations" / "epoch_002.png")
    assert grid.mode == "RGB" and len(set(grid.getdata())) > 50  # colour rows of input | output | target
