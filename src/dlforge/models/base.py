"""The shared bases of dlforge's LightningModules: plain-data hyper-parameters, a tagged checkpoint and
the training options (optimizers, scheduler, monitored metric) every model takes (:class:`DlforgeModule`);
generative and adversarial models; and the classifiers' metrics (:class:`ClassifierModule`,
:class:`WeightedClassifierModule`)."""

from __future__ import annotations

import inspect
import random
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
)

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

    The training options every model takes are written here once (:meth:`training_defaults`): its
    optimizer configs (``optimizer``; GANs: ``optimizer_g``, ``optimizer_d``), ``scheduler``, and
    ``monitor``/``monitor_mode``, the metric that picks the best checkpoint (the checkpoint callback
    reads them from the model config) and whether higher is better. A model takes them as
    ``**training`` and hands them on, ``super().__init__(**training)``; its signature
    (``inspect.signature(cls)``, which :func:`dlforge.models.build_model` checks options against)
    lists them, and ``save_hyperparameters`` keeps them, defaults included. The default
    :meth:`configure_optimizers` builds the ``optimizer`` and ``scheduler`` configs.
    """

    kind: ClassVar[str]
    #: a backward pass leaves some parameters without gradients (each optimizer of a GAN trains one
    #: network): under ``trainer=ddp`` the run uses Lightning's ``ddp_find_unused_parameters_true``
    unused_parameters_in_backward: ClassVar[bool] = False
    #: the hyper-parameters holding the model's optimizer configs (none: it is fitted without one,
    #: and takes no ``scheduler`` either)
    optimizer_keys: ClassVar[tuple[str, ...]] = ("optimizer",)
    #: the default of ``monitor``, the metric that picks the best checkpoint (None: the latest is kept)
    default_monitor: ClassVar[str | None] = None
    #: the default of ``monitor_mode``: ``max`` when a higher ``monitor`` is better, else ``min``
    default_monitor_mode: ClassVar[str] = "min"

    def __init__(self, **training: Any) -> None:
        """``training``: the training options of :meth:`training_defaults` (their defaults for those
        not given), kept as hyper-parameters by :meth:`save_hyperparameters`."""
        super().__init__()
        unknown = sorted(set(training) - set(self.training_defaults()))
        if unknown:
            options = ", ".join(self.training_defaults())
            raise TypeError(
                f"{type(self).__name__} has no option {', '.join(unknown)}; its training options: {options}"
            )
        # running sums of the values given to log_train_step this epoch: name -> (sum, samples),
        # and how each mean is logged at epoch end: name -> (key, prog_bar)
        self._train_sums: dict[str, tuple[torch.Tensor | float, int]] = {}
        self._train_epoch_keys: dict[str, tuple[str, bool]] = {}

    @classmethod
    def training_defaults(cls) -> dict[str, Any]:
        """The training options this class takes, with their defaults: each of ``optimizer_keys``
        (an optimizer config: ``_target_: torch.optim.Adam``, ``lr: ...``; None), ``scheduler`` (an
        optional learning-rate scheduler config, see :meth:`build_scheduler`; only with an optimizer),
        ``monitor`` and ``monitor_mode`` (``default_monitor``, ``default_monitor_mode``)."""
        options: dict[str, Any] = dict.fromkeys(cls.optimizer_keys)
        if cls.optimizer_keys:
            options["scheduler"] = None
        return {**options, "monitor": cls.default_monitor, "monitor_mode": cls.default_monitor_mode}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A model whose ``__init__`` takes ``**training`` (handed to this base) shows the training
        options in its signature, as keyword arguments with their defaults."""
        super().__init_subclass__(**kwargs)
        cls.__signature__ = None  # type: ignore[misc]  # (not the parent's): inspect reads __init__
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
        last = parameters[-1] if parameters else None
        if last is None or last.kind is not inspect.Parameter.VAR_KEYWORD or last.name != "training":
            return
        named = {p.name for p in parameters}
        training = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in cls.training_defaults().items()
            if name not in named
        ]
        cls.__signature__ = inspect.Signature(parameters[:-1] + training)  # type: ignore[misc]

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: Sequence[str] | str | None = None,
        frame: FrameType | None = None,
        logger: bool = True,
    ) -> None:
        """Lightning's (by default every argument of the calling ``__init__``, ``**training`` merged in),
        plus the training options not given, with their defaults (:meth:`training_defaults`)."""
        frame = frame or inspect.currentframe().f_back  # type: ignore[union-attr]
        super().save_hyperparameters(*args, ignore=ignore, frame=frame, logger=logger)
        if args:
            return
        ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
        defaults = {
            name: value
            for name, value in self.training_defaults().items()
            if name not in self.hparams and name not in ignored
        }
        if defaults:
            super().save_hyperparameters({**self.hparams, **defaults}, logger=logger)

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
        if not config:
            keys = ", ".join(f"model.{key}" for key in self.optimizer_keys) or "an optimizer"
            raise DlforgeError(f"this {self.kind} model has no optimizer config to train with; set {keys}")
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

    #: the resolved data config of the run that trains the model (``build_run`` sets it): kept in its
    #: checkpoints, so that ``evaluate`` tests it on the split it trained on
    data_config: dict[str, Any] | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dlforge"] = {
            "model": self.kind,
            "version": __version__,
            "rng": rng_states(),
            "data": self.data_config,
        }

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
    optimizer_keys = ("optimizer_g", "optimizer_d")

    def __init__(self, **training: Any) -> None:
        super().__init__(**training)
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

    def on_train_start(self) -> None:
        """Under DDP every rank was seeded alike, so each would draw the same noise and fakes: after
        DDP has copied rank 0's weights, offset each rank's random numbers by its rank."""
        super().on_train_start()
        if self.trainer.world_size > 1:
            torch.manual_seed((torch.initial_seed() + self.global_rank) % 2**63)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.step_schedulers("step")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.step_schedulers("epoch")


