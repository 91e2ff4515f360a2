"""``python -m dlforge.generate`` on a VAE checkpoint: the same interface as for GANs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dlforge.train import train
from tests.test_autoencoder import compose_cfg

pytest.importorskip("dlforge.generate")


def test_generate_writes_a_grid_of_vae_samples(data_dir: Path, tmp_path: Path, run_cli) -> None:
    cfg = compose_cfg(
        data_dir,
        tmp_path / "run",
        "model=vae",
        "model.net.hidden=[32]",
        "model.latent_dim=4",
        "model.pictures=null",
        "trainer.max_epochs=1",
        "test=false",
    )
    checkpoint = train(cfg)["last_checkpoint"]
    output = tmp_path / "vae_samples.png"
    result = run_cli(
        "-m", "dlforge.generate", f"ckpt_path={checkpoint}", "n=64", "seed=0", f"output={output}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    side = 8 * (28 + 2) + 2  # make_grid: 8 columns and 8 rows of 28-pixel images, 2 pixels of padding
    assert Image.open(output).size == (side, side)
