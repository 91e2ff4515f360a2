"""What every dlforge LightningModule shares: plain-data hyper-parameters and a tagged checkpoint."""

from __future__ import annotations

import inspect
import random
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate

from dlforge import __version__
from dlforge.errors import DlforgeError, first_line

#: what image models say they need when given other data
IMAGE_DATA = "an image data set (data=mnist, fashion_mnist, cifar10, cifar10_jpeg, image_folder)"


class DlforgeModule(pl.LightningModule):
    """Base LightningModule.

    Subclasses take only plain data (dicts, lists, numbers, strings) as hyper-parameters and call
    ``self.save_hyperparameters()``, so a checkpoint loads with ``torch.load(weights_only=True)``
    and rebuilds through :func:`dlforge.checkpoint.load_model`. ``kind`` names the class in the
    checkpoint (see ``dlforge.models.MODELS``).
    """

    kind: ClassVar[str]
    #: a backward pass leaves some parameters without gradients (each optimizer of a GAN trains one
    #: network): under ``trainer=ddp`` the run uses Lightning's ``ddp_find_unused_parameters_true``
    unused_parameters_in_backward: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        # running sums of the values given to log_train_step this epoch: name -> (sum, samples),
        # and how each mean is logged at epoch end: name -> (key, prog_bar)
        self._train_sums: dict[str, tuple[torch.Tensor | float, int]] = {}
        self._train_epoch_keys: dict[str, tuple[str, bool]] = {}

    def log_train_step(
        self,
        values: Mapping[str, torch.Tensor | float],
        batch_size: int,
        prog_bar: Collection[str] = (),
        epoch_only: Collection[str] = (),
    ) -> None:
        """Log per-step training values as ``train/<name>_step`` and ``train/<name>_epoch``.

        The names ``self.log(on_step=True, on_epoch=True)`` gives, at a fraction of its cost (about
        0.5 ms a call, 4% of a text-CNN step on a CPU): every step adds to a running sum on the
        value's device (weighted by the batch size, no host-device synchronization), whose mean is
        logged at epoch end; the step value goes to Lightning only on the steps the loggers write
        (every ``trainer.log_every_n_steps``), as a CPU tensor, so the progress bar shows the last
        such value. Names in ``epoch_only`` get only the epoch mean, as ``train/<name>``.
        """
        for name, value in values.items():
            value = value.detach() if isinstance(value, torch.Tensor) else float(value)
            total, samples = self._train_sums.get(name, (0.0, 0))
            self._train_sums[name] = (total + value * batch_size, samples + batch_size)
            key = f"train/{name}" if name in epoch_only else f"train/{name}_epoch"
            self._train_epoch_keys.setdefault(name, (key, name in prog_bar))
        if self.logs_this_step():
            for name, value in values.items():
                if name in epoch_only:
                    continue
                # a CPU copy: Lightning re-reads logged step values after every batch (progress
                # bar), which for a GPU tensor would make the CPU wait for the GPU each time
                value = torch.as_tensor(value).detach().cpu()
                self.log(f"train/{name}_step", value, prog_bar=name in prog_bar, batch_size=batch_size)

    def logs_this_step(self) -> bool:
        """Whether the loggers write this training step: Lightning's rule (every ``log_every_n_steps``-th
        optimizer step of the run, and the last), from its public progress counters."""
        trainer = self.trainer
        if trainer.fast_dev_run:
            return True
        if not trainer.log_every_n_steps:
            return False
        batch = trainer.fit_loop.epoch_loop.batch_progress.total.ready  # this batch, counted from 1
        step = (batch - 1) // trainer.accumulate_grad_batches + 1
        return step % trainer.log_every_n_steps == 0 or trainer.should_stop

    def on_train_epoch_end(self) -> None:
        """Log the epoch means of :meth:`log_train_step`'s values (averaged across processes)."""
        for name, (total, samples) in self._train_sums.items():
            key, prog_bar = self._train_epoch_keys[name]
            self.log(key, total / samples, prog_bar=prog_bar, sync_dist=True)
        self._train_sums.clear()

    @staticmethod
    def require_data(data: dict[str, Any], keys: tuple[str, ...], needs: str) -> None:
        """Refuse a data set that lacks what the model is built from (pix2pix on unpaired images, ...)."""
        if not all(key in data for key in keys):
            raise DlforgeError(f"this model needs {needs}, not data={data.get('name')}")

    @property
    def run_dir(self) -> Path:
        """The run's output folder (the trainer's ``default_root_dir``), or ``.`` outside a trainer."""
        trainer = self.attached_trainer()
        return Path(trainer.default_root_dir) if trainer is not None else Path(".")

    def attached_trainer(self) -> pl.Trainer | None:
        """The trainer running this model, or None outside one (``self.trainer`` raises there)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def build_optimizer(self, config: dict[str, Any], params: Any) -> torch.optim.Optimizer:
        """Instantiate an optimizer config (``_target_: torch.optim.Adam``, ``lr: ...``) over ``params``.

        On a GPU, an optimizer with a fused implementation (Adam, AdamW, SGD) uses it unless the
        config sets ``fused`` or ``foreach``: one kernel for all parameters, and under ``16-mixed``
        the gradient scaler's overflow check stays on the GPU instead of making the CPU wait.
        Lightning cannot clip the gradients of a fused optimizer under ``16-mixed``, so with
        ``trainer.gradient_clip_val`` set it stays unfused.
        """
        params = list(params)
        fused = (
            {"fused": True} if not {"fused", "foreach"} & set(config) and self._fuses(config, params) else {}
        )
        try:
            return instantiate(config, params=params, **fused)
        except Exception as err:  # torch's checks (negative lr, ...) and bad arguments
            cause = err.__cause__ or err
            name = str(config.get("_target_", "?")).rsplit(".", 1)[-1]
            raise DlforgeError(
                f"cannot build the {name} optimizer: {first_line(cause)}; check its options"
            ) from None

    def _fuses(self, config: dict[str, Any], params: list[Any]) -> bool:
        """Whether the optimizer of ``config`` can run fused here (see :meth:`build_optimizer`)."""
        tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
        if not tensors or not all(t.is_cuda for t in tensors):
            return False
        trainer = self.attached_trainer()
        if trainer is not None and trainer.gradient_clip_val:
            return False
        return "fused" in inspect.signature(get_class(config["_target_"])).parameters

    def build_scheduler(self, config: dict[str, Any] | None, optimizer: torch.optim.Optimizer) -> Any:
        """Instantiate an optional learning-rate scheduler config over ``optimizer`` (Lightning's dict form).

        ``interval`` (epoch | step) says when it steps; a plateau scheduler reads ``monitor``
        (default: the model's own ``monitor``).
        """
        if not config:
            return None
        config = dict(config)
        interval = config.pop("interval", "epoch")
        monitor = config.pop("monitor", None)
        scheduler = instantiate(config, optimizer=optimizer)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitor = monitor or self.hparams.get("monitor")
            if not monitor:
                raise DlforgeError(
                    "scheduler=plateau needs a metric to watch and this model monitors none; "
                    "set scheduler.monitor=<logged metric> (e.g. val/loss) or use scheduler=cosine"
                )
        return {"scheduler": scheduler, "interval": interval, **({"monitor": monitor} if monitor else {})}

    def configure_optimizers(self) -> Any:
        """One optimizer over every parameter (``hparams.optimizer``) and the optional scheduler.

        Models with several optimizers (GANs, pix2pix: :class:`AdversarialModule`) override this.
        """
        optimizer = self.build_optimizer(self.hparams.optimizer, self.parameters())
        scheduler = self.build_scheduler(self.hparams.get("scheduler"), optimizer)
        return {"optimizer": optimizer, **({"lr_scheduler": scheduler} if scheduler else {})}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dlforge"] = {"model": self.kind, "version": __version__, "rng": rng_states()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming restores the random streams too, so the run continues exactly as it would have."""
        rng = checkpoint.get("dlforge", {}).get("rng")
        trainer = self.attached_trainer()
        if rng and trainer is not None and trainer.state.fn == "fit":
            set_rng_states(rng)

    # Lightning ignores a scheduler's monitor under manual optimization: configure_optimizers keeps
    # it here and step_schedulers reads it
    scheduler_monitor: str | None = None

    def step_schedulers(self, interval: str) -> None:
        """Manual optimization: step the schedulers whose interval is ``interval`` (``epoch`` |
        ``step``), as automatic optimization would; a plateau scheduler steps on the monitored metric."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval:
                continue
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                value = self.trainer.callback_metrics.get(self.scheduler_monitor)
                if value is not None:
                    config.scheduler.step(value)
            else:
                config.scheduler.step()


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


class AdversarialModule(DlforgeModule):
    """A ``generator`` and a ``discriminator`` trained by manual optimization, each with its own
    optimizer config (``hparams.optimizer_g``, ``hparams.optimizer_d``); the ``scheduler`` config, if
    any, gets one scheduler per optimizer, stepped by :meth:`step_schedulers` as automatic
    optimization would (per epoch or per step; plateau schedulers on their monitored metric)."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    unused_parameters_in_backward = True

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def configure_optimizers(self) -> Any:
        optimizers = [
            self.build_optimizer(self.hparams.optimizer_g, self.generator.parameters()),
            self.build_optimizer(self.hparams.optimizer_d, self.discriminator.parameters()),
        ]
        schedulers = [self.build_scheduler(self.hparams.get("scheduler"), opt) for opt in optimizers]
        if not schedulers[0]:
            return optimizers
        # Lightning ignores a monitor under manual optimization: step_schedulers reads it from here
        self.scheduler_monitor = schedulers[0].get("monitor")
        return optimizers, [{k: v for k, v in s.items() if k != "monitor"} for s in schedulers]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.step_schedulers("step")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.step_schedulers("epoch")