class ClassifierModule(DlforgeModule):
    """What every softmax classifier shares, whatever its inputs (images, token ids).

    Batches are ``(inputs, labels)`` and ``self(inputs)`` gives logits. Logs ``train/loss_step``,
    ``train/loss_epoch``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/acc_best``, ``test/loss``,
    ``test/acc`` and keeps the test confusion matrix in ``test_confusion`` (written by
    :class:`dlforge.callbacks.classifier.ConfusionMatrix`). Subclasses call
    :meth:`setup_metrics` and keep ``label_smoothing`` and ``data["class_names"]`` in their hyper-parameters.
    The best checkpoint is the one of the highest ``val/acc`` unless ``monitor`` says otherwise.
    """

    default_monitor = "val/acc"
    default_monitor_mode = "max"

    def setup_metrics(self, num_classes: int) -> None:
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_classes)

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, labels = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        return loss, logits, labels

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, labels = self._step(batch)
        # the accuracy as a running mean, logged once an epoch: torchmetrics' update cost 50 us a step
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        values = {"loss": loss, "acc": accuracy}
        self.log_train_step(values, batch_size=len(labels), prog_bar=values, epoch_only=("acc",))
        return loss

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # forget the sanity-check validation

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.val_loss(loss, weight=len(labels))
        self.val_acc(logits, labels)
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.test_loss(loss, weight=len(labels))
        self.test_acc(logits, labels)
        self.test_confusion(logits, labels)
        self.log("test/loss", self.test_loss, on_epoch=True)
        self.log("test/acc", self.test_acc, on_epoch=True)


class WeightedClassifierModule(ClassifierModule):
    """A classifier whose training loss weighs classes (``data["class_weights"]``, from the training
    split: rare classes count as much as common ones) and that, for two classes, also logs
    ``val/roc_auc``, ``val/pr_auc``, ``test/roc_auc`` and ``test/pr_auc`` (area under the ROC curve and
    average precision of class 1: on data that is 0.2% positive, accuracy alone says nothing).
    Validation and test losses stay unweighted (the log loss of the data as it is). The tabular
    classifier and the classical baselines share it."""

    def setup_metrics(self, num_classes: int, class_weights: list[float] | None = None) -> None:
        super().setup_metrics(num_classes)
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.two_classes = num_classes == 2
        if self.two_classes:
            self.val_roc_auc, self.test_roc_auc = BinaryAUROC(), BinaryAUROC()
            self.val_pr_auc, self.test_pr_auc = BinaryAveragePrecision(), BinaryAveragePrecision()

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, labels = batch
        logits = self(inputs)
        weight = self.class_weights if self.training else None
        smoothing = self.hparams.get("label_smoothing", 0.0)
        loss = F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing)
        if self.two_classes and not self.training:
            self.log_ranking(logits, labels)
        return loss, logits, labels

    def log_ranking(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Update and log ROC-AUC and PR-AUC of class 1 for this validation or test batch."""
        stage = "test" if self.trainer.testing else "val"
        scores = logits.float().softmax(dim=1)[:, 1]
        for name in ("roc_auc", "pr_auc"):
            metric = getattr(self, f"{stage}_{name}")
            metric(scores, labels)
            self.log(f"{stage}/{name}", metric, on_epoch=True)
