"""What every dlforge data module declares: its ``spec`` and the one hand-off to the model; and the
loader options every batching data module takes (:class:`LoaderOptions`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import pytorch_lightning as pl

from dlforge.errors import DlforgeError


class DataModule(pl.LightningDataModule):
    """A LightningDataModule that tells the model what it needs to know about the data.

    ``spec`` is plain data (shapes, classes, vocabulary, normalization statistics) that the model
    keeps in its hyper-parameters, so a checkpoint alone knows its inputs. ``model_kwargs()`` is the
    one hand-off from data to model (the spec plus anything too large for hyper-parameters, such as
    an embedding matrix). ``adopt_spec()`` makes the data module encode its data as a trained model's
    data was (a checkpoint's vocabulary), before ``setup``.
    """

    name: str = "data"

    @property
    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def model_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the model is built with (``data``: the spec)."""
        return {"data": self.spec}

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """Prepare the data as a trained model's data was; data with nothing to adopt ignores it."""


@dataclass
class LoaderOptions:
    """How a data module serves its batches: the options every batching data module takes, written
    once here (a data module takes them as ``**loader`` and hands them to
    :class:`~dlforge.data.tensors.TensorDataModule`, with its own defaults in ``loader_defaults``).

    Args:
        batch_size: training batch size.
        eval_batch_size: validation and test batch size (None: ``batch_size``).
        num_workers: loader worker processes (0: in the training process; in-memory tensors gain
            nothing from workers).
        pin_memory: page-locked host batches, for faster copies to the GPU.
        on_device: keep the whole data set on the training device (GPU) and index it there: for
            small sets it removes host-to-device copies; needs (and implies) ``num_workers=0``.
    """

    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int = 0
    pin_memory: bool = False
    on_device: bool = False

    def __post_init__(self) -> None:
        self.eval_batch_size = self.eval_batch_size or self.batch_size
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DlforgeError(f"data.{name}={value}: use a whole number of examples, at least 1")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise DlforgeError(
                f"data.num_workers={self.num_workers}: use 0 (in-process) or a positive number"
            )

    @classmethod
    def given(cls, defaults: Mapping[str, Any], *args: Any, **named: Any) -> LoaderOptions:
        """The options given in this class's field order (``args``) and by name, the others from
        ``defaults`` (a data module's own), then from this class."""
        names = [field.name for field in fields(cls)]
        if len(args) > len(names):
            raise TypeError(f"the loader options are {', '.join(names)}; got {len(args)} values")
        positional = dict(zip(names, args, strict=False))
        unknown = sorted((set(named) | set(defaults)) - set(names))
        if unknown:
            raise TypeError(
                f"no loader option {', '.join(unknown)}; the loader options are {', '.join(names)}"
            )
        if set(positional) & set(named):
            raise TypeError(f"loader options given twice: {', '.join(sorted(set(positional) & set(named)))}")
        return cls(**{**defaults, **positional, **named})
