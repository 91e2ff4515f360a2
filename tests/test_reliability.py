"""Runs that survive faults, and bad inputs that give one clear error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlforge.callbacks.reliability import FiniteLossGuard, NonFiniteLossError
from dlforge.checkpoint import load_model
from dlforge.data import MNISTDataModule
from dlforge.errors import DlforgeError
from dlforge.models import GAN
from dlforge.training import train
from tests.conftest import FAST, REPO, write_mnist_like

AUGMENTED = (
    "model=cifar_cnn",
    "data=cifar10",
    "data.crop_padding=4",
    "data.hflip=true",
    *FAST,
    "trainer.limit_train_batches=null",
    "data.batch_size=8",
    "threads=1",  # the same arithmetic in this process and in the killed one
)


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    run_main, data_dir: Path, tmp_path: Path
) -> None:
    """Only the killed run needs a process of its own; the others run here, as train.py would."""
    straight = run_main("train.py", *AUGMENTED, "trainer.max_epochs=2", "hydra.run.dir=outputs/straight")
    assert straight.returncode == 0, straight.stderr[-2000:]

    slow = ("+callbacks.slow._target_=tests.slowdown.SlowDown", "+callbacks.slow.seconds=0.03")
    env = {"DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO), "DLFORGE_CACHE": str(tmp_path / "cache")}
    killed_dir = tmp_path / "outputs" / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "train.py"),
            *AUGMENTED,
            *slow,
            "trainer.max_epochs=2",
            f"hydra.run.dir={killed_dir}",
        ],
        cwd=tmp_path,
        env={**__import__("os").environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = killed_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # into the next epoch (each is ~25 batches x 30 ms)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "metrics.json").exists()
    for ckpt in (killed_dir / "checkpoints").glob("*.ckpt"):  # nothing half-written
        torch.load(ckpt, weights_only=True)
    assert not list((killed_dir / "checkpoints").glob("*.tmp*"))

    resumed = run_main(
        "train.py", *AUGMENTED, "trainer.max_epochs=2", f"ckpt_path={last}", "hydra.run.dir=outputs/resumed"
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "outputs" / "straight" / "metrics.json").read_text())
    b = json.loads((tmp_path / "outputs" / "resumed" / "metrics.json").read_text())
    assert b["epochs"] == a["epochs"] == 2
    for key in ("val/acc", "val/loss", "train/loss_epoch", "test/acc", "test/loss"):
        assert b["metrics"][key] == a["metrics"][key], key


@pytest.mark.parametrize(
    ("model", "optimizer", "hint"),
    [
        ("lenet", "optimizer=sgd", "optimizer.lr or trainer.gradient_clip_val"),
        ("dcgan", "model.optimizer_d._target_=torch.optim.SGD", "optimizer_d.lr"),
    ],
)
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    run_main, tmp_path: Path, model: str, optimizer: str, hint: str
) -> None:
    # a sane first epoch, then the learning rate jumps by 1e12 and the loss blows up
    result = run_main(
        "train.py",
        f"model={model}",
        *FAST,
        "trainer.max_epochs=2",
        optimizer,
        *(["~model.optimizer_d.betas"] if model == "dcgan" else []),  # SGD has no betas
        "scheduler=step",  # the GAN's scheduler acts on both of its optimizers
        "scheduler.step_size=1",
        "scheduler.gamma=1e12",
        "hydra.run.dir=outputs/nan",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: training stopped: ") and hint in message
    assert "=nan at step" in message or "non-finite weights" in message  # losses, or weights on saving
    run = tmp_path / "outputs" / "nan"
    assert f"last good checkpoint: {run / 'checkpoints' / 'last.ckpt'}" in message
    assert not (run / "metrics.json").exists()
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


class BlowsUpAt(pl.LightningModule):
    """A one-layer regression whose loss turns NaN at optimizer step ``bad_step``."""

    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.layer, self.bad_step = torch.nn.Linear(4, 1), bad_step

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.layer(batch[0]).pow(2).mean()
        return loss * float("nan") if self.global_step == self.bad_step else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize(("defer", "stops_at"), [(False, 6), (True, 8)])
def test_nan_guard_names_the_bad_step_whether_it_checks_at_once_or_reads_back_later(
    tmp_path: Path, defer: bool, stops_at: int
) -> None:
    # the loss of batch 5 is NaN; "step" counts optimizer steps done, as trainer.global_step does.
    # Deferred (a GPU's default): the first bad loss is kept on the device, read every 4 batches.
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=2)
    model = BlowsUpAt(bad_step=5)
    trainer = pl.Trainer(
        max_steps=20,
        callbacks=[FiniteLossGuard(check_every=4, defer=defer)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(NonFiniteLossError, match=r"loss=nan at step 6 \(epoch 0, batch 5\)"):
        trainer.fit(model, data)
    assert trainer.global_step == stops_at


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda b: b[:5000], "truncated or not in the expected format"),
        (lambda b: b"\x12\x34\x56\x78" + b[4:], "wrong magic number"),
    ],
)
def test_damaged_idx_files_are_one_clear_error(tmp_path: Path, damage, expected: str) -> None:
    write_mnist_like(tmp_path, "MNIST")
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    with pytest.raises(DlforgeError, match=expected):
        MNISTDataModule(data_dir=str(tmp_path), download=False).setup()


def test_checkpoint_of_another_kind_is_refused(make_cfg, tmp_path: Path) -> None:
    summary = train(make_cfg("model=cnn_seed000", *FAST, "trainer.max_epochs=1"))
    with pytest.raises(DlforgeError, match="holds a image_classifier model; this tool needs a GAN model"):
        load_model(summary["last_checkpoint"], GAN)
