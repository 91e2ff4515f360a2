"""``python -m dlforge.export``: ONNX and TorchScript files with their JSON cards, checked on real inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dlforge.checkpoint import load_model
from dlforge.data.text_encoder import TextEncoder
from dlforge.errors import DlforgeError
from dlforge.export import export
from dlforge.inference import describe, from_export
from dlforge.models.autoencoder import Autoencoder
from tests.app_fixtures import export_cfg, tiny_checkpoints, tiny_export
from tests.test_autoencoder import MNIST


@pytest.fixture(scope="module")
def models(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tiny_checkpoints(data_dir, tmp_path_factory)


def run_onnx(path: Path, *inputs: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {item.name: x for item, x in zip(session.get_inputs(), inputs, strict=True)})


def test_an_onnx_classifier_runs_in_onnxruntime_on_plain_pixels(
    models, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    output = tiny_export(data_dir, tmp_path_factory, "digit")
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["format"] == "onnx" and card["file"] == "digit.onnx" and card["kind"] == "image_classifier"
    assert card["class_names"] == [str(k) for k in range(10)] and card["preprocess"] == "digit"
    assert card["inputs"] == [
        {"name": "images", "dtype": "float32", "shape": ["batch", 1, 28, 28], "range": [0, 1]}
    ]
    assert [o["name"] for o in card["outputs"]] == ["logits", "probabilities"]
    assert (
        card["check"]["inputs"] == "64 mnist test inputs" and card["check"]["max_abs_diff"]["logits"] <= 1e-4
    )
    model = load_model(models["digit"])
    for n in (1, 5):  # the batch size is free; normalization is inside the graph: plain pixels go in
        images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n))
        logits, probs = run_onnx(output, images.numpy())
        with torch.no_grad():
            expected = model(images)
        assert logits.shape == (n, 10)
        np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(probs, expected.softmax(-1).numpy(), atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_export_cli_as_typed(models, run_cli, tmp_path: Path) -> None:
    output = tmp_path / "cnn.pt"
    result = run_cli(
        "-m", "dlforge.export", f"ckpt_path={models['photo']}", "format=torchscript", f"output={output}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"exported image_classifier to {output}" in result.stdout
    assert "check passed on 64 fashion_mnist test inputs: max |difference| logits" in result.stdout
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["format"] == "torchscript" and card["preprocess"] == "object"
    assert card["checkpoint"] == str(Path(models["photo"]).resolve())
    scripted = torch.jit.load(str(output))
    images = torch.rand(3, 1, 28, 28)
    logits, probs = scripted(images)
    with torch.no_grad():
        expected = load_model(models["photo"])(images)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(probs, expected.softmax(-1), atol=1e-6, rtol=1e-5)
    assert from_export(output).backend == "torchscript"


def test_a_text_export_takes_token_ids_from_the_shared_encoder(
    models, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    output = tiny_export(data_dir, tmp_path_factory, "review")
    card = json.loads(output.with_suffix(".json").read_text())
    model = load_model(models["review"])
    spec = model.hparams.data
    assert card["text"] == {key: spec[key] for key in ("vocab", "max_len", "padding", "tokenizer")}
    assert card["inputs"][0] == {"name": "tokens", "dtype": "int64", "shape": ["batch", spec["max_len"]]}
    assert card["check"]["inputs"].endswith("mr test inputs")
    texts = ["a gorgeous , witty film !", "dull and boring .", "zorblax"]
    tokens = TextEncoder.from_spec(card["text"]).encode(texts)
    _, probs = run_onnx(output, tokens.numpy())
    expected = model(TextEncoder.from_spec(model.hparams.data).encode(texts)).softmax(-1)
    np.testing.assert_allclose(probs, expected.detach().numpy(), atol=1e-5)


def test_a_generator_exports_its_decoder(models, data_dir: Path, tmp_path_factory) -> None:
    output = tiny_export(data_dir, tmp_path_factory, "generator")
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["task"] == "image_generation" and card["latent_dim"] == 4 and card["num_classes"] == 0
    assert [i["name"] for i in card["inputs"]] == ["z"] and card["outputs"][0]["shape"] == [
        "batch",
        1,
        28,
        28,
    ]
    assert card["check"]["inputs"] == "64 prior draws (seed 42)"
    model = load_model(models["generator"])
    samples = model.sample(3, seed=7)
    served = from_export(output)
    (images,) = run_onnx(output, served.latent(3, seed=7).numpy())  # the same z as model.sample(seed)
    np.testing.assert_allclose(images, samples.numpy(), atol=1e-5)
    assert images.min() >= 0 and images.max() <= 1


def test_the_check_fails_when_the_export_computes_something_else(
    models, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dlforge.export as tool

    runner = tool.torchscript_runner

    def broken_runner(path: Path):
        run = runner(path)
        return lambda *inputs: [out + 0.01 for out in run(*inputs)]

    monkeypatch.setattr(tool, "torchscript_runner", broken_runner)
    output = tmp_path / "cnn.pt"
    with pytest.raises(DlforgeError, match=r"does not match the checkpoint: logits differs by up to 0\.01"):
        export(export_cfg(data_dir, models["digit"], output, "format=torchscript"))
    assert not output.exists() and not output.with_suffix(".json").exists()


def test_without_data_the_check_uses_random_inputs_unless_data_is_required(models, tmp_path: Path) -> None:
    empty = tmp_path / "no_data"
    empty.mkdir()
    output = tmp_path / "cnn.pt"
    summary = export(export_cfg(empty, models["digit"], output, "format=torchscript"))
    assert summary["check"]["inputs"] == "64 random inputs (data set not found)"
    with pytest.raises(DlforgeError, match="no data to check the export on"):
        export(export_cfg(empty, models["digit"], output, "format=torchscript", "check.require_data=true"))


def test_what_cannot_be_exported_is_refused_in_one_line(models, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DlforgeError, match="autoencoder models cannot be exported or served"):
        describe(Autoencoder(net={"name": "mlp_autoencoder", "hidden": [8]}, data=MNIST, latent_dim=2))
    with pytest.raises(DlforgeError, match="format must be one of onnx, torchscript"):
        export(export_cfg(data_dir, models["digit"], tmp_path / "x.onnx", "format=tflite"))
    with pytest.raises(DlforgeError, match="where the card goes"):
        export(export_cfg(data_dir, models["digit"], tmp_path / "x.json"))
