"""Any ``root/{train,test}/<class>/*.png|jpg`` tree, decoded once and cached as a uint8 tensor file."""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import track
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.io import ImageReadMode, decode_image, read_file

from dlforge.data.images import ImageDataModule, Split
from dlforge.errors import DataNotFoundError, DlforgeError

log = logging.getLogger(__name__)


class ImageFolderDataModule(ImageDataModule):
    """Images in class folders (torchvision's ``ImageFolder`` layout).

    Files that are not images (by extension) are ignored; files that fail to decode are skipped
    with a warning naming them. All images are resized to ``image_size`` (default: the size of
    the first image). The decoded tensors are cached under ``cache_dir``, keyed by the file list,
    sizes and modification times, so later runs start at once.

    Args:
        root: the folder holding ``train/`` and (optionally) ``test/``; without ``test/``,
            ``test_size`` of ``train/`` is held out as the test split.
        channels: 3 for RGB, 1 for grey.
        image_size: (height, width) or one int; images of another size are resized (bilinear).
    """

    name = "image_folder"

    def __init__(
        self,
        root: str,
        channels: int = 3,
        image_size: int | list[int] | None = None,
        test_size: float = 0.1,
        cache_dir: str | None = None,
        name: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.channels = channels
        self.image_size = [image_size, image_size] if isinstance(image_size, int) else image_size
        self.test_size = test_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.name = name or self.name
        self._splits: dict[bool, Split] = {}

    def load_split(self, train: bool) -> Split:
        if not self._splits:
            self._load_all()
        return self._splits[train]

    def _load_all(self) -> None:
        train_dir, test_dir = self.root / "train", self.root / "test"
        if not train_dir.is_dir():
            raise DataNotFoundError(
                f"no image folder at {train_dir}: expected {self.root}/train/<class>/*.png|jpg; "
                "set data.root (or DATA_DIR) to the folder holding train/ and test/"
            )
        try:
            self.class_names, class_to_idx = find_classes(str(train_dir))
        except FileNotFoundError:
            raise DlforgeError(
                f"no class folders in {train_dir}: put each class's images in {train_dir}/<class name>/"
            ) from None
        train = self._decode_tree(train_dir, class_to_idx)
        if test_dir.is_dir():
            self._splits = {True: train, False: self._decode_tree(test_dir, class_to_idx)}
            return
        log.info(
            "%s has no test/ folder: holding out %s of train/ as the test split", self.root, self.test_size
        )
        images, labels = train
        n_test = int(self.test_size * len(images)) if self.test_size < 1 else int(self.test_size)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed + 1))
        test, rest = order[:n_test], order[n_test:]
        self._splits = {True: (images[rest], labels[rest]), False: (images[test], labels[test])}

    def _decode_tree(self, folder: Path, class_to_idx: dict[str, int]) -> Split:
        samples = make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        if not samples:
            raise DlforgeError(f"no images (.png, .jpg, ...) found under {folder}/<class>/")
        cache = self._cache_file(folder, samples)
        if cache is not None and cache.exists():
            images, labels = torch.load(cache, weights_only=True)
            return images, labels
        size = self.image_size or self._first_size(samples)
        with ThreadPoolExecutor(max_workers=4) as pool:
            decoded = list(
                track(
                    pool.map(lambda s: self._decode(s[0], size), samples),
                    total=len(samples),
                    description=f"decoding {folder}",
                    transient=True,
                )
            )
        bad = [path for (path, _), img in zip(samples, decoded, strict=True) if img is None]
        for path in bad[:5]:
            log.warning("skipping undecodable image %s", path)
        if len(bad) > 5:
            log.warning("skipping %d more undecodable images under %s", len(bad) - 5, folder)
        keep = [i for i, img in enumerate(decoded) if img is not None]
        if not keep:
            raise DlforgeError(f"none of the {len(samples)} image files under {folder} could be decoded")
        images = torch.stack([decoded[i] for i in keep])
        labels = torch.tensor([samples[i][1] for i in keep], dtype=torch.long)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            torch.save((images, labels), tmp)
            tmp.replace(cache)
        return images, labels

    def _decode(self, path: str, size: list[int] | None = None) -> torch.Tensor | None:
        mode = ImageReadMode.RGB if self.channels == 3 else ImageReadMode.GRAY
        try:
            image = decode_image(read_file(path), mode=mode)
        except RuntimeError:
            return None
        if size is not None and list(image.shape[-2:]) != list(size):
            resized = F.interpolate(image[None].float(), size=tuple(size), mode="bilinear", antialias=True)
            image = resized[0].round().clamp(0, 255).to(torch.uint8)
        return image

    def _first_size(self, samples: list[tuple[str, int]]) -> list[int]:
        for path, _ in samples:
            image = self._decode(path)
            if image is not None:
                return list(image.shape[-2:])
        raise DlforgeError(
            f"none of the {len(samples)} image files under {Path(path).parents[1]} can be decoded"
        )

    def _cache_file(self, folder: Path, samples: list[tuple[str, int]]) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha1(f"{self.channels}|{self.image_size}".encode())
        for path, label in samples:
            stat = Path(path).stat()
            digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return self.cache_dir / "image_folder" / f"{folder.name}-{digest.hexdigest()[:16]}.pt"
