"""Pictures: image grids, matplotlib figures, and sending both to whatever loggers a run has."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torchvision.utils import make_grid, save_image

from dlforge.outputs import atomic_write


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Save a (N, C, H, W) batch in [0, 1] as one PNG grid; returns the grid (C, H, W)."""
    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    with atomic_write(path) as tmp:
        save_image(grid, str(tmp))
    return grid


def figure_to_tensor(fig: Figure) -> torch.Tensor:
    """Render a matplotlib figure to a (3, H, W) float tensor in [0, 1]."""
    canvas = FigureCanvasAgg(fig)  # draws any figure, with or without pyplot
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 255


def save_figure(fig: Figure, path: str | Path) -> torch.Tensor:
    """Save a figure as PNG, close it, and return it as an image tensor for the loggers."""
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    image = figure_to_tensor(fig)
    plt.close(fig)  # a no-op for figures made without pyplot
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


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside the block; the module's previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)
