"""Image data modules: the whole data set decoded once into uint8 tensors and served in batches.

Batches travel to the device as uint8 and become float images in [0, 1] there
(:meth:`ImageDataModule.preprocess`), with per-sample random crop / flip for training. The
per-channel mean and std of the training split go to the model in :attr:`ImageDataModule.spec`:
models normalize their own inputs, so a checkpoint carries everything its inputs need.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from dlforge.data.augment import random_crop, random_hflip
from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.errors import DlforgeError

log = logging.getLogger(__name__)

Split = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, C, H, W), int64 labels (N,)


class ImageDataModule(TensorDataModule):
    """Base for labelled image sets held in memory.

    Subclasses implement :meth:`load_split`; this class does the seeded validation split, the
    training subset, normalization statistics, batching, augmentation and the hand-off to models
    (:meth:`model_kwargs`).

    Args:
        data_dir: data root (``paths.data_dir``: ``$DATA_DIR`` or ``./data``).
        val_size: images held out of the training split for validation: a count, or a fraction < 1.
        train_subset: train on only this many (seeded, random) images of the training split.
        normalize: hand the training split's per-channel mean and std to the model to standardize
            its inputs with; if false the model sees plain [0, 1] pixels (mean 0, std 1).
        crop_padding: random-crop augmentation: pad by this many pixels and crop back (0: off).
        hflip: random horizontal-flip augmentation.
        channels_last: serve batches in channels-last memory format (the run's ``channels_last``).
        download: fetch missing files from the upstream source when the data set has one.
        seed: seed of the validation split and the subset.
        loader: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``on_device``
            (:class:`~dlforge.data.datamodule.LoaderOptions`).
    """

    name = "images"

    def __init__(
        self,
        data_dir: str = "data",
        val_size: float = 5000,
        train_subset: int | None = None,
        normalize: bool = True,
        crop_padding: int = 0,
        hflip: bool = False,
        channels_last: bool = False,
        download: bool = True,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.data_dir = Path(data_dir).expanduser()
        self.val_size = val_size
        self.train_subset = train_subset
        self.normalize = normalize
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.download = download
        self.seed = seed
        self.class_names: list[str] = []
        self.channels_last = channels_last
        self.mean = torch.zeros(1)
        self.std = torch.ones(1)

    # --- what subclasses provide -------------------------------------------------------------
    def load_split(self, train: bool) -> Split:
        """Return the uint8 images and labels of the official train or test split; set ``class_names``."""
        raise NotImplementedError

    # --- Lightning hooks ---------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Make sure the files are there (downloading when allowed); :meth:`setup` reads them."""
        self.load_split(train=False)

    def setup(self, stage: str | None = None) -> None:
        """Load the test split, and for fitting (any stage but test/predict) the train/val splits."""
        if "test" not in self.splits:
            self.splits["test"] = TensorBatches(*self.load_split(train=False))
        if stage in ("test", "predict") or "train" in self.splits:
            return
        images, labels = self.load_split(train=True)
        n_val = int(self.val_size * len(images)) if 0 < self.val_size < 1 else int(self.val_size)
        if not 0 <= n_val < len(images):
            raise DlforgeError(
                f"data.val_size={self.val_size} leaves no training images out of {len(images)}; "
                "use a smaller count or a fraction such as 0.1"
            )
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = order[:n_val], order[n_val:]
        if self.train_subset is not None:
            train_idx = train_idx[: self.train_subset]
        train = images[train_idx]
        if self.normalize:
            pixels = train.transpose(0, 1).reshape(train.shape[1], -1).float() / 255
            self.mean, self.std = pixels.mean(dim=1), pixels.std(dim=1).clamp_min(1e-6)
        else:
            self.mean, self.std = torch.zeros(train.shape[1]), torch.ones(train.shape[1])
        self.splits["train"] = TensorBatches(train, labels[train_idx])
        self.splits["val"] = TensorBatches(images[val_idx], labels[val_idx])
        log.info(
            "%s: %d train / %d val / %d test images of %s",
            self.name,
            len(train_idx),
            n_val,
            len(self.splits["test"]),
            "x".join(map(str, images.shape[1:])),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, *rest = batch
        augment = self.trainer is not None and self.trainer.training
        return (self.preprocess(images, augment=augment), *rest)

    # --- shared by models and tools ----------------------------------------------------------
    def preprocess(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """uint8 (N, C, H, W) -> float in [0, 1], randomly cropped and flipped if ``augment``."""
        x = images.float().div_(255)
        if augment:
            x = random_crop(x, self.crop_padding)
            if self.hflip:
                x = random_hflip(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def spec(self) -> dict[str, Any]:
        """What a model needs to know about the data, as plain (checkpoint-safe) values.

        After ``setup("test")`` alone it describes the test split's shape and classes; the
        normalization statistics come from the training split, loaded by ``setup("fit")``.
        """
        if not self.splits:
            self.setup()
        _, c, h, w = self.splits.get("train", self.splits["test"]).tensors[0].shape
        return {
            "name": self.name,
            "channels": c,
            "height": h,
            "width": w,
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }
