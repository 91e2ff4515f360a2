"""Image data modules on tiny files in the real formats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from dlforge.data import CIFAR10DataModule, FashionMNISTDataModule, ImageFolderDataModule, MNISTDataModule
from dlforge.data.augment import random_crop, random_hflip
from dlforge.errors import DataNotFoundError


@pytest.mark.parametrize(
    ("cls", "shape", "n_train", "n_test"),
    [
        (MNISTDataModule, (1, 28, 28), 240, 80),
        (FashionMNISTDataModule, (1, 28, 28), 240, 80),
        (CIFAR10DataModule, (3, 32, 32), 200, 60),
    ],
)
def test_torchvision_formats_load_as_uint8_tensors(data_dir: Path, cls, shape, n_train, n_test) -> None:
    dm = cls(data_dir=str(data_dir), val_size=40, batch_size=16, download=False)
    dm.setup()
    images, _ = dm.splits["train"].tensors
    assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == shape
    assert len(dm.splits["train"]) == n_train - 40 and len(dm.splits["val"]) == 40
    assert len(dm.splits["test"]) == n_test
    assert dm.spec["num_classes"] == 10 and len(dm.spec["class_names"]) == 10
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, *shape) and y.shape == (16,)
    assert dm.preprocess(x).max() <= 1.0 and dm.preprocess(x).dtype == torch.float32


def test_split_is_seeded_and_subset_applies(data_dir: Path) -> None:
    def split(seed: int, subset: int | None = None) -> torch.Tensor:
        dm = MNISTDataModule(data_dir=str(data_dir), val_size=0.25, train_subset=subset, seed=seed)
        dm.setup()
        return dm.splits["val"].tensors[0]

    assert torch.equal(split(0), split(0))
    assert not torch.equal(split(0), split(1))
    dm = MNISTDataModule(data_dir=str(data_dir), val_size=0.25, train_subset=50)
    dm.setup()
    assert len(dm.splits["train"]) == 50 and len(dm.splits["val"]) == 60


def test_normalization_statistics_come_from_the_training_split(data_dir: Path) -> None:
    dm = MNISTDataModule(data_dir=str(data_dir), val_size=40)
    dm.setup()
    train = dm.splits["train"].tensors[0].float() / 255
    assert dm.spec["mean"] == pytest.approx([train.mean().item()], rel=1e-4)
    assert dm.spec["std"] == pytest.approx([train.std().item()], rel=1e-3)
    plain = MNISTDataModule(data_dir=str(data_dir), val_size=40, normalize=False)
    assert plain.spec["mean"] == [0.0] and plain.spec["std"] == [1.0]


def test_missing_data_names_the_folder_and_data_dir(tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(DataNotFoundError, match=r"nowhere/MNIST/raw.*DATA_DIR"):
        dm.prepare_data()


def test_image_folder_decodes_caches_and_skips_bad_files(data_dir: Path, tmp_path: Path, caplog) -> None:
    root = tmp_path / "folder"
    import shutil

    shutil.copytree(data_dir / "shapes", root)
    (root / "train" / "class_0" / "broken.png").write_bytes(b"not a png")
    (root / "train" / "class_0" / "notes.txt").write_text("ignored: not an image extension")
    Image.new("RGB", (64, 48), "red").save(root / "train" / "class_1" / "big.png")  # resized to 32x32
    dm = ImageFolderDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), val_size=6)
    dm.setup()
    assert "broken.png" in caplog.text
    images, _ = dm.splits["train"].tensors
    assert images.shape[1:] == (3, 32, 32)
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 61  # 60 + the resized one
    assert dm.spec["class_names"] == ["class_0", "class_1", "class_2"]
    cached = list((tmp_path / "cache" / "image_folder").glob("*.pt"))
    assert len(cached) == 2  # train and test
    again = ImageFolderDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), val_size=6)
    again.setup()
    assert torch.equal(again.splits["test"].tensors[0], dm.splits["test"].tensors[0])


def test_image_folder_without_test_holds_out_a_split(data_dir: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(data_dir / "shapes" / "train", tmp_path / "only" / "train")
    dm = ImageFolderDataModule(root=str(tmp_path / "only"), test_size=0.2, val_size=6)
    dm.setup()
    assert len(dm.splits["test"]) == 12 and len(dm.splits["train"]) == 42


def test_image_folder_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"data\.root"):
        ImageFolderDataModule(root=str(tmp_path / "none")).prepare_data()


def test_random_crop_and_flip_are_per_sample() -> None:
    torch.manual_seed(0)
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8).repeat(64, 1, 1, 1)
    cropped = random_crop(x, padding=2)
    assert cropped.shape == x.shape
    shifts = {tuple((c != 0).nonzero()[0].tolist()) for c in cropped[:, 0]}
    assert len(shifts) > 3  # different samples get different offsets
    flipped = random_hflip(x)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()
    assert torch.equal(random_crop(x, 0), x)
