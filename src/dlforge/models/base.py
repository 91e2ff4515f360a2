"""What every dlforge LightningModule shares: plain-data hyper-parameters and a tagged checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from dlforge import __version__


class DlforgeModule(pl.LightningModule):
    """Base LightningModule.

    Subclasses take only plain data (dicts, lists, numbers, strings) as hyper-parameters and call
    ``self.save_hyperparameters()``, so a checkpoint loads with ``torch.load(weights_only=True)``
    and rebuilds through :func:`dlforge.checkpoint.load_model`. ``kind`` names the class in the
    checkpoint (see ``dlforge.models.MODELS``).
    """

    kind: ClassVar[str]

    @property
    def run_dir(self) -> Path:
        """The run's output folder (the trainer's ``default_root_dir``), or ``.`` outside a trainer."""
        trainer = self._trainer
        return Path(trainer.default_root_dir) if trainer is not None else Path(".")

    def build_optimizer(self, config: dict[str, Any], params: Any) -> torch.optim.Optimizer:
        """Instantiate an optimizer config (``_target_: torch.optim.Adam``, ``lr: ...``) over ``params``."""
        return instantiate(config, params=params)

    def build_scheduler(self, config: dict[str, Any] | None, optimizer: torch.optim.Optimizer) -> Any:
        """Instantiate an optional learning-rate scheduler config over ``optimizer``."""
        if not config:
            return None
        config = dict(config)
        interval = config.pop("interval", "epoch")
        monitor = config.pop("monitor", None)
        scheduler = instantiate(config, optimizer=optimizer)
        return {"scheduler": scheduler, "interval": interval, **({"monitor": monitor} if monitor else {})}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dlforge"] = {"model": self.kind, "version": __version__}
