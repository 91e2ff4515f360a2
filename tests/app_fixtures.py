"""Shared by the export, predict and app tests: tiny trained checkpoints (one of each kind the app
serves), their exports, hand-drawn-like digit images, WAV files, and a headless Chromium for browser tests.

Checkpoints and exports are made once per test session (``once_per_session``: once for all
pytest-xdist workers), so every test module that needs them reuses the same files.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from PIL import Image, ImageDraw

from dlforge import CONF_DIR
from dlforge.export import export
from dlforge.training import train
from tests.conftest import FAST, once_per_session
from tests.test_audio import FAST_AUDIO, TINY_WAVENET, write_spoken_digits
from tests.text_fixtures import text_overrides, write_text_data

#: Panel -> the training overrides of its tiny model.
TINY_MODELS = {
    "digit": ("model=cnn_seed000", "data=mnist"),
    "photo": ("model=cnn_seed000", "data=fashion_mnist"),
    "review": ("model=textcnn_kim", "optimizer.lr=0.003"),
    "generator": (
        "model=vae",
        "data=mnist",
        "model.net.hidden=[32]",
        "model.latent_dim=4",
        "model.pictures=null",
    ),
}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def train_tiny(data_dir: Path, out: Path, panel: str) -> str:
    overrides = list(TINY_MODELS[panel])
    if panel == "review":
        root = write_text_data(data_dir)
        overrides += [f"paths.data_dir={root}", *text_overrides(root)]
    else:
        overrides += [f"paths.data_dir={data_dir}", *FAST, "trainer.max_epochs=1"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.cache_dir={out / 'cache'}", *overrides, "test=false"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out / panel)
    return train(cfg)["last_checkpoint"]


def tiny_checkpoints(data_dir: Path, factory: pytest.TempPathFactory) -> dict[str, str]:
    """Panel -> checkpoint of a tiny model trained on the test data (made once per session)."""

    def build(root: Path) -> dict[str, str]:
        return {panel: train_tiny(data_dir, root, panel) for panel in TINY_MODELS}

    return once_per_session(factory, "tiny_models", build)


def export_cfg(data_dir: Path, ckpt: str, output: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "export",
            overrides=[f"ckpt_path={ckpt}", f"output={output}", f"paths.data_dir={data_dir}", *overrides],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(output.parent)
    return cfg


def tiny_export(data_dir: Path, factory: pytest.TempPathFactory, panel: str, fmt: str = "onnx") -> Path:
    """The ONNX (or TorchScript) export of a panel's tiny model (made once per session)."""

    def build(root: Path) -> dict[str, str]:
        output = root / f"{panel}{'.onnx' if fmt == 'onnx' else '.pt'}"
        data = write_text_data(data_dir) if panel == "review" else data_dir
        export(export_cfg(data, tiny_checkpoints(data_dir, factory)[panel], output, f"format={fmt}"))
        return {"export": str(output)}

    return Path(once_per_session(factory, f"tiny_export_{panel}_{fmt}", build)["export"])


def drawn_seven(size: int = 280, width: int = 20, offset: tuple[int, int] = (0, 0)) -> Image.Image:
    """A '7' drawn black on white, as a user draws it on a canvas."""
    image = Image.new("L", (size, size), 255)
    s = size / 280
    dx, dy = offset
    points = [(70 * s + dx, 60 * s + dy), (210 * s + dx, 60 * s + dy), (120 * s + dx, 230 * s + dy)]
    ImageDraw.Draw(image).line(points, fill=0, width=max(1, round(width * s)), joint="curve")
    return image


def png_bytes(image: Image.Image, format: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def mnist_like(image: Image.Image) -> np.ndarray:
    """Reference for the digit recipe, computed independently with numpy: invert, crop, fit 20x20,
    centre by mass in 28x28 (bilinear resampling, so comparisons use a tolerance)."""
    pixels = 1 - np.asarray(image.convert("L"), dtype=np.float64) / 255
    rows, cols = np.nonzero(pixels > 0.1 * pixels.max())
    crop = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape
    scale = 20 / max(h, w)
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
    )
    patch = np.asarray(small, dtype=np.float64) / 255
    patch /= patch.max()
    r, c = np.indices(patch.shape) + 0.5
    com = (patch * r).sum() / patch.sum(), (patch * c).sum() / patch.sum()
    frame = np.zeros((28, 28))
    top, left = round(14 - com[0]), round(14 - com[1])
    frame[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return frame


def chromium_or_skip() -> str:
    """Debian's Chromium for the browser tests: installed with apt when missing (as root), else skip."""
    pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need playwright (pip install -e '.[dev]')"
    )
    if not Path(CHROMIUM).is_file() and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium) for browser tests")
    return CHROMIUM


# --- spoken digits: a tiny audio classifier (speech=) and a tiny WaveNet (wavenet=) ------------------
TINY_AUDIO = {"speech": ("model=audio_cnn",), "wavenet": TINY_WAVENET}


def tiny_audio_checkpoints(factory: pytest.TempPathFactory) -> dict[str, str]:
    """Panel -> checkpoint of a tiny audio model trained on tone-and-noise "digits" (once per session)."""

    def build(root: Path) -> dict[str, str]:
        digits = write_spoken_digits(root / "spoken-digits", takes=1)
        checkpoints = {}
        for panel, overrides in TINY_AUDIO.items():
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                cfg = compose(
                    "train",
                    overrides=[
                        f"paths.cache_dir={root / 'cache'}", *FAST_AUDIO, f"data.root={digits}", *overrides,
                        "trainer.max_epochs=1", "test=false",
                    ],
                )  # fmt: skip
            with open_dict(cfg):
                cfg.paths.output_dir = str(root / panel)
            checkpoints[panel] = train(cfg)["last_checkpoint"]
        return checkpoints

    return once_per_session(factory, "tiny_audio", build)


def wav_file(samples: np.ndarray, rate: int = 8000, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV file (``samples`` in [-1, 1], interleaved when stereo), with the ``wave`` module."""
    out = io.BytesIO()
    with wave.open(out, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes())
    return out.getvalue()
