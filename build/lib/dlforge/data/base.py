"""What every dlforge data module declares: its ``spec`` and the one hand-off to the model."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


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
