"""What every dlforge LightningModule shares: plain-data hyper-parameters and a tagged checkpoint."""

from __future__ import annotations

import random
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
        checkpoint["dlforge"] = {"model": self.kind, "version": __version__, "rng": rng_states()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming restores the random streams too, so the run continues exactly as it would have."""
        rng = checkpoint.get("dlforge", {}).get("rng")
        if rng and self._trainer is not None and self.trainer.state.fn == "fit":
            set_rng_states(rng)


def rng_states() -> dict[str, Any]:
    """Python's and torch's random states as checkpoint-safe values (tensors, tuples of ints)."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class GenerativeModule(DlforgeModule):
    """A model that turns latent vectors into images: GANs, VAEs.

    The shared interface of ``python -m dlforge.generate`` (grids, interpolation, arithmetic) and
    of sample-quality metrics. Subclasses set ``latent_dim`` (and ``num_classes`` > 0 when the
    generator is conditioned on a class label) and implement :meth:`decode_latent`.
    """

    latent_dim: int
    num_classes: int = 0  # > 0: decode_latent needs labels

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latent vectors from the prior, N(0, I), on the model's device."""
        return torch.randn(n, self.latent_dim, generator=generator, device="cpu").to(self.device)

    def decode_latent(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1], shape (N, C, H, W), for latent vectors ``z`` (and class ``labels``)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` images from the prior, reproducible with ``seed``."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.sample_latent(n, generator)
        if self.num_classes and labels is None:
            labels = torch.arange(n, device=self.device) % self.num_classes
        return self.decode_latent(z, labels)
