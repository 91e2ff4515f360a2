"""benchmarks/gpu_suite.py on the CPU: pack tiny data, run every part with --tiny, check the JSON, rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO, write_image_folder, write_mnist_like
from tests.text_fixtures import write_glove, write_mr

PARTS = ["overhead", "time_to_accuracy", "lenet", "cifar", "dcgan", "vae"]


def suite(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_suite", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with what the parts read: MNIST, the CIFAR-10 JPEG folder, MR and 50-d GloVe."""
    root = tmp_path_factory.mktemp("gpu_data")
    write_mnist_like(root, "MNIST")
    write_image_folder(root / "cifar10-jpeg", n_train=80, n_test=30, classes=10)
    write_mr(root)
    write_glove(root / "glove" / "glove.6B.50d.top50k.txt")
    return root


def test_tiny_suite_runs_every_part_writes_json_and_reruns_nothing(tiny_root: Path, tmp_path: Path) -> None:
    packed, out, work = tmp_path / "packed", tmp_path / "out", tmp_path / "work"
    done = suite("pack", str(tiny_root), str(packed))
    assert done.returncode == 0, done.stderr
    assert sorted(f.name for f in packed.iterdir()) == [
        "cifar10-jpeg.tar.xz",
        "glove-50d.tar.xz",
        "mnist.tar.xz",
        "mr.tar.xz",
    ]
    assert "fits in the device tool's 64 MiB" in done.stdout

    run = ("run", "--tiny", "--data", str(packed), "--out", str(out), "--work", str(work), "--jobs", "3")
    done = suite(*run, "--budget-s", "900")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()  # unpacked there
    result = json.loads((out / "gpu_suite.json").read_text())
    parts = result["parts"]
    assert list(parts) == PARTS
    assert {name: r["status"] for name, r in parts.items()} == dict.fromkeys(PARTS, "ok")
    assert result["tiny"] is True and result["machine"]["gpu"] is None

    overhead = parts["overhead"]
    assert overhead["device"] == "cpu"
    assert [(r["case"], r["path"]) for r in overhead["results"]] == [
        (case, path) for case in ("lenet", "textcnn", "dcgan") for path in ("lean", "default")
    ]
    assert all(r["batch_size"] == 16 and r["samples_per_s"]["plain"] > 0 for r in overhead["results"])

    tta = parts["time_to_accuracy"]
    assert tta["overrides"] == ["data.on_device=true"] and tta["warmup"]["epochs"] == 1
    assert [r["batch_size"] for r in tta["results"]] == [16]
    assert all(r["target"] == 0.99 and r["train_seconds"] > 0 for r in tta["results"])

    experiments = {
        "lenet": ("seed002_lenet_mnist_gpu", "test/acc"),
        "cifar": ("seed002_cifar_cnn_deep_augment_gpu", "test/acc"),
        "dcgan": ("dcgan_mnist_gpu", "test/fid"),
        "vae": ("seed003_vae_mnist_gpu", "test/elbo"),
    }
    for name, (experiment, metric) in experiments.items():
        r = parts[name]
        assert r["experiment"] == experiment and r["record"]["experiment"] == experiment
        assert r["device"] == "cpu x1" and r["epochs"] == r["max_epochs"] == 1
        assert r["headline"]["metric"] == metric and isinstance(r["headline"]["value"], float)
        assert "+trainer.max_time=" in r["command"]
    assert set(parts["dcgan"]["ran_beside"]) & {"cifar", "vae", "overhead", "time_to_accuracy"}

    lenet_ckpt = Path(parts["lenet"]["record"]["last_checkpoint"]).name
    for name in ("dcgan", "vae"):
        extractor = parts[name]["fid_extractor"]
        assert extractor["checkpoint"] == lenet_ckpt
        assert extractor["classifier_test_acc"] == parts["lenet"]["headline"]["value"]
        assert parts[name]["sample_quality"]["extractor"].startswith(lenet_ckpt)
    assert "| dcgan | ok | cpu x1 | test/fid" in done.stdout

    with tarfile.open(out / "gpu_suite_runs.tar.gz") as tar:
        names = tar.getnames()
    assert {"runs/lenet/metrics.json", "runs/dcgan/sample_quality.json", "logs/overhead.log"} <= set(names)
    assert not any(n.endswith(".ckpt") for n in names)

    again = suite(*run)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("not run again") == len(PARTS)
    assert json.loads((out / "gpu_suite.json").read_text())["parts"] == parts


def test_a_part_without_its_data_is_skipped_with_the_reason(tiny_root: Path, tmp_path: Path) -> None:
    run = ("run", "--tiny", "--data", str(tiny_root / "MNIST"), "--out", str(tmp_path), "--parts", "cifar")
    done = suite(*run, "--work", str(tmp_path / "work"))
    assert done.returncode == 0, done.stderr
    cifar = json.loads((tmp_path / "gpu_suite.json").read_text())["parts"]["cifar"]
    assert cifar == {"status": "skipped", "reason": "no cifar10-jpeg/train, cifar10-jpeg/test in the data"}
