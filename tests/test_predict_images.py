"""Image preprocessing (dlforge.preprocess) and ``python -m dlforge.predict`` on images and exported files."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from PIL import Image, ImageDraw

from dlforge import CONF_DIR
from dlforge.errors import DlforgeError
from dlforge.inference import load
from dlforge.predict import main as predict_main
from dlforge.predict import predict
from dlforge.preprocess import ImageInputError, ImageTooLarge, load_image, open_image, prepare
from tests.app_fixtures import drawn_seven, mnist_like, png_bytes, tiny_checkpoints, tiny_export

MNIST = {"name": "mnist", "channels": 1, "height": 28, "width": 28}
FASHION = {"name": "fashion_mnist", "channels": 1, "height": 28, "width": 28}
RGB32 = {"name": "cifar10", "channels": 3, "height": 32, "width": 32}


def centre_of_mass(frame: np.ndarray) -> tuple[float, float]:
    r, c = np.indices(frame.shape) + 0.5
    return (frame * r).sum() / frame.sum(), (frame * c).sum() / frame.sum()


# --- the digit recipe (MNIST) -------------------------------------------------------------------
def test_a_drawn_digit_becomes_an_mnist_digit() -> None:
    drawing = drawn_seven()
    frame = load_image(png_bytes(drawing), MNIST)[0].numpy()
    assert frame.shape == (28, 28) and frame.min() >= 0 and frame.max() == pytest.approx(1, abs=0.02)
    assert frame[0].max() == 0 and frame[:, 0].max() == 0  # light strokes on black, margins empty
    rows, cols = np.nonzero(frame > 0.05)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 21  # fitted into the 20x20 box (+1 for resampling)
    assert centre_of_mass(frame) == pytest.approx((14, 14), abs=0.5)
    reference = mnist_like(drawing)
    assert np.abs(frame - reference).mean() < 0.04
    assert np.corrcoef(frame.ravel(), reference.ravel())[0, 1] > 0.95


@pytest.mark.parametrize(
    "variant",
    [
        "shifted_and_small",
        "white_on_black",
        "rgba_transparent",
        "rgb_jpeg",
        "palette",
        "16_bit",
        "grey_paper",
    ],
)
def test_the_digit_recipe_ignores_position_size_colours_and_modes(variant: str) -> None:
    """The same digit in any placement, colour convention or file mode gives (almost) the same input."""
    reference = load_image(png_bytes(drawn_seven()), MNIST)[0]
    drawing = drawn_seven()
    if variant == "shifted_and_small":
        image = Image.new("L", (500, 400), 255)
        image.paste(drawing.resize((140, 140), Image.Resampling.LANCZOS), (300, 40))
    elif variant == "white_on_black":
        image = Image.eval(drawing, lambda v: 255 - v)
    elif variant == "rgba_transparent":  # strokes on a transparent canvas
        image = Image.new("RGBA", drawing.size, (0, 0, 0, 0))
        image.putalpha(Image.eval(drawing, lambda v: 255 - v))
    elif variant == "rgb_jpeg":
        image = Image.open(io.BytesIO(png_bytes(drawing.convert("RGB"), "JPEG", quality=85)))
    elif variant == "palette":
        image = drawing.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    elif variant == "16_bit":
        image = Image.fromarray((np.asarray(drawing, dtype=np.uint16) * 257).astype(np.uint16))
        assert image.mode.startswith("I;16")
    else:  # a photo of paper: grey background, dark grey ink, noise
        rng = np.random.default_rng(0)
        pixels = (
            170 + 40 * (np.asarray(drawing, dtype=np.float64) / 255) + rng.normal(0, 4, drawing.size[::-1])
        )
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).convert("RGB")
    frame = prepare(image, MNIST)[0]
    assert (frame - reference).abs().mean() < 0.05, variant
    assert centre_of_mass(frame.numpy()) == pytest.approx((14, 14), abs=0.6)


def test_a_blank_drawing_gives_a_blank_input() -> None:
    assert prepare(Image.new("L", (100, 100), 255), MNIST).abs().max() == 0


# --- the object recipe (Fashion-MNIST) and plain resizing ---------------------------------------
def shirt_photo(size: tuple[int, int] = (600, 400)) -> Image.Image:
    """A dark T-shirt shape on a white product-photo background, off centre."""
    image = Image.new("RGB", size, (250, 250, 250))
    ImageDraw.Draw(image).polygon(
        [(100, 60), (180, 40), (260, 60), (320, 120), (280, 150), (260, 130), (260, 330), (100, 330),
         (100, 130), (80, 150), (40, 120)],
        fill=(40, 50, 90),
    )  # fmt: skip
    return image


def test_a_product_photo_becomes_a_fashion_mnist_item() -> None:
    frame = prepare(shirt_photo(), FASHION)[0]
    assert frame.shape == (28, 28)
    assert frame[frame > 0.05].mean() > 0.6  # the dark shirt is now light, the white background black
    assert frame[27, 0] < 0.05 and frame[27, 27] < 0.05  # beside the shirt's body: background
    rows, cols = torch.nonzero(frame > 0.3, as_tuple=True)
    assert max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) + 1 >= 27  # longest side fills it
    assert (rows.float().mean() - 13.5).abs() < 2.5 and (cols.float().mean() - 13.5).abs() < 2.5  # centred


def test_other_data_sets_resize_to_the_models_channels_and_size() -> None:
    grey = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1)))
    pixels = prepare(grey, RGB32)
    assert pixels.shape == (3, 32, 32)
    assert torch.equal(pixels[0], pixels[2])  # grey -> three equal channels
    assert pixels[:, :, 0].mean() < 0.05 and pixels[:, :, -1].mean() > 0.95  # the gradient survives
    rgb = Image.new("RGB", (10, 10), (255, 0, 0))
    assert prepare(rgb, RGB32)[:, 5, 5].tolist() == pytest.approx([1, 0, 0], abs=1e-6)
    assert prepare(rgb, MNIST, style="resize").shape == (1, 28, 28)


# --- validation -----------------------------------------------------------------------------------
def test_bad_files_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="not an image file"):
        open_image(b"hello, I am a text file")
    with pytest.raises(ImageInputError, match="empty"):
        open_image(b"")
    with pytest.raises(ImageInputError, match="damaged or truncated"):
        open_image(png_bytes(drawn_seven())[:400])
    with pytest.raises(ImageInputError, match="TIFF images are not accepted"):
        open_image(png_bytes(drawn_seven(), "TIFF"))
    with pytest.raises(ImageTooLarge, match="larger than"):
        open_image(png_bytes(drawn_seven()), max_bytes=1000)
    with pytest.raises(ImageInputError, match="no image file"):
        open_image(tmp_path / "missing.png")


def test_decompression_bombs_are_refused_before_decoding() -> None:
    bomb = png_bytes(Image.new("1", (7_000, 7_000)))  # 49 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLarge, match="pixels"):
        open_image(bomb)
    with pytest.raises(ImageTooLarge, match="pixels"):
        open_image(png_bytes(Image.new("L", (300, 300))), max_pixels=50_000)


# --- python -m dlforge.predict ------------------------------------------------------------------
def predict_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="predict", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = "unused"
    return cfg


@pytest.fixture(scope="module")
def models(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tiny_checkpoints(data_dir, tmp_path_factory)


def test_predict_prints_the_top_classes_of_an_image(
    models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    image = tmp_path / "seven.png"
    drawn_seven().save(image)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["predict", f"ckpt_path={models['digit']}", f"image={image}", "top_k=4"])
    predict_main()  # as typed, in this process
    lines = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 4 and all(len(line) == 2 for line in lines)
    probabilities = [float(p) for _, p in lines]
    assert probabilities == sorted(probabilities, reverse=True)
    model = load(models["digit"])
    expected = model.classify(load_image(image, model.spec)[None])[0]
    assert lines[0][0] == model.class_names[int(expected.argmax())]
    assert probabilities[0] == pytest.approx(float(expected.max()), abs=1e-4)

    document = predict(predict_cfg(f"ckpt_path={models['digit']}", f"image={image}", "json=true"))
    printed = json.loads(capsys.readouterr().out)
    assert printed == document["predictions"][0] and printed["image"] == str(image)
    assert sum(printed["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert printed["label"] == lines[0][0] and len(printed["top"]) == 3


def test_predict_a_folder_writes_a_csv_and_skips_what_is_not_an_image(
    models, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shirt_photo().save(folder / "shirt.jpg")
    drawn_seven().convert("RGBA").save(folder / "seven.png")
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "preds.csv"
    summary = predict(predict_cfg(f"ckpt_path={models['photo']}", f"image={folder}", f"output={out}"))
    rows = list(csv.DictReader(out.open()))
    assert summary["count"] == 2 and [Path(r["image"]).name for r in rows] == ["seven.png", "shirt.jpg"]
    names = load(models["photo"]).class_names
    for row in rows:
        p = [float(row[f"p_{name}"]) for name in names]
        assert sum(p) == pytest.approx(1, abs=1e-4) and row["label"] == names[int(np.argmax(p))]
    assert "broken.png" in caplog.text


def test_an_exported_model_predicts_what_its_checkpoint_predicts(
    models, data_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    onnx = tiny_export(data_dir, tmp_path_factory, "digit")
    image = tmp_path / "seven.png"
    drawn_seven().save(image)
    from_ckpt = predict(predict_cfg(f"ckpt_path={models['digit']}", f"image={image}", "json=true"))
    from_onnx = predict(predict_cfg(f"model_path={onnx}", f"image={image}", "json=true"))
    want, got = from_ckpt["predictions"][0], from_onnx["predictions"][0]
    assert got["label"] == want["label"] and from_onnx["kind"] == "image_classifier"
    for name, p in want["probabilities"].items():
        assert got["probabilities"][name] == pytest.approx(p, abs=1e-5)

    review_onnx = tiny_export(data_dir, tmp_path_factory, "review")
    text = "a gorgeous , witty and moving film ."
    want = predict(predict_cfg(f"ckpt_path={models['review']}", f"text='{text}'", "json=true"))
    got = predict(predict_cfg(f"model_path={review_onnx}", f"text='{text}'", "json=true"))
    want, got = want["predictions"][0], got["predictions"][0]
    assert got["label"] == want["label"] == "positive"
    assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)


def test_predict_says_what_is_wrong(models, tmp_path: Path) -> None:
    image = tmp_path / "seven.png"
    drawn_seven().save(image)
    with pytest.raises(DlforgeError, match="is a text classifier: pass text="):
        predict(predict_cfg(f"ckpt_path={models['review']}", f"image={image}"))
    with pytest.raises(DlforgeError, match="either ckpt_path="):
        predict(
            predict_cfg(f"ckpt_path={models['digit']}", f"model_path={models['digit']}", f"image={image}")
        )
    with pytest.raises(DlforgeError, match=r"predict does not handle vae models.*dlforge\.generate"):
        predict(predict_cfg(f"ckpt_path={models['generator']}", f"image={image}"))
    with pytest.raises(DlforgeError, match="not an image file"):
        predict(predict_cfg(f"ckpt_path={models['digit']}", f"image={Path(models['digit'])}"))
    with pytest.raises(DlforgeError, match="no image file or folder"):
        predict(predict_cfg(f"ckpt_path={models['digit']}", f"image={tmp_path / 'nothing'}"))
    lonely = tmp_path / "model.onnx"
    lonely.write_bytes(b"onnx?")
    with pytest.raises(DlforgeError, match=r"no model\.json beside"):
        predict(predict_cfg(f"model_path={lonely}", f"image={image}"))
