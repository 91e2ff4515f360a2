"""A callback the reliability tests add from the command line to make epochs long enough to kill."""

import time

from pytorch_lightning.callbacks import Callback


class SlowDown(Callback):
    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        time.sleep(self.seconds)
