"""Pictures: image grids, matplotlib figures, and sending both to whatever loggers a run has."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torchvision.utils import make_grid, save_image


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Save a (N, C, H, W) batch in [0, 1] as one PNG grid; returns the grid (C, H, W)."""
    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(path))
    return grid


def figure_to_tensor(fig: plt.Figure) -> torch.Tensor:
    """Render a matplotlib figure to a (3, H, W) float tensor in [0, 1]."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 255


def save_figure(fig: plt.Figure, path: str | Path) -> torch.Tensor:
    """Save a figure as PNG, close it, and return it as an image tensor for the loggers."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    image = figure_to_tensor(fig)
    plt.close(fig)
    return image


def log_image(trainer: pl.Trainer | None, key: str, image: torch.Tensor) -> None:
    """Send a (C, H, W) image in [0, 1] to every image-capable logger of the run."""
    if trainer is None:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=trainer.global_step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image.permute(1, 2, 0).numpy()], step=trainer.global_step)
