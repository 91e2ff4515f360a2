"""Paired images for image-to-image translation (pix2pix), made from any image data module.

The source data module serves its uint8 batches as usual; on the device each batch becomes
(input, target) pairs in [0, 1]: the target is the image, the input is computed from it in batch
form (``edges``: a Canny-like edge map, dark lines on white like a pencil sketch; ``grey``: the
luminance). :func:`make_input` is the same transform ``python -m dlforge.pix2pix`` applies to a
user's picture, so a checkpoint's ``data`` spec carries everything its inputs need.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import get_class
from torch.utils.data import DataLoader
from torchvision.transforms.functional import gaussian_blur

from dlforge.data.datamodule import DataModule
from dlforge.data.images import ImageDataModule
from dlforge.errors import DlforgeError

TASKS = ("edges", "grey")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, 1, H, W) luminance (grey images pass through)."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images[:, :3] * weights).sum(dim=1, keepdim=True)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey <-> RGB so a picture has the ``channels`` a model expects (alpha is dropped)."""
    if images.shape[1] == channels:
        return images
    return to_grey(images) if channels == 1 else to_grey(images).expand(-1, channels, -1, -1).contiguous()


def edge_map(
    images: torch.Tensor,
    threshold: float = 0.2,
    thin: bool = True,
    invert: bool = True,
    blur_sigma: float = 0.0,
) -> torch.Tensor:
    """Canny-like edges of a batch in [0, 1]: (optional blur,) Sobel gradient, non-maximum suppression.

    A pixel is an edge when its gradient magnitude exceeds ``threshold`` times its image's largest
    magnitude (and, with ``thin``, is the largest along the gradient direction). Returns (N, 1, H, W)
    in {0, 1}: dark lines on white with ``invert`` (a sketch), white on black without.
    """
    grey = to_grey(images)
    if blur_sigma > 0:
        size = 2 * round(2 * blur_sigma) + 1
        grey = gaussian_blur(grey, [size, size], [blur_sigma, blur_sigma])
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=grey.device)
    kernels = torch.stack([sobel, sobel.T])[:, None].to(grey.dtype)
    gradient = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    magnitude = gradient.norm(dim=1, keepdim=True)
    if thin:
        magnitude = suppress_non_maxima(magnitude, gradient)
    peak = magnitude.flatten(1).amax(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    edges = (magnitude > threshold * peak).to(images.dtype)
    return 1 - edges if invert else edges


def suppress_non_maxima(magnitude: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Keep a magnitude only where it is no smaller than both neighbours along the gradient direction."""
    angle = torch.atan2(gradient[:, 1:2], gradient[:, 0:1])  # y, x
    sector = (torch.round(angle / (torch.pi / 4)) % 4).long()  # 0: horizontal, 1: 45, 2: vertical, 3: 135
    padded = F.pad(magnitude, (1, 1, 1, 1))
    h, w = magnitude.shape[-2:]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    steps = [(0, 1), (1, 1), (1, 0), (1, -1)]  # along the gradient for sectors 0..3
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for index, (dy, dx) in enumerate(steps):
        is_max = (magnitude >= shifted(dy, dx)) & (magnitude >= shifted(-dy, -dx))
        keep |= (sector == index) & is_max
    return magnitude * keep


def make_input(images: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    """The model input for target images in [0, 1], as the data ``spec`` of a paired set says."""
    if spec["task"] == "edges":
        return edge_map(images, **spec["edges"])
    return to_grey(images)


class PairedDataModule(DataModule):
    """(input, target) batches for pix2pix, made on the device from a ``source`` image data module.

    Args:
        source: an :class:`~dlforge.data.ImageDataModule`, or its class path
            (``dlforge.data.MNISTDataModule``), built with ``options``.
        task: ``edges`` (edge map -> image) or ``grey`` (luminance -> colour; needs a colour source).
        edges: options of :func:`edge_map` (``threshold``, ``thin``, ``invert``, ``blur_sigma``).
        name: the paired set's name in checkpoints (default ``<task>2<source name>``).
        options: the source's own options (``data_dir``, ``batch_size``, ``train_subset``, ...), so
            a paired config reads like its source's config plus ``task``.
    """

    def __init__(
        self,
        source: str | ImageDataModule,
        task: str = "edges",
        edges: dict[str, Any] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise DlforgeError(f"unknown paired task {task!r}; choose one of {', '.join(TASKS)}")
        self.source = get_class(source)(**options) if isinstance(source, str) else source
        self.task = task
        self.edges = dict(edges or {})
        self.name = name or f"{task}2{self.source.name}"

    def prepare_data(self) -> None:
        self.source.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.source.setup(stage)

    def _loader(self, split: str) -> DataLoader:
        return self.source.loader(split, self.trainer.strategy.root_device if self.trainer else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch[0]
        augment = self.trainer is not None and self.trainer.training
        targets = self.source.preprocess(images, augment=augment)
        inputs = make_input(targets, self.spec)
        if self.source.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, targets

    @property
    def spec(self) -> dict[str, Any]:
        """What a translation model needs to know: shapes, the task and its input transform."""
        source = self.source.spec
        if self.task == "grey" and source["channels"] != 3:
            raise DlforgeError(
                f"task=grey needs colour images but {source['name']} has {source['channels']} channel; "
                "use a colour source (data=grey2cifar10) or task=edges"
            )
        return {
            "name": self.name,
            "source": source["name"],
            "task": self.task,
            "edges": self.edges,
            "in_channels": 1,
            "out_channels": source["channels"],
            "height": source["height"],
            "width": source["width"],
        }
