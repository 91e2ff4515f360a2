"""Shared fixtures: tiny data sets written in their real on-disk formats, and ways to run the CLIs."""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from filelock import FileLock
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase
from omegaconf import DictConfig, open_dict
from PIL import Image

from dlforge import CONF_DIR
from dlforge.__main__ import COMMANDS

REPO = Path(__file__).resolve().parents[1]

#: Hypothesis's example budgets (tests/test_fuzz_cli.py): ``ci``, the suite's, by default: the same
#: examples every run (derandomized, so CI cannot fail on a draw no one can replay);
#: ``pytest --hypothesis-profile=long`` for a deeper random run, whose failures are kept in the
#: committed example database and replayed first (each fixed one becomes an explicit ``@example``).
settings.register_profile("ci", max_examples=8, derandomize=True, database=None)
settings.register_profile(
    "long", max_examples=200, database=DirectoryBasedExampleDatabase(str(REPO / "tests" / "hypothesis-db"))
)
settings.load_profile("ci")


def class_images(
    n: int, size: int, channels: int, classes: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Learnable toy images: class k lights a bright square at its own place on a noisy background."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, size, size, channels), dtype=np.uint8)
    cell = size // 4
    for i, k in enumerate(labels):
        r, c = divmod(int(k) % 16, 4)
        images[i, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell, :] = 230
    return images, labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (the MNIST format): magic 0x08 (uint8) + ndim, big-endian dims, data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_like(root: Path, folder: str, n_train: int = 240, n_test: int = 80) -> None:
    """``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` as torchvision reads them."""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = class_images(n, 28, 1, seed=seed)
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", images[..., 0])
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", labels)


def write_cifar_like(root: Path, n_per_batch: int = 40, n_test: int = 60) -> None:
    """``<root>/cifar-10-batches-py/`` with the python-pickle batches and ``batches.meta``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    files = [(f"data_batch_{i}", n_per_batch, i) for i in range(1, 6)] + [("test_batch", n_test, 9)]
    for name, n, seed in files:
        images, labels = class_images(n, 32, 3, seed=seed)
        data = images.transpose(0, 3, 1, 2).reshape(n, -1)  # rows of 3072: R plane, G plane, B plane
        batch = {"data": data, "labels": labels.tolist(), "batch_label": name}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": n_per_batch}, f, protocol=2)


def write_image_folder(
    root: Path, n_train: int = 60, n_test: int = 30, size: int = 32, classes: int = 3
) -> None:
    """``<root>/{train,test}/<class>/<i>.png`` (and a few .jpg)."""
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = class_images(n, size, 3, classes=classes, seed=seed)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            path = root / split / f"class_{label}" / f"{i:04d}.{'jpg' if i % 5 == 0 else 'png'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)


def once_per_session(
    factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    """``build(folder)`` run once for the whole test session, however many pytest-xdist workers ask
    (pytest-xdist's recipe: a file lock in the temp dir the workers share); its JSON-able result."""
    base = factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    done = root / name / "built.json"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            done.parent.mkdir(parents=True, exist_ok=True)
            result = build(done.parent)
            done.write_text(json.dumps(result))
    return json.loads(done.read_text())


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding tiny MNIST, Fashion-MNIST, CIFAR-10 and an image folder."""
    root = tmp_path_factory.mktemp("data")
    write_mnist_like(root, "MNIST")
    write_mnist_like(root, "FashionMNIST")
    write_cifar_like(root)
    write_image_folder(root / "shapes")
    return root


@pytest.fixture
def make_cfg(data_dir: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose ``conf/<config_name>.yaml`` with overrides, on the tiny data, writing into ``tmp_path``."""

    def make(*overrides: str, config_name: str = "train") -> DictConfig:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(
                config_name=config_name,
                overrides=[f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}", *overrides],
                return_hydra_config=False,
            )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
        return cfg

    return make


@pytest.fixture
def run_cli(data_dir: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python <args>`` as a user types it, from ``tmp_path`` (so ``outputs/`` lands there).

    ``train.py`` is found in the repo; ``-m dlforge.<tool>`` through the installed package.
    ``env`` adds variables; a value of None removes one.
    """

    def run(
        *args: str, env: dict[str, str | None] | None = None, timeout: int = 300
    ) -> subprocess.CompletedProcess:
        full_env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "DLFORGE_CACHE": str(tmp_path / "cache"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        full_env = {key: value for key, value in full_env.items() if value is not None}
        argv = [str(REPO / args[0]) if args[0].endswith(".py") else args[0], *args[1:]]
        return subprocess.run(
            [sys.executable, *argv],
            cwd=tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


#: Overrides that make any training run a few CPU steps long.
FAST = (
    "trainer=cpu",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "data.batch_size=16",
    "data.val_size=32",
)


def run_tool(command: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``dlforge <command> *args`` in this process (``sys.argv`` as typed, the tool's ``main()``);
    its exit status. What a real process drops when it exits is dropped here: Hydra's state, the log
    handlers the tool added, the thread count it set."""
    monkeypatch.setattr(sys, "argv", [f"dlforge {command}", *args])
    handlers, threads = log_handlers(), torch.get_num_threads()
    try:
        return int(importlib.import_module(COMMANDS[command][0]).main() or 0)  # report returns its status
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        GlobalHydra.instance().clear()
        remove_log_handlers_since(handlers)
        torch.set_num_threads(threads)


def log_handlers() -> dict[str, list[logging.Handler]]:
    """Every logger's handlers, by name (the root's under "")."""
    loggers = {"": logging.getLogger()} | {
        name: logger
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {name: list(logger.handlers) for name, logger in loggers.items()}


def remove_log_handlers_since(before: dict[str, list[logging.Handler]]) -> None:
    """Remove the handlers any logger gained since ``before``: a library imported or first used in a
    test (Lightning, Optuna) adds one on the stream of the moment, that test's captured stderr, which is
    closed after it ("--- Logging error ---" in a later test)."""
    for name, now in log_handlers().items():
        for handler in set(now) - set(before.get(name, [])):
            logging.getLogger(name or None).removeHandler(handler)


@pytest.fixture(autouse=True)
def no_log_handlers_left_behind() -> Iterator[None]:
    before = log_handlers()
    yield
    remove_log_handlers_since(before)


@pytest.fixture
def run_main(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli`` for ``train.py ...`` and ``-m dlforge.<tool> ...`` without starting a process (6 s of
    imports each):
    the tool's ``main()`` runs here, from ``tmp_path``, with the same environment; its exit status and
    output come back as a ``CompletedProcess``. Tests that need a real process use ``run_cli``."""

    def run(*argv: str) -> subprocess.CompletedProcess:
        if argv[0] == "train.py":
            command, args = "train", argv[1:]
        else:
            assert argv[0] == "-m" and argv[1].startswith("dlforge."), "train.py ... or -m dlforge.<tool> ..."
            command, args = argv[1].removeprefix("dlforge."), argv[2:]
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATA_DIR", str(data_dir))
        monkeypatch.setenv("DLFORGE_CACHE", str(tmp_path / "cache"))
        capsys.readouterr()
        code = run_tool(command, list(args), monkeypatch)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(argv), code, out, err)

    return run


# Tests of many real processes, each a long single item: started first, so that the workers of
# `pytest -n auto` share the rest instead of one worker ending the suite alone with one of these.
STARTED_FIRST = ("test_search_kills.py", "test_multinode.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in STARTED_FIRST)  # stable: the order otherwise kept
