"""What the multi-node tests add from the command line: each rank's weights, a lost node, a data module
that notes its turns."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dlforge.data import MNISTDataModule


class RankWeights(Callback):
    """Save every rank's weights at the end of training to ``<folder>/rank<global rank>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        path = self.folder / f"rank{trainer.global_rank}.pt"
        parameters = [name for name, _ in pl_module.named_parameters()]
        noise = torch.randn(8)  # the rank's next random numbers (e.g. a GAN's latent noise)
        saved = {"state": state, "parameters": parameters, "step": trainer.global_step, "noise": noise}
        torch.save(saved, path)


class LoseNode(Callback):
    """SIGKILL this process (a node lost: its sockets close) at ``step`` on global rank ``rank``, on
    the first attempt only (a torchrun restart, ``TORCHELASTIC_RESTART_COUNT`` > 0, runs on)."""

    def __init__(self, step: int, rank: int = 1) -> None:
        self.step = step
        self.rank = rank

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        first = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) == 0
        if first and trainer.global_rank == self.rank and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class JournaledMNIST(MNISTDataModule):
    """MNIST that notes in ``journal`` when each node (``NODE_RANK``) downloads and sets up."""

    def __init__(self, journal: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.journal = journal

    def note(self, what: str) -> None:
        if not self.journal:
            return
        with open(self.journal, "a") as f:
            f.write(f"{os.environ.get('NODE_RANK', '0')} {what} {time.time()}\n")

    def prepare_data(self) -> None:
        self.note("prepare")
        super().prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.note("setup_start")
        super().setup(stage)
        self.note("setup_end")
