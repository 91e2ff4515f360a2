"""``python -m dlforge.generate`` on a VAE checkpoint: the same interface as for GANs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dlforge.checkpoint import load_model
from dlforge.models import VAE
from dlforge.training import train
from tests.test_autoencoder import compose_cfg


def test_generate_writes_a_grid_of_the_vaes_prior_samples(data_dir: Path, tmp_path: Path, run_main) -> None:
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
    result = run_main(
        "-m", "dlforge.generate", f"ckpt_path={checkpoint}", "n=64", "seed=0", f"output={output}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    grid = np.asarray(Image.open(output).convert("L"), dtype=np.float32) / 255
    side = 8 * (28 + 2) + 2  # make_grid: 8 columns and 8 rows of 28-pixel images, 2 pixels of padding
    assert grid.shape == (side, side)
    expected = load_model(checkpoint, VAE).sample(64, seed=0)[:, 0].numpy()  # the same prior draws
    for k in (0, 9, 63):
        row, col = divmod(k, 8)
        cell = grid[2 + 30 * row : 30 + 30 * row, 2 + 30 * col : 30 + 30 * col]
        np.testing.assert_allclose(cell, expected[k], atol=1 / 255 + 1e-6)
